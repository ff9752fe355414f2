// Issue 22: the key API over HTTP. Changes go through the keys CLI's editor (comments and layout
// kept, one rename) and apply at once; the file stays the one source of truth.
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { stringify } from 'yaml'
import { loadConfig } from '../plugins/config/config-loader.js'
import { startFakeOllama } from './fake-ollama.js'
import { bearer, jsonOf, LogCapture, startProxy, waitUntil } from './helper.js'
import { nodeArgs, spawnProcess } from './proxy-process.js'

const ADMIN = 'olp_key-admin-key-00000000000000000000001'
const READER = 'olp_usage-reader-key-000000000000000000002'
const APP = 'olp_generate-only-key-00000000000000000003'
const NOW = Date.UTC(2026, 11, 7, 12)

/** A config file of our own (with a comment the edits must keep) and the proxy reading it. */
async function keyApiStack (t: TestContext) {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const dir = mkdtempSync(join(tmpdir(), 'proxy-key-api-'))
  const file = join(dir, 'config.yaml')
  writeFileSync(file, '# the team\'s keys\n' + stringify({
    auth: {
      keys: [
        { name: 'admin', key: ADMIN, scopes: ['keys:admin'] },
        { name: 'reader', key: READER, scopes: ['usage:read'] },
        { name: 'app', key: APP, scopes: ['generate'], models: ['llama3.2*'], limits: { tokens_per_day: 5000 } }
      ]
    },
    service: { base_url: fake.url },
    usage: { database: join(dir, 'usage.sqlite') }
  }))
  const logs = new LogCapture()
  const clock = { now: NOW }
  const proxy = await startProxy(t, loadConfig({ path: file, env: {} }), logs, false, { clock: () => clock.now })
  const call = async (method: string, path: string, key = ADMIN, body?: unknown) => await fetch(proxy.url + path, { method, headers: { ...bearer(key), 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  return { ...proxy, fake, file, logs, clock, call }
}

const chat = (url: string, key: string) => fetch(`${url}/api/chat`, { method: 'POST', headers: bearer(key), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: false }) })

test('GET /proxy/keys lists every named key with its settings and usage, never a secret; keys:admin and usage:read only', async (t) => {
  const stack = await keyApiStack(t)
  await (await chat(stack.url, APP)).arrayBuffer()
  const answer = await stack.call('GET', '/proxy/keys')
  assert.equal(answer.status, 200)
  const text = await answer.text()
  for (const secret of [ADMIN, READER, APP]) assert.equal(text.includes(secret), false, 'no secret')
  assert.equal(/sha256|[0-9a-f]{64}/.test(text), false, 'no digest')
  const app = JSON.parse(text).keys.find((k: { name: string }) => k.name === 'app')
  assert.deepEqual({ ...app, last_used: undefined }, {
    name: 'app',
    scopes: ['generate'],
    models: ['llama3.2*'],
    limits: { tokens_per_day: 5000 },
    caps: {},
    expires_at: null,
    weight: 1,
    previous_keys_valid_until: [],
    last_used: undefined,
    usage: { day: { tokens: 14, requests: 1 }, month: { tokens: 14, requests: 1 } }
  })
  assert.equal(app.last_used, new Date(NOW).toISOString().replace('.000Z', 'Z'))
  assert.equal((await stack.call('GET', '/proxy/keys', READER)).status, 200, 'usage:read may look')
  assert.equal((await stack.call('GET', '/proxy/keys', APP)).status, 401, 'a generate key may not')
  assert.equal((await stack.call('POST', '/proxy/keys', READER, { name: 'x', scopes: ['generate'] })).status, 401, 'usage:read may not change')
})

test('POST /proxy/keys mints a key shown once, stores its digest, keeps the file\'s comments, and the key works at once', async (t) => {
  const stack = await keyApiStack(t)
  const minted = await stack.call('POST', '/proxy/keys', ADMIN, { name: 'colleague', scopes: ['generate'], models: ['llama3.2*'], limits: { tokens_per_day: 100 }, expires_at: '2027-06-30', weight: 2 })
  assert.equal(minted.status, 201)
  const { name, key } = await jsonOf(minted)
  assert.equal(name, 'colleague')
  assert.match(key, /^olp_/)
  const text = readFileSync(stack.file, 'utf8')
  assert.ok(text.startsWith('# the team\'s keys\n'), 'the comment stays')
  assert.equal(text.includes(key), false, 'only the digest is stored')
  const used = await chat(stack.url, key)
  assert.equal(used.status, 200, 'applied at once, no wait for the file watcher')
  await used.arrayBuffer()
  const listed = (await jsonOf(await stack.call('GET', '/proxy/keys'))).keys.find((k: { name: string }) => k.name === 'colleague')
  assert.equal(listed.expires_at, '2027-07-01T00:00:00Z')
  assert.equal(listed.weight, 2)
})

test('the key API refuses with 400 naming the field: a name taken, an unknown scope, a bad date, a bad model name', async (t) => {
  const stack = await keyApiStack(t)
  const cases: Array<[unknown, RegExp]> = [
    [{ name: 'app', scopes: ['generate'] }, /name.*"app".*exists/],
    [{ name: 'x', scopes: ['fly'] }, /scopes/],
    [{ name: 'x', scopes: ['generate'], expires_at: 'next tuesday' }, /expires_at/],
    [{ name: 'x', scopes: ['generate'], models: ['Llama 3.2'] }, /models/],
    [{ name: 'x' }, /scopes/],
    [{ name: 'x', scopes: ['generate'], weight: 0 }, /weight/],
    [{ name: 'x', scopes: ['generate'], weight: 1e300 }, /^weight: .*at most 9007199254740991/],
    [{ name: 'x', scopes: ['generate'], limits: { tokens_per_day: 1e300 } }, /^limits\.tokens_per_day: .*at most/]
  ]
  const before = readFileSync(stack.file, 'utf8')
  for (const [body, field] of cases) {
    const answer = await stack.call('POST', '/proxy/keys', ADMIN, body)
    assert.equal(answer.status, 400, JSON.stringify(body))
    const { error } = await jsonOf(answer)
    assert.match(error, field, JSON.stringify(body))
    assert.equal(error.includes(stack.file), false, 'the file\'s path is not the client\'s business')
  }
  assert.equal(readFileSync(stack.file, 'utf8'), before, 'nothing written')
  assert.equal((await stack.call('DELETE', '/proxy/keys/nobody-by-that-name')).status, 404)
})

test('writes take application/json only: a cross-site form (urlencoded, multipart, text/plain) is 415 and changes nothing', async (t) => {
  const stack = await keyApiStack(t)
  const before = readFileSync(stack.file, 'utf8')
  const forms: Array<[string, string]> = [
    ['application/x-www-form-urlencoded', '{"name":"csrf","scopes":["keys:admin"]}='],
    ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n'],
    ['text/plain', '{"name":"csrf","scopes":["keys:admin"]}'],
    ['text/plain', '']
  ]
  for (const [type, body] of forms) {
    for (const path of ['/proxy/keys', '/proxy/keys/app/rotate']) {
      const answer = await fetch(stack.url + path, { method: 'POST', headers: { ...bearer(ADMIN), 'content-type': type }, body })
      assert.equal(answer.status, 415, `${type} to ${path}`)
      assert.match((await jsonOf(answer)).error, /application\/json/)
    }
  }
  assert.equal(readFileSync(stack.file, 'utf8'), before, 'nothing written')
  const json = await fetch(stack.url + '/proxy/keys/app/rotate', { method: 'POST', headers: { ...bearer(ADMIN), 'content-type': 'Application/JSON; charset=utf-8' }, body: '{}' })
  assert.equal(json.status, 200, 'JSON with parameters, any case, is read')
  const bare = await fetch(stack.url + '/proxy/keys/app/rotate', { method: 'POST', headers: bearer(ADMIN) })
  assert.equal(bare.status, 200, 'no body and no Content-Type (curl -X POST) is an empty object')
})

test('a config file the proxy refuses (a hand edit) answers 409 naming the file\'s field, not 400 as if the request were wrong', async (t) => {
  const stack = await keyApiStack(t)
  const good = readFileSync(stack.file, 'utf8')
  const broken = good.replace('tokens_per_day: 5000', 'tokens_per_day: -1')
  assert.notEqual(broken, good)
  writeFileSync(stack.file, broken)
  const edits: Array<[string, string, unknown]> = [
    ['POST', '/proxy/keys', { name: 'x', scopes: ['generate'] }],
    ['PATCH', '/proxy/keys/reader', { weight: 2 }],
    ['POST', '/proxy/keys/reader/rotate', {}],
    ['DELETE', '/proxy/keys/reader', undefined]
  ]
  for (const [method, path, body] of edits) {
    const answer = await stack.call(method, path, ADMIN, body)
    assert.equal(answer.status, 409, `${method} ${path}`)
    const { error } = await jsonOf(answer)
    assert.match(error, /^the config file cannot be edited until it is fixed \(the proxy keeps its last valid config\): auth\.keys\.2\.limits\.tokens_per_day: /)
    assert.equal(error.includes(stack.file), false, 'the file\'s path is not the client\'s business')
  }
  assert.equal(readFileSync(stack.file, 'utf8'), broken, 'nothing written')
})

test('rotate refuses a grace that is no span, or one past any date the file can hold, with 400 naming grace', async (t) => {
  const stack = await keyApiStack(t)
  const before = readFileSync(stack.file, 'utf8')
  for (const grace of ['-1h', '1e9h', '0h', '24H', '2500000000h', '36501d']) {
    const answer = await stack.call('POST', '/proxy/keys/app/rotate', ADMIN, { grace })
    assert.equal(answer.status, 400, grace)
    assert.match((await jsonOf(answer)).error, /^grace: expected a span such as 24h or 7d \(at most 36500d\), got /, grace)
  }
  assert.equal(readFileSync(stack.file, 'utf8'), before, 'nothing written')
  assert.equal((await chat(stack.url, APP)).status, 200, 'the key still works')
})

test('PATCH changes limits and expiry; DELETE revokes at once; rotate gives a new key and keeps the old one for the grace', async (t) => {
  const stack = await keyApiStack(t)
  const changed = await stack.call('PATCH', '/proxy/keys/app', ADMIN, { limits: { tokens_per_day: null, concurrent: 2 }, expires_at: '2027-01-31', 'not-a-field': 1 })
  assert.equal(changed.status, 200)
  const view = await jsonOf(changed)
  assert.deepEqual(view.limits, { concurrent: 2 })
  assert.equal(view.expires_at, '2027-02-01T00:00:00Z')
  await waitUntil('the change audited', () => stack.logs.entries().some(e => e.msg === 'key changed through the key API'))
  const audit = stack.logs.entries().filter(e => e.msg === 'key changed through the key API')
  assert.deepEqual(audit.map(e => [e.key, e.fields]), [['app', ['expires_at', 'limits']]], 'one line naming the key and the fields changed')

  const rotated = await stack.call('POST', '/proxy/keys/app/rotate', ADMIN, { grace: '1h' })
  assert.equal(rotated.status, 200)
  const { key, previous_key_valid_until: until } = await jsonOf(rotated)
  assert.equal(until, '2026-12-07T13:00:00Z')
  for (const secret of [key, APP]) {
    const answer = await chat(stack.url, secret)
    assert.equal(answer.status, 200, 'old and new key both work during the grace')
    await answer.arrayBuffer()
  }
  stack.clock.now = NOW + 60 * 60 * 1000
  assert.equal((await chat(stack.url, APP)).status, 401, 'the old key stops when the grace ends')

  const revoked = await stack.call('DELETE', '/proxy/keys/app')
  assert.equal(revoked.status, 200)
  assert.equal((await chat(stack.url, key)).status, 401, 'refused at once')
  await waitUntil('logged', () => stack.logs.text.includes('key revoked through the key API'))
})

test('a config folder the proxy may not write answers 409 saying how to mount it writable', async (t) => {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const dir = mkdtempSync(join(tmpdir(), 'proxy-key-api-ro-'))
  const data = mkdtempSync(join(tmpdir(), 'proxy-key-api-data-'))
  chmodSync(data, 0o777)
  const file = join(dir, 'config.yaml')
  writeFileSync(file, stringify({
    auth: { keys: [{ name: 'admin', key: ADMIN, scopes: ['keys:admin'] }] },
    service: { base_url: fake.url },
    server: { host: '127.0.0.1', port: 0 },
    usage: { database: join(data, 'usage.sqlite') }
  }))
  chmodSync(file, 0o644)
  chmodSync(dir, 0o555)
  // Permissions do not bind root: as root, the proxy runs as nobody.
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
  const proxy = spawnProcess(t, process.execPath, nodeArgs('src/server.ts', ['--config', file]), { ...asUser, env: { ...process.env, HOME: data } })
  const [, port] = await proxy.waitFor(/"address":\["127\.0\.0\.1:(\d+)"\]/)
  const answer = await fetch(`http://127.0.0.1:${port}/proxy/keys`, { method: 'POST', headers: { ...bearer(ADMIN), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', scopes: ['generate'] }) })
  assert.equal(answer.status, 409)
  assert.match((await jsonOf(answer)).error, /writable/)
  proxy.child.kill('SIGTERM')
  await proxy.exited
})
