import assert from 'node:assert/strict'
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { stringify } from 'yaml'
import { loadConfig } from '../plugins/config/config-loader.js'
import { startFakeOllama } from './fake-ollama.js'
import { sleep, startProxy } from './helper.js'

const OLD = 'old-key-to-be-revoked-0000000000000001'
const NEW = 'new-key-after-reload-00000000000000002'

function configText (fakeUrl: string, keys: Array<{ name: string, key: string, models?: string[] }>): string {
  return stringify({ auth: { keys: keys.map(k => ({ scopes: ['generate', 'models:read'], ...k })) }, service: { base_url: fakeUrl } })
}

async function setup (t: TestContext, watch = false) {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const dir = mkdtempSync(join(tmpdir(), 'proxy-reload-'))
  const file = join(dir, 'config.yaml')
  writeFileSync(file, configText(fake.url, [{ name: 'old', key: OLD }]))
  const proxy = await startProxy(t, loadConfig({ path: file, env: {} }), undefined, watch)
  const status = async (key: string) => {
    const response = await fetch(`${proxy.url}/api/tags`, { headers: { authorization: `Bearer ${key}` } })
    await response.arrayBuffer()
    return response.status
  }
  return { fake, file, proxy, status }
}

test('a valid new file swaps keys at once; a stream in flight finishes under the old rules', async (t) => {
  const { fake, file, proxy, status } = await setup(t)
  const stream = await fetch(`${proxy.url}/api/chat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${OLD}` },
    body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { chunks: 10, delay_ms: 60 } })
  })
  assert.equal(stream.status, 200)
  writeFileSync(file, configText(fake.url, [{ name: 'new', key: NEW, models: ['qwen3*'] }]))
  assert.equal(proxy.app.reloadConfig('test'), true)
  assert.equal(await status(OLD), 401, 'the revoked key is refused')
  assert.equal(await status(NEW), 200, 'the new key works')
  const lines = (await stream.text()).trim().split('\n')
  assert.equal(lines.length, 11, 'the stream that started before the reload completed')
  const tags = await fetch(`${proxy.url}/api/tags`, { headers: { authorization: `Bearer ${NEW}` } })
  const names = (JSON.parse(await tags.text()) as { models: Array<{ name: string }> }).models.map(m => m.name)
  assert.deepEqual(names, ['qwen3:8b'], 'the new allowlist applies')
})

test('an invalid file is refused and the previous config stays in force', async (t) => {
  const { file, proxy, status } = await setup(t)
  for (const broken of ['auth: [', 'auth:\n  keys:\n    - name: x\n', 'auth:\n  generate_tokens: ["your-generate-token-1"]\n']) {
    writeFileSync(file, broken)
    assert.equal(proxy.app.reloadConfig('test'), false)
    assert.equal(await status(OLD), 200)
  }
  await sleep(20)
  assert.ok(proxy.logs.lines.some(line => line.includes('config reload refused')))
})

test('editing the file (or SIGHUP) reloads without a restart', async (t) => {
  const { fake, file, status } = await setup(t, true)
  // Written beside and renamed over, as editors and config managers do.
  writeFileSync(file + '.tmp', configText(fake.url, [{ name: 'new', key: NEW }]))
  renameSync(file + '.tmp', file)
  let seen = 0
  for (let i = 0; i < 40 && seen !== 200; i++) {
    await sleep(50)
    seen = await status(NEW)
  }
  assert.equal(seen, 200, 'the new key works after the file changed')
  assert.equal(await status(OLD), 401)

  writeFileSync(file, configText(fake.url, [{ name: 'old', key: OLD }]))
  process.emit('SIGHUP', 'SIGHUP')
  let back = 0
  for (let i = 0; i < 40 && back !== 200; i++) {
    await sleep(50)
    back = await status(OLD)
  }
  assert.equal(back, 200)
})
