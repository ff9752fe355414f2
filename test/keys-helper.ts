import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { nodeArgs, spawnProcess } from './proxy-process.js'

/** A hand-written config: comments, aligned inline comments, quoting the tool must not touch. */
export const HAND_WRITTEN = `# Team proxy
auth:
  generate_tokens:
    - "a-real-generate-secret-0123456789"   # the old app
  keys:
    - name: batch-jobs                      # nightly runs
      key: "sha256:${'ab'.repeat(32)}"
      scopes: [generate]
      limits:
        concurrent: 2                       # the GPU is small

service:
  base_url: "http://127.0.0.1:1"            # Ollama

log:
  level: info                               # fatal | error | warn | info
`

/** Writes `text` to config.yaml in a fresh folder; returns its path. */
export function handWrittenFile (text = HAND_WRITTEN): string {
  const file = join(mkdtempSync(join(tmpdir(), 'proxy-keys-')), 'config.yaml')
  writeFileSync(file, text)
  return file
}

/** Runs `ollama-proxy <args>` (src/cli.ts) with no config from the environment, and collects its exit code and output. */
export async function runCli (t: TestContext, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const run = spawnProcess(t, process.execPath, nodeArgs('src/cli.ts', args), { env: { ...process.env, OLLAMA_PROXY_CONFIG: '', ...env } })
  let stdout = ''
  let stderr = ''
  run.child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  run.child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const { code } = await run.exited
  return { code, stdout, stderr }
}

/** Runs `ollama-proxy keys <args>`. */
export async function keys (t: TestContext, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await runCli(t, ['keys', ...args], env)
}
