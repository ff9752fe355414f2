import assert from 'node:assert/strict'
import { test } from 'node:test'
import authPlugin from '../plugins/auth/auth.js'
import { ConfigError, parseConfig } from '../plugins/config/config-loader.js'
import admissionPlugin from '../plugins/http/admission.js'
import methodNotAllowed from '../routes/method-not-allowed.js'
import { routeTable } from '../routes/route-table.js'
import { appKeyWithLimits, authWith, bearer, KEYS, TOKENS } from './fixtures/keys.js'
import { startStack } from './helper.js'
import { pluginHarness, tableRows } from './plugin-harness.js'
import { RawClient, until } from './raw-http.js'

/** Larger than anything the proxy could quietly buffer: it must answer without reading it. */
const HUGE = 95 * 1024 * 1024
function keyWith (limits: Record<string, number>) {
  return authWith([appKeyWithLimits(limits)], ['model'])
}

test('admission, before the key: an unknown path is 404 in its dialect; a known path with another method is 405 with Allow', async (t) => {
  const harness = await pluginHarness(t, { plugins: [admissionPlugin, authPlugin, methodNotAllowed], routes: routeTable })
  const notFound = [
    { url: '/no/such/route?key=secret', message: (body: any) => body.error },
    { url: '/v1/nope', message: (body: any) => { assert.equal(body.error.type, 'not_found_error'); return body.error.message } },
    { url: '/v1/messages/nope', message: (body: any) => { assert.deepEqual([body.type, body.error.type], ['error', 'not_found_error']); return body.error.message } }
  ]
  for (const { url, message } of notFound) {
    for (const headers of [{}, bearer(TOKENS.other), bearer(TOKENS.generate)]) {
      const response = await harness.app.inject({ method: 'POST', url, headers, payload: '[{},{}]' })
      assert.equal(response.statusCode, 404, `${url}: ${response.body}`)
      assert.equal(message(response.json()), `no route POST ${url.split('?')[0]}`, 'the query string is not echoed')
    }
  }
  const wrongMethods = [
    { method: 'PUT', url: '/api/chat', allow: 'POST', dialect: 'native' },
    { method: 'GET', url: '/api/pull', allow: 'POST', dialect: 'native' },
    { method: 'DELETE', url: '/v1/models', allow: 'GET', dialect: 'openai' },
    { method: 'GET', url: '/v1/messages', allow: 'POST', dialect: 'anthropic' }
  ] as const
  for (const { method, url, allow, dialect } of wrongMethods) {
    const response = await harness.app.inject({ method, url })
    assert.equal(response.statusCode, 405, `${method} ${url} without a key: ${response.body}`)
    assert.equal(response.headers.allow, allow)
    const body = response.json()
    const text = dialect === 'native' ? body.error : body.error.message
    assert.equal(text, `method ${method} not allowed on ${url}; use ${allow}`)
    if (dialect !== 'native') assert.equal(body.error.type, 'invalid_request_error')
  }
  assert.equal(harness.reached.length, 0)
  const admitted = await harness.app.inject({ method: 'POST', url: '/api/chat', headers: bearer(TOKENS.generate), payload: { model: 'llama3.2', messages: [] } })
  assert.equal(admitted.statusCode, 200, 'a known route with its method and a key is admitted')
})

test('admission alone: a body read under server.max_body_bytes_in_flight is held while its request runs and given back when the exchange ends', async (t) => {
  let heldWhileRunning = -1
  const harness = await pluginHarness(t, {
    plugins: [admissionPlugin],
    routes: tableRows('POST /api/chat'),
    config: { server: { body_limit: 1000, max_body_bytes_in_flight: 1500 } },
    handler: async (_exchange, _request) => {
      heldWhileRunning = harness.app.bodyBudget.inFlight
      return { reached: true }
    }
  })
  const body = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x'.repeat(500) }] })
  for (let i = 0; i < 4; i++) {
    const response = await harness.app.inject({ method: 'POST', url: '/api/chat', payload: body })
    assert.equal(response.statusCode, 200, `request ${i}: ${response.body}`)
    assert.equal(heldWhileRunning, Buffer.byteLength(body), `request ${i} holds its bytes while it runs`)
    await harness.endedCount(i + 1)
    assert.equal(harness.app.bodyBudget.inFlight, 0, `request ${i} gave its bytes back`)
  }
})

const refusedBeforeTheBody: Array<{ what: string, method: string, path: string, headers: Record<string, string>, status: number }> = [
  { what: 'unknown path, no key', method: 'POST', path: '/no/such/route', headers: {}, status: 404 },
  { what: 'unknown path under /v1, no key', method: 'POST', path: '/v1/nope', headers: {}, status: 404 },
  { what: 'wrong method, no key', method: 'PUT', path: '/api/chat', headers: {}, status: 405 },
  { what: 'no key', method: 'POST', path: '/api/chat', headers: {}, status: 401 },
  { what: 'wrong key', method: 'POST', path: '/v1/chat/completions', headers: bearer(TOKENS.other), status: 401 },
  { what: 'key without the scope', method: 'POST', path: '/api/pull', headers: bearer(TOKENS.generate), status: 401 },
  { what: 'key without the scope, blob upload', method: 'POST', path: `/api/blobs/sha256:${'a'.repeat(64)}`, headers: bearer(TOKENS.generate), status: 401 }
]

test('before the key, nothing: refusals come before the body is sent, and close the connection', async (t) => {
  const stack = await startStack(t)
  const rssBefore = process.memoryUsage().rss
  for (const { what, method, path, headers, status } of refusedBeforeTheBody) {
    for (const framing of [{ 'content-length': HUGE }, { 'transfer-encoding': 'chunked' }] as Array<Record<string, string | number>>) {
      const client = await RawClient.open(stack.url)
      client.send(method, path, { 'content-type': 'application/json', ...headers, ...framing }, framing['transfer-encoding'] !== undefined ? '100000\r\n[{},{},' : '[{},{},')
      const answer = await client.answer()
      assert.equal(answer.status, status, what)
      assert.equal(answer.headers.connection, 'close', `${what}: the unread body is not read afterwards`)
      await client.closed
    }
  }
  assert.equal(stack.app.bodyBudget.inFlight, 0)
  assert.ok(process.memoryUsage().rss - rssBefore < HUGE, 'no body was buffered')
  assert.equal(stack.fake.requests.length, 0)
})

test('a small unread body is drained and the connection stays usable', async (t) => {
  const stack = await startStack(t)
  const client = await RawClient.open(stack.url)
  client.send('POST', '/no/such/route', { 'content-type': 'application/json', 'content-length': 7 }, '[{},{}]')
  const first = await client.answer()
  assert.equal(first.status, 404)
  assert.notEqual(first.headers.connection, 'close')
  client.send('GET', '/healthz', {})
  assert.equal((await client.answer()).status, 200)
  client.destroy()
})

test('a trickled body is cut off with 408 after server.body_timeout', async (t) => {
  const stack = await startStack(t, { server: { body_timeout: 0.2 } })
  for (const [path, shape] of [['/api/chat', 'native'], ['/v1/chat/completions', 'openai']] as const) {
    const client = await RawClient.open(stack.url)
    client.send('POST', path, { ...bearer(TOKENS.generate), 'content-length': 1000 }, '{"model":')
    const answer = await client.answer()
    assert.equal(answer.status, 408)
    const body = JSON.parse(answer.body)
    assert.match(shape === 'native' ? body.error : body.error.message, /not received within 0.2 s/)
    await client.closed
  }
  assert.equal(stack.app.bodyBudget.inFlight, 0)
})

test('server.max_connections: a request on a connection past it gets 503 with Retry-After and is closed', async (t) => {
  const stack = await startStack(t, { server: { max_connections: 2 } })
  const held = [await RawClient.open(stack.url), await RawClient.open(stack.url)]
  for (const client of held) {
    client.send('GET', '/healthz', {})
    assert.equal((await client.answer()).status, 200)
  }
  const third = await RawClient.open(stack.url)
  third.send('POST', '/v1/messages', { ...bearer(TOKENS.generate), 'content-length': HUGE })
  const answer = await third.answer()
  assert.equal(answer.status, 503)
  assert.equal(answer.headers['retry-after'], '1')
  assert.equal(JSON.parse(answer.body).error.type, 'overloaded_error')
  await third.closed
  for (const client of held) client.destroy()
})

test('key limits refuse before the body is sent (concurrent, requests and tokens per minute)', async (t) => {
  await t.test('concurrent: 1', async (t) => {
    const stack = await startStack(t, keyWith({ concurrent: 1 }))
    const holder = await RawClient.open(stack.url)
    holder.send('POST', '/api/chat', { ...bearer(KEYS.app), 'content-length': 1000 }, '{"model":')
    await until(() => stack.app.concurrencySlots.count('app') === 1, 'the first request holds the slot')
    const second = await RawClient.open(stack.url)
    second.send('POST', '/api/chat', { ...bearer(KEYS.app), 'content-length': HUGE })
    const answer = await second.answer()
    assert.equal(answer.status, 429)
    assert.match(JSON.parse(answer.body).error, /concurrency limit/)
    await second.closed
    holder.destroy()
    await until(() => stack.app.concurrencySlots.count('app') === 0, 'the slot is given back')
  })
  await t.test('requests_per_minute spent', async (t) => {
    const stack = await startStack(t, keyWith({ requests_per_minute: 1 }))
    stack.app.limitWindows.incr('rpm:app', 1, Date.now())
    const client = await RawClient.open(stack.url)
    client.send('POST', '/v1/chat/completions', { ...bearer(KEYS.app), 'content-length': HUGE })
    const answer = await client.answer()
    assert.equal(answer.status, 429)
    assert.equal(JSON.parse(answer.body).error.type, 'rate_limit_error')
    await client.closed
  })
  await t.test('tokens_per_minute spent', async (t) => {
    const stack = await startStack(t, keyWith({ tokens_per_minute: 10 }))
    stack.app.limitWindows.incr('tpm:app', 10, Date.now())
    const client = await RawClient.open(stack.url)
    client.send('POST', '/api/generate', { ...bearer(KEYS.app), 'content-length': HUGE })
    const answer = await client.answer()
    assert.equal(answer.status, 429)
    assert.match(JSON.parse(answer.body).error, /token limit/)
    await client.closed
  })
})

test('server.max_body_bytes_in_flight: past it, 503 with Retry-After in the route dialect', async (t) => {
  const stack = await startStack(t, { server: { body_limit: 1000, max_body_bytes_in_flight: 1500 } })
  const auth = bearer(TOKENS.generate)
  const holder = await RawClient.open(stack.url)
  holder.send('POST', '/api/chat', { ...auth, 'content-length': 1000 }, '{"model":')
  await until(() => stack.app.bodyBudget.inFlight === 1000, 'the first body holds its bytes')

  const dialects = [
    { path: '/api/chat', check: (body: any) => assert.match(body.error, /request bodies/) },
    { path: '/v1/chat/completions', check: (body: any) => assert.match(body.error.message, /request bodies/) },
    { path: '/v1/messages', check: (body: any) => assert.equal(body.error.type, 'overloaded_error') }
  ]
  for (const { path, check } of dialects) {
    const client = await RawClient.open(stack.url)
    client.send('POST', path, { ...auth, 'content-length': 600 })
    const answer = await client.answer()
    assert.equal(answer.status, 503, path)
    assert.equal(answer.headers['retry-after'], '1')
    check(JSON.parse(answer.body))
    await client.closed
  }
  // A chunked body is counted as it arrives.
  const chunked = await RawClient.open(stack.url)
  chunked.send('POST', '/api/chat', { ...auth, 'transfer-encoding': 'chunked' }, `258\r\n${'x'.repeat(600)}\r\n`)
  assert.equal((await chunked.answer()).status, 503)
  await chunked.closed

  holder.destroy()
  await until(() => stack.app.bodyBudget.inFlight === 0, 'the held bytes are given back')
  const after = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth, body: '{"model":"llama3.2","messages":[],"stream":false}' })
  assert.equal(after.status, 200)
  await after.arrayBuffer()
  assert.equal(stack.app.bodyBudget.inFlight, 0)
})

test('Expect: 100-continue is answered only once the request is admitted', async (t) => {
  const stack = await startStack(t)
  const refused = await RawClient.open(stack.url)
  refused.send('POST', '/api/chat', { expect: '100-continue', 'content-length': HUGE })
  assert.equal((await refused.answer()).status, 401, 'no invitation to upload before the key is checked')
  await refused.closed

  const body = '{"model":"llama3.2","messages":[],"stream":false}'
  const admitted = await RawClient.open(stack.url)
  admitted.send('POST', '/api/chat', { ...bearer(TOKENS.generate), expect: '100-continue', 'content-length': body.length })
  assert.equal((await admitted.answer()).status, 100)
  admitted.socket.write(body)
  assert.equal((await admitted.answer()).status, 200)
  admitted.destroy()
})

test('admission settings: defaults, derived budget, and refusal of nonsense', () => {
  const base = 'auth:\n  generate_tokens: [a-token-that-is-long-enough-0000000001]\n'
  const defaults = parseConfig(base, 'c.yaml').server
  assert.equal(defaults.transcriptionLimit, 25 * 1024 * 1024)
  assert.equal(defaults.maxBodyBytesInFlight, 4 * defaults.bodyLimit)
  assert.equal(defaults.bodyTimeoutMs, 60_000)
  assert.equal(defaults.maxConnections, 2048)
  const derived = parseConfig(base + 'server:\n  body_limit: 1000\n', 'c.yaml').server
  assert.equal(derived.maxBodyBytesInFlight, 4000)
  const set = parseConfig(base + 'server:\n  transcription_limit: 10\n  max_body_bytes_in_flight: 20\n  body_timeout: 0.5\n  max_connections: 3\n', 'c.yaml').server
  assert.deepEqual([set.transcriptionLimit, set.maxBodyBytesInFlight, set.bodyTimeoutMs, set.maxConnections], [10, 20, 500, 3])
  for (const bad of ['transcription_limit: 0', 'max_body_bytes_in_flight: -1', 'body_timeout: 0', 'max_connections: 1.5', 'max_connections: many']) {
    assert.throws(() => parseConfig(`${base}server:\n  ${bad}\n`, 'c.yaml'), (err: unknown) => err instanceof ConfigError && /server\./.test(err.message), bad)
  }
})

test('a keyless request trickling a small body is closed within server.body_timeout, not held for ever', async (t) => {
  const stack = await startStack(t, { server: { body_timeout: 0.2 } })
  const client = await RawClient.open(stack.url)
  client.send('POST', '/api/chat', { 'content-length': 100 }, '{')
  const answer = await client.answer()
  assert.equal(answer.status, 401)
  // One byte now and then: Node would drain at this pace for ever; the proxy closes instead.
  const trickle = setInterval(() => { client.socket.write(' ') }, 20)
  t.after(() => { clearInterval(trickle) })
  await client.closed
  clearInterval(trickle)
})
