import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { lstatSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { appendFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { stringify } from 'yaml'
import { addNamedKey, openConfig, saveConfig } from '../plugins/config/config-editor.js'
import { concernsFile } from '../plugins/config/config-file-watch.js'
import { loadConfig, parseConfig } from '../plugins/config/config-loader.js'
import { startFakeOllama } from './fake-ollama.js'
import { bearer } from './fixtures/keys.js'
import { startProxy, waitUntil } from './helper.js'
import type { ConfigReloaded, ConfigReloadFailed } from '../plugins/config/reload.js'

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
    const response = await fetch(`${proxy.url}/api/tags`, { headers: bearer(key) })
    await response.arrayBuffer()
    return response.status
  }
  return { fake, file, proxy, status }
}

test('a valid new file swaps keys at once; a stream in flight finishes under the old rules', async (t) => {
  const { fake, file, proxy, status } = await setup(t)
  const stream = await fetch(`${proxy.url}/api/chat`, {
    method: 'POST',
    headers: bearer(OLD),
    body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { chunks: 10, delay_ms: 60 } })
  })
  assert.equal(stream.status, 200)
  writeFileSync(file, configText(fake.url, [{ name: 'new', key: NEW, models: ['qwen3*'] }]))
  assert.equal(proxy.app.reloadConfig('test'), true)
  assert.equal(await status(OLD), 401, 'the revoked key is refused')
  assert.equal(await status(NEW), 200, 'the new key works')
  const lines = (await stream.text()).trim().split('\n')
  assert.equal(lines.length, 11, 'the stream that started before the reload completed')
  const tags = await fetch(`${proxy.url}/api/tags`, { headers: bearer(NEW) })
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
  await waitUntil('the refusal to be logged', () => proxy.logs.lines.filter(line => line.includes('config reload refused')).length === 3)
})

test('editing the file (or SIGHUP) reloads without a restart', async (t) => {
  const { fake, file, proxy, status } = await setup(t, true)
  // Written beside and renamed over, as editors and config managers do.
  const changed = once(proxy.app.configReloads, 'reloaded')
  writeFileSync(file + '.tmp', configText(fake.url, [{ name: 'new', key: NEW }]))
  renameSync(file + '.tmp', file)
  assert.equal((await changed as [ConfigReloaded])[0].reason, 'file changed')
  assert.equal(await status(NEW), 200, 'the new key works after the file changed')
  assert.equal(await status(OLD), 401)

  const signalled = once(proxy.app.configReloads, 'reloaded')
  proxy.app.reloadConfig('test') // the same content again: SIGHUP applies it regardless
  process.emit('SIGHUP', 'SIGHUP')
  assert.equal((await signalled as [ConfigReloaded])[0].reason, 'test')
  const viaSignal = await once(proxy.app.configReloads, 'reloaded') as [ConfigReloaded]
  assert.equal(viaSignal[0].reason, 'SIGHUP')
  assert.equal(await status(NEW), 200)
})

test('a Kubernetes ConfigMap update (..data symlink swap) is noticed by content and applied', async (t) => {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const dir = mkdtempSync(join(tmpdir(), 'proxy-configmap-'))
  // The layout the kubelet makes: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>
  mkdirSync(join(dir, '..2026_11_30_10_00_00.000000001'))
  writeFileSync(join(dir, '..2026_11_30_10_00_00.000000001', 'config.yaml'), configText(fake.url, [{ name: 'old', key: OLD }]))
  symlinkSync('..2026_11_30_10_00_00.000000001', join(dir, '..data'))
  symlinkSync('..data/config.yaml', join(dir, 'config.yaml'))
  const proxy = await startProxy(t, loadConfig({ path: join(dir, 'config.yaml'), env: {} }), undefined, true)
  const status = async (key: string) => {
    const response = await fetch(`${proxy.url}/api/tags`, { headers: bearer(key) })
    await response.arrayBuffer()
    return response.status
  }
  assert.equal(await status(OLD), 200)

  // The update: a new timestamped directory, a ..data_tmp symlink renamed over ..data, the old one removed.
  const reloaded = once(proxy.app.configReloads, 'reloaded')
  mkdirSync(join(dir, '..2026_11_30_10_05_00.000000002'))
  writeFileSync(join(dir, '..2026_11_30_10_05_00.000000002', 'config.yaml'), configText(fake.url, [{ name: 'new', key: NEW }]))
  symlinkSync('..2026_11_30_10_05_00.000000002', join(dir, '..data_tmp'))
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
  rmSync(join(dir, '..2026_11_30_10_00_00.000000001'), { recursive: true })
  const [event] = await reloaded as [ConfigReloaded]
  assert.equal(event.reason, 'file changed')
  assert.equal(await status(OLD), 401, 'the revoked key stops working')
  assert.equal(await status(NEW), 200)
})

test('a file rewritten in place in two steps is applied only once whole', async (t) => {
  const { fake, file, proxy, status } = await setup(t, true)
  const whole = configText(fake.url, [{ name: 'app', key: NEW, models: ['qwen3*'] }])
  // The first step: the file cut before the allowlist, which alone would be a valid config.
  const half = whole.slice(0, whole.indexOf('    models:'))
  assert.doesNotThrow(() => parseConfig(half, 'half.yaml'))
  const applied: ConfigReloaded[] = []
  proxy.app.configReloads.on('reloaded', (event: ConfigReloaded) => applied.push(event))
  const reloaded = once(proxy.app.configReloads, 'reloaded')
  const settling = once(proxy.app.configReloads, 'settling')
  writeFileSync(file, half)
  await settling // the watcher has seen the first step: now the second
  writeFileSync(file, whole)
  await reloaded
  assert.deepEqual(applied.map(e => e.digest), [createHash('sha256').update(whole).digest('hex')], 'only the whole file was applied')
  const tags = await fetch(`${proxy.url}/api/tags`, { headers: bearer(NEW) })
  assert.deepEqual((JSON.parse(await tags.text()) as { models: Array<{ name: string }> }).models.map(m => m.name), ['qwen3:8b'])
  assert.equal(await status(OLD), 401)
})

test('a watched change that fails validation is never applied: the old config stays and an error is logged', async (t) => {
  const { file, proxy, status } = await setup(t, true)
  const failed = once(proxy.app.configReloads, 'reload-failed')
  writeFileSync(file, 'auth:\n  keys:\n    - name: x\n')
  const [event] = await failed as [ConfigReloadFailed]
  assert.match(event.error, /auth\.keys\.0/)
  assert.equal(await status(OLD), 200)
  await waitUntil('the refusal to be logged', () => proxy.logs.lines.some(line => line.includes('config reload refused')))
})

test('a reload refuses a named key sharing a secret; a token in two seed lists is kept with a warning', async (t) => {
  const { fake, file, proxy, status } = await setup(t)
  writeFileSync(file, stringify({ auth: { generate_tokens: [NEW], keys: [{ name: 'new', key: NEW, scopes: ['generate'], models: ['qwen3*'] }] }, service: { base_url: fake.url } }))
  assert.equal(proxy.app.reloadConfig('test'), false, 'refused: the named key would lose its allowlist')
  assert.equal(await status(OLD), 200, 'the previous config stays')
  assert.equal(await status(NEW), 401)

  writeFileSync(file, stringify({ auth: { generate_tokens: [NEW], model_tokens: [NEW] }, service: { base_url: fake.url } }))
  assert.equal(proxy.app.reloadConfig('test'), true)
  assert.equal(await status(NEW), 200)
  const pull = await fetch(`${proxy.url}/api/pull`, { method: 'POST', headers: bearer(NEW), body: '{"model":"llama3.2","stream":false}' })
  assert.equal(pull.status, 200, 'the token has the rights of both lists')
  await pull.arrayBuffer()
  await waitUntil('the warning', () => proxy.logs.entries().some(e => e.msg === 'the same token is in two seed lists: it gets the rights of both' && e.level === 40))
})

test('only events on the config file count: its name, a ConfigMap ..data swap, or no name', () => {
  const names = new Set(['config.yaml', '..data'])
  const cases: Array<[string | null, boolean]> = [
    ['config.yaml', true], ['..data', true], [null, true],
    ['proxy.log', false], ['config.yaml.tmp', false], ['.config.yaml.123.ab.tmp', false], ['..data_tmp', false], ['..2026_11_30_10_05_00.000000002', false]
  ]
  for (const [filename, counts] of cases) assert.equal(concernsFile(filename, names), counts, String(filename))
  assert.equal(concernsFile(Buffer.from('config.yaml'), names), true)
})

/**
 * Appends to a log beside the config until `stop()` or a bound of writes, as `npm start >
 * config/proxy.log` does under traffic. `writes` counts what was written so far.
 */
function busyLog (file: string): { writes: () => number, bound: number, stop: () => Promise<void> } {
  const bound = 100_000
  const state = { writes: 0, stopped: false }
  const log = join(dirname(file), 'proxy.log')
  const running = (async () => {
    while (!state.stopped && state.writes < bound) {
      await appendFile(log, `{"level":30,"msg":"request","n":${state.writes}}\n`)
      state.writes++
    }
  })()
  return { writes: () => state.writes, bound, stop: async () => { state.stopped = true; await running } }
}

test('a log written beside the config does not hold back a reload: the change applies while the log grows', async (t) => {
  const { fake, file, proxy, status } = await setup(t, true)
  const log = busyLog(file)
  t.after(log.stop)
  await waitUntil('the log to be written', () => log.writes() > 100)
  const reloaded = once(proxy.app.configReloads, 'reloaded')
  const started = performance.now()
  writeFileSync(file, configText(fake.url, [{ name: 'new', key: NEW }]))
  const [event] = await reloaded as [ConfigReloaded]
  const elapsedMs = performance.now() - started
  const writesAtReload = log.writes()
  await log.stop()
  assert.equal(event.reason, 'file changed')
  assert.ok(writesAtReload < log.bound, `applied while the log was still being written (${writesAtReload} writes, ${Math.round(elapsedMs)} ms)`)
  t.diagnostic(`applied ${Math.round(elapsedMs)} ms after the write, ${writesAtReload} log writes meanwhile`)
  assert.equal(await status(NEW), 200)
  assert.equal(await status(OLD), 401)
})

test('SIGHUP applies the settled file at once, however busy the folder', async (t) => {
  const { proxy } = await setup(t, true)
  const log = busyLog(proxy.app.config.file)
  t.after(log.stop)
  await waitUntil('the log to be written', () => log.writes() > 100)
  const reloaded = once(proxy.app.configReloads, 'reloaded')
  process.emit('SIGHUP', 'SIGHUP')
  const [event] = await reloaded as [ConfigReloaded]
  const writesAtReload = log.writes()
  await log.stop()
  assert.equal(event.reason, 'SIGHUP')
  assert.ok(writesAtReload < log.bound, `applied while the log was still being written (${writesAtReload} writes)`)
})

for (const where of ['another folder', 'the same folder'] as const) {
  test(`a config symlinked to a file in ${where}: an edit of the real file through the link is applied`, async (t) => {
    const fake = await startFakeOllama()
    t.after(async () => { await fake.close() })
    const linkDir = mkdtempSync(join(tmpdir(), 'proxy-linked-'))
    const real = join(where === 'the same folder' ? linkDir : mkdtempSync(join(tmpdir(), 'proxy-real-')), 'shared.yaml')
    writeFileSync(real, configText(fake.url, [{ name: 'old', key: OLD }]))
    const link = join(linkDir, 'config.yaml')
    symlinkSync(real, link)
    const proxy = await startProxy(t, loadConfig({ path: link, env: {} }), undefined, true)
    const reloaded = once(proxy.app.configReloads, 'reloaded')
    const editable = openConfig(link)
    addNamedKey(editable, { name: 'new', scopes: ['generate'] }, NEW)
    saveConfig(editable)
    await reloaded
    assert.ok(lstatSync(link).isSymbolicLink())
    const response = await fetch(`${proxy.url}/api/tags`, { headers: bearer(NEW) })
    assert.equal(response.status, 200)
    await response.arrayBuffer()
  })
}

test('a reload refusing a bad allowlist entry logs one line naming the file and the field', async (t) => {
  const { fake, file, proxy, status } = await setup(t)
  writeFileSync(file, configText(fake.url, [{ name: 'old', key: OLD, models: ['Llama 3.2'] }]))
  const failed = once(proxy.app.configReloads, 'reload-failed')
  assert.equal(proxy.app.reloadConfig('test'), false)
  const [event] = await failed as [ConfigReloadFailed]
  assert.equal(event.error, `${file}: auth.keys.0.models.0: allowlist entry "Llama 3.2" is not a model name Ollama accepts`)
  assert.equal(await status(OLD), 200, 'the previous config stays')
})
