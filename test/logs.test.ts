import assert from 'node:assert/strict'
import { test } from 'node:test'
import authPlugin from '../plugins/auth/auth.js'
import limitsPlugin from '../plugins/limits/limits.js'
import usagePlugin from '../plugins/usage/accounting.js'
import { MAX_LOGGED_MODEL_LENGTH } from '../plugins/observability/access-line.js'
import requestLogPlugin from '../plugins/observability/request-log.js'
import { authWith, bareKey, bearer, KEYS, namedKey, TOKENS, xApiKey } from './fixtures/keys.js'
import { startStack, waitUntil } from './helper.js'
import { pluginHarness, tableRows } from './plugin-harness.js'

test('one log line per request with id, route, status, duration, key name, model and upstream timing', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/generate`, { method: 'POST', headers: { ...bearer(TOKENS.generate), 'x-request-id': 'req-42' }, body: '{"model":"llama3.2","prompt":"hi","stream":false}' })
  assert.equal(response.status, 200)
  await response.arrayBuffer()
  await waitUntil('the request line', () => stack.logs.requestLines().some(e => e.reqId === 'req-42'))
  const lines = stack.logs.entries().filter(e => e.reqId === 'req-42')
  assert.equal(lines.length, 1, JSON.stringify(lines))
  const [line] = lines
  assert.equal(line.msg, 'request')
  assert.equal(line.method, 'POST')
  assert.equal(line.route, '/api/generate')
  assert.equal(line.status, 200)
  assert.equal(typeof line.ms, 'number')
  assert.match(String(line.key), /^generate-[0-9a-f]{8}$/)
  assert.equal(line.keyKind, 'generate')
  assert.equal(line.model, 'llama3.2')
  const upstream = line.upstream as Record<string, unknown>
  assert.equal(upstream.status, 200)
  assert.equal(typeof upstream.firstByteMs, 'number')
})

test('no token, right or wrong, ever reaches the log', async (t) => {
  const stack = await startStack(t)
  const wrong = 'wrong-secret-value-7c1d2e3f4a5b6c7d'
  const attempts: Array<Record<string, string>> = [
    bearer(TOKENS.generate), bareKey(TOKENS.model), bearer(wrong), xApiKey(wrong), bareKey(wrong.slice(0, 12))
  ]
  for (const headers of attempts) {
    for (const path of ['/api/tags', '/api/pull', '/nope', '/api/chat']) {
      const response = await fetch(stack.url + path, { method: path === '/api/tags' || path === '/nope' ? 'GET' : 'POST', headers, body: path === '/api/tags' || path === '/nope' ? undefined : '{"model":"llama3.2","stream":false}' })
      await response.arrayBuffer()
    }
  }
  await stack.fake.close()
  const down = await fetch(`${stack.url}/api/tags`, { headers: { ...bearer(TOKENS.generate), 'x-request-id': 'last' } })
  await down.arrayBuffer()
  await waitUntil('the last request line', () => stack.logs.requestLines().some(e => e.reqId === 'last'))
  const text = stack.logs.text
  assert.ok(stack.logs.lines.length >= 21)
  for (const secret of [TOKENS.generate, TOKENS.model, wrong, wrong.slice(0, 12), TOKENS.generate.slice(0, 12), TOKENS.model.slice(4, 20)]) {
    assert.ok(!text.includes(secret), `the log holds ${secret.slice(0, 6)}…`)
  }
})

test('the request line alone: its fields in pino\'s format, one per request however it ends, no header, no query, no key', async (t) => {
  const now = Date.UTC(2030, 0, 1, 0, 0, 1)
  const keys = [namedKey('app', ['generate'], { limits: { requests_per_minute: 1 } }), namedKey('gen', ['generate'])]
  const harness = await pluginHarness(t, {
    plugins: [requestLogPlugin, authPlugin, usagePlugin, limitsPlugin],
    routes: tableRows('POST /api/chat', 'GET /api/tags'),
    config: authWith(keys),
    clock: () => now
  })
  const chat = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }
  const sent = [
    { reqId: 'ok', url: '/api/chat?api_key=query-secret-0001', headers: bearer(KEYS.gen), payload: chat },
    { reqId: 'first', url: '/api/tags', headers: xApiKey(KEYS.app) },
    { reqId: 'limited', url: '/api/tags', headers: xApiKey(KEYS.app) },
    { reqId: 'no-key', url: '/api/tags', headers: bearer(TOKENS.other) },
    { reqId: 'no-route', url: '/nope?token=query-secret-0002', headers: bearer(KEYS.gen) }
  ]
  for (const { reqId, url, headers, payload } of sent) {
    await harness.app.inject({ method: payload !== undefined ? 'POST' : 'GET', url, headers: { ...headers, 'x-request-id': reqId }, ...(payload !== undefined ? { payload } : {}) })
  }
  await harness.endedCount(sent.length)
  const lines = harness.logs.requestLines()
  assert.deepEqual(lines.map(line => line.reqId), sent.map(request => request.reqId), 'one line per request, in order')
  const [ok, first, limited, noKey, noRoute] = lines
  assert.equal(ok.level, 30)
  assert.match(String(ok.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  assert.equal(ok.service, 'ollama-proxy')
  assert.deepEqual({ ...ok, time: undefined, ms: undefined }, {
    level: 30, time: undefined, service: 'ollama-proxy', reqId: 'ok', method: 'POST', route: '/api/chat', path: '/api/chat', status: 200, ms: undefined, remoteAddress: '127.0.0.1', key: 'gen', keyKind: 'named', model: 'llama3.2', msg: 'request'
  })
  assert.equal(typeof ok.ms, 'number')
  assert.deepEqual([first.status, first.key, first.limit], [200, 'app', undefined])
  assert.deepEqual([limited.status, limited.key, limited.limit], [429, 'app', 'requests_per_minute'])
  assert.deepEqual([noKey.status, noKey.key, noKey.route], [401, undefined, '/api/tags'])
  assert.deepEqual([noRoute.status, noRoute.route, noRoute.path], [404, null, '/nope'])
  for (const secret of [KEYS.gen, KEYS.app, TOKENS.other, 'query-secret', 'Bearer', 'x-api-key']) {
    assert.ok(!harness.logs.text.includes(secret), `the log holds ${secret.slice(0, 8)}…`)
  }
})

test('a model name longer than any Ollama accepts is cut in the log line: a client cannot make its line as large as its body', async (t) => {
  const stack = await startStack(t)
  const longest = 'm'.repeat(MAX_LOGGED_MODEL_LENGTH)
  const cases = [
    { id: 'model-at-most', model: longest, logged: longest },
    { id: 'model-too-long', model: 'x'.repeat(200_000), logged: `${'x'.repeat(MAX_LOGGED_MODEL_LENGTH)}...` }
  ]
  for (const { id, model } of cases) {
    const response = await fetch(`${stack.url}/api/generate`, { method: 'POST', headers: { ...bearer(TOKENS.generate), 'x-request-id': id }, body: JSON.stringify({ model, prompt: 'hi', stream: false }) })
    await response.arrayBuffer()
  }
  await waitUntil('both request lines', () => cases.every(c => stack.logs.requestLines().some(e => e.reqId === c.id)))
  for (const { id, logged } of cases) {
    const line = stack.logs.requestLines().find(e => e.reqId === id)!
    assert.equal(line.model, logged, id)
  }
  assert.ok(stack.logs.text.length < 10_000, `the log holds ${stack.logs.text.length} characters`)
})

test('the admin view of requests in flight cuts a long model name as the log line does', async (t) => {
  const stack = await startStack(t, { auth: { keys: [{ name: 'ops', key: KEYS.admin, scopes: ['keys:admin'] }, { name: 'app', key: KEYS.app, scopes: ['generate'] }] } })
  const holder = new AbortController()
  const model = 'x'.repeat(200_000)
  const held = fetch(`${stack.url}/api/generate`, {
    method: 'POST',
    signal: holder.signal,
    headers: bearer(KEYS.app),
    body: JSON.stringify({ model, prompt: 'hi', stream: false, fake: { first_byte_delay_ms: 60_000 } })
  }).catch(() => undefined)
  t.after(async () => { holder.abort(); await held })
  await waitUntil('the request in flight', () => stack.fake.requests.some(r => r.path === '/api/generate'))
  const status = await (await fetch(`${stack.url}/proxy/status`, { headers: bearer(KEYS.admin) })).json() as { requests: Array<{ key: string, model: string }> }
  const shown = status.requests.find(r => r.key === 'app')
  assert.equal(shown?.model, `${'x'.repeat(MAX_LOGGED_MODEL_LENGTH)}...`)
})
