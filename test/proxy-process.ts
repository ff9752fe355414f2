import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { TOKENS } from './helper.js'
import type { TestContext } from 'node:test'

/** The package root, whatever folder the tests run from. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** `--import` target for tsx as a URL, so a process started in another folder still finds it. */
export const TSX_LOADER = import.meta.resolve('tsx')

/** Node's arguments to run a TypeScript entry of the package (src/server.ts, src/cli.ts) as `npm start` would. */
export function nodeArgs (entry: string, args: string[] = []): string[] {
  return ['--import', TSX_LOADER, fileURLToPath(new URL(`../${entry}`, import.meta.url)), ...args]
}

export interface ProxyProcess {
  child: ChildProcess
  /** stdout and stderr so far, interleaved as they arrived */
  output: () => string
  /** Resolves with the first match of `pattern` in the output; rejects when the process exits first. */
  waitFor: (pattern: RegExp) => Promise<RegExpExecArray>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Starts a process whose output is read as it comes; SIGKILLed after the test if still running. */
export function spawnProcess (t: TestContext, command: string, args: string[], options: SpawnOptions = {}): ProxyProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
  let output = ''
  const waiters: Array<{ pattern: RegExp, resolve: (m: RegExpExecArray) => void, reject: (e: Error) => void }> = []
  const check = () => {
    for (const waiter of [...waiters]) {
      const match = waiter.pattern.exec(output)
      if (match !== null) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve(match)
      }
    }
  }
  const collect = (chunk: Buffer) => { output += chunk.toString(); check() }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.on('exit', (code, signal) => {
      // Whatever is still buffered in the pipes arrives before 'close'.
      child.on('close', () => {
        check()
        for (const waiter of waiters.splice(0)) waiter.reject(new Error(`process exited (${code ?? signal}) before ${waiter.pattern}: ${output}`))
        resolve({ code, signal })
      })
    })
  })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return {
    child,
    output: () => output,
    waitFor: async pattern => await new Promise((resolve, reject) => {
      waiters.push({ pattern, resolve, reject })
      check()
    }),
    exited
  }
}

/** Writes `document` as YAML to config.yaml in a new temporary folder; returns the file's path. */
export function configFile (document: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-first-'))
  const file = join(dir, 'config.yaml')
  writeFileSync(file, stringify(document))
  return file
}

/** A config for a real process: the test generate token, Ollama at `ollama`, any free port. */
export const baseConfig = (ollama: string, extra: Record<string, unknown> = {}) => ({
  auth: { generate_tokens: [TOKENS.generate] },
  service: { base_url: ollama },
  server: { host: '127.0.0.1', port: 0 },
  usage: { database: join(mkdtempSync(join(tmpdir(), 'proxy-usage-')), 'usage.sqlite') },
  ...extra
})
