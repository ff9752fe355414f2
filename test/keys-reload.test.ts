// A key minted with the CLI works against a running proxy once it has reloaded; revoked, it stops.
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startFakeOllama } from './fake-ollama.js'
import { bearer } from './fixtures/keys.js'
import { HAND_WRITTEN, handWrittenFile, keys } from './keys-helper.js'
import { nodeArgs, spawnProcess } from './proxy-process.js'

test('keys add/revoke reach a running proxy through live reload', async (t) => {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const usage = join(mkdtempSync(join(tmpdir(), 'proxy-usage-')), 'usage.sqlite')
  const file = handWrittenFile(HAND_WRITTEN.replace('http://127.0.0.1:1', fake.url) + `server:\n  host: "127.0.0.1"\n  port: 0\nusage:\n  database: "${usage}"\n`)
  const proxy = spawnProcess(t, process.execPath, nodeArgs('src/server.ts', ['--config', file]))
  const [, port] = await proxy.waitFor(/"address":\["127\.0\.0\.1:(\d+)"\]/)
  const chat = async (key: string, model: string) => await fetch(`http://127.0.0.1:${port}/api/chat`, {
    method: 'POST',
    headers: bearer(key),
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], stream: false })
  })

  const added = await keys(t, ['add', 'web-app', '--scopes', 'generate', '--models', 'llama3.2*', '--config', file])
  assert.equal(added.code, 0, added.stderr)
  const key = added.stdout.trim()
  await proxy.waitFor(/config reloaded/)
  const allowed = await chat(key, 'llama3.2')
  assert.equal(allowed.status, 200, await allowed.clone().text())
  await allowed.arrayBuffer()
  const outside = await chat(key, 'mistral')
  assert.equal(outside.status, 403, 'the allowlist came with it')
  await outside.arrayBuffer()

  const revoked = await keys(t, ['revoke', 'web-app', '--config', file])
  assert.equal(revoked.code, 0, revoked.stderr)
  await proxy.waitFor(/config reloaded[\s\S]*config reloaded/)
  const refused = await chat(key, 'llama3.2')
  assert.equal(refused.status, 401)
  await refused.arrayBuffer()
  assert.ok(!proxy.output().includes(key), 'the key never reaches the log')
  proxy.child.kill('SIGTERM')
  await proxy.exited
})
