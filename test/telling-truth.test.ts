// Issue 19: metrics and logs that tell the truth, and limits only where they protect the GPU.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bearer, KEYS, TOKENS } from './fixtures/keys.js'
import { jsonOf, LogCapture, startProxy, startStack, testConfig, waitUntil } from './helper.js'
import { startFakeOllama } from './fake-ollama.js'

const LIMITED = KEYS.app
const limitedKey = (limits: Record<string, number>, models?: string[]) => ({
  auth: { keys: [{ name: 'app', key: LIMITED, scopes: ['generate'], limits, ...(models !== undefined ? { models } : {}) }] }
})

async function scrape (url: string): Promise<string> {
  return await (await fetch(`${url}/metrics`, { headers: bearer(TOKENS.model) })).text()
}

function sample (page: string, series: string): number | undefined {
  const line = page.split('\n').find(l => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

test('in_flight_requests: counts a request waiting for its first byte, and never goes below zero', async (t) => {
  const stack = await startStack(t, limitedKey({}, ['llama3.2']))
  const controller = new AbortController()
  const waiting = fetch(`${stack.url}/api/chat`, { method: 'POST', signal: controller.signal, headers: bearer(LIMITED), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { first_byte_delay_ms: 60_000 } }) }).catch(() => undefined)
  await stack.fake.waitForRequest('/api/chat')
  assert.equal(sample(await scrape(stack.url), 'ollama_proxy_in_flight_requests{key="app"}'), 1, 'waiting for Ollama counts as in flight')
  controller.abort()
  await waiting
  // Listings filtered for a key with an allowlist, three times.
  for (let i = 0; i < 3; i++) await (await fetch(`${stack.url}/api/tags`, { headers: bearer(LIMITED) })).arrayBuffer()
  await waitUntil('every request to be logged', () => stack.logs.requestLines().length >= 4)
  assert.equal(sample(await scrape(stack.url), 'ollama_proxy_in_flight_requests{key="app"}'), 0)
})

test('one host reads like several: healthy goes to 0 when Ollama is down, models and loaded models are counted', async (t) => {
  const stack = await startStack(t)
  await stack.app.hostHealth.checked()
  await stack.app.hostHealth.refreshAll()
  const up = await scrape(stack.url)
  assert.equal(sample(up, 'ollama_proxy_upstream_healthy{host="host-1"}'), 1)
  assert.ok((sample(up, 'ollama_proxy_upstream_models{host="host-1"}') ?? 0) > 0, 'the host\'s models are counted')
  assert.ok((sample(up, 'ollama_proxy_upstream_loaded_models{host="host-1"}') ?? 0) > 0, 'its loaded models too')
  await stack.fake.close()
  await stack.app.hostHealth.checkAll()
  await stack.app.hostHealth.checkAll()
  assert.equal(sample(await scrape(stack.url), 'ollama_proxy_upstream_healthy{host="host-1"}'), 0)
  assert.equal((await fetch(`${stack.url}/readyz`)).status, 503, '/readyz agrees')
})

test('Ollama breaking off a stream is told apart from a client that left: 502 with the upstream error, counted', async (t) => {
  const stack = await startStack(t)
  const broken = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: { ...bearer(TOKENS.generate), 'x-request-id': 'broken' }, body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { fail: 'reset-midstream', chunks: 10, delay_ms: 5 } }) })
  await broken.text().catch(() => undefined)
  const controller = new AbortController()
  const left = await fetch(`${stack.url}/api/chat`, { method: 'POST', signal: controller.signal, headers: { ...bearer(TOKENS.generate), 'x-request-id': 'left' }, body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { chunks: 5000, delay_ms: 2 } }) })
  await left.body!.getReader().read()
  controller.abort()
  await waitUntil('both to be logged', () => ['broken', 'left'].every(id => stack.logs.requestLines().some(line => line.reqId === id)))
  const line = (id: string) => stack.logs.requestLines().find(l => l.reqId === id)!
  assert.equal(line('broken').status, 502)
  assert.equal(line('broken').aborted, undefined)
  assert.ok((line('broken').upstream as { error?: string }).error !== undefined, 'the log names the upstream error')
  assert.equal(line('left').status, 499)
  assert.equal(line('left').aborted, true)
  const page = await scrape(stack.url)
  assert.match(page, /ollama_proxy_requests_total\{route="\/api\/chat",method="POST",status="502",key="generate-[0-9a-f]{8}"\} 1/)
  assert.ok(/ollama_proxy_upstream_errors_total\{reason="[^"]+"\} [1-9]/.test(page), 'counted as an upstream error')
})

test('one line per request when the upstream call fails before an answer: a client that left during a model load, Ollama down', async (t) => {
  const stack = await startStack(t)
  const chat = (id: string, fake: Record<string, unknown>, signal?: AbortSignal) => fetch(`${stack.url}/api/chat`, { method: 'POST', signal, headers: { ...bearer(TOKENS.generate), 'x-request-id': id }, body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake }) })
  const controller = new AbortController()
  const loading = chat('left-while-loading', { first_byte_delay_ms: 60_000 }, controller.signal)
  await stack.fake.waitForRequest('/api/chat')
  controller.abort()
  await assert.rejects(loading)
  await waitUntil('the line of the client that left', () => stack.logs.requestLines().some(l => l.reqId === 'left-while-loading'))
  await stack.fake.close()
  assert.equal((await chat('ollama-down', {})).status, 502)
  await waitUntil('the line of the request Ollama never answered', () => stack.logs.requestLines().some(l => l.reqId === 'ollama-down'))
  for (const id of ['left-while-loading', 'ollama-down']) {
    const lines = stack.logs.entries().filter(e => e.reqId === id)
    assert.deepEqual(lines.map(e => e.msg), ['request'], `${id}: ${JSON.stringify(lines)}`)
  }
})

test('a health check answered 401 or 404 is logged as what was answered, not as unreachable', async (t) => {
  for (const [status, hint] of [[401, /401: a front before Ollama wants credentials/], [404, /404: is the URL's path right\?/]] as const) {
    const fake = await startFakeOllama()
    t.after(async () => { await fake.close() })
    fake.rawAnswers.set('/api/version', { status, headers: { 'content-type': 'text/html' }, chunks: ['<html>no</html>'] })
    const logs = new LogCapture()
    const proxy = await startProxy(t, testConfig(fake.url), logs)
    await proxy.app.hostHealth.checked()
    const warning = logs.entries().find(e => e.level === 40 && String(e.msg).includes('health check'))
    assert.ok(warning !== undefined, `a warning for ${status}: ${logs.text}`)
    assert.match(String(warning.msg), hint)
    assert.doesNotMatch(String(warning.msg), /unreachable/)
  }
})

test('the client address is logged, from X-Forwarded-For only behind a trusted proxy', async (t) => {
  for (const [trust, expected] of [[false, '127.0.0.1'], [true, '203.0.113.9']] as const) {
    const stack = await startStack(t, { server: { trust_proxy: trust } })
    await (await fetch(`${stack.url}/api/version`, { headers: { ...bearer(TOKENS.generate), 'x-forwarded-for': '203.0.113.9' } })).arrayBuffer()
    await waitUntil('the line', () => stack.logs.requestLines().length === 1)
    assert.equal(stack.logs.requestLines()[0].remoteAddress, expected, `trust_proxy: ${trust}`)
  }
})

test('a 429 log line names the limit that refused', async (t) => {
  const stack = await startStack(t, limitedKey({ requests_per_minute: 1 }), { clock: () => 1_800_000_000_000 })
  for (let i = 0; i < 2; i++) await (await fetch(`${stack.url}/api/version`, { headers: bearer(LIMITED) })).arrayBuffer()
  await waitUntil('two lines', () => stack.logs.requestLines().length === 2)
  const [first, second] = stack.logs.requestLines()
  assert.equal(first.limit, undefined)
  assert.equal(second.status, 429)
  assert.equal(second.limit, 'requests_per_minute')
})

test('reading model information takes no concurrency slot and is not refused for spent tokens; requests per minute still count', async (t) => {
  // One fixed instant: every request falls in the same minute window.
  const stack = await startStack(t, limitedKey({ concurrent: 1, tokens_per_minute: 5, requests_per_minute: 9 }), { clock: () => 1_800_000_000_000 })
  const controller = new AbortController()
  t.after(() => { controller.abort() })
  // A stream holds the key's only slot and, with its counts, spends the minute's tokens.
  const stream = await fetch(`${stack.url}/api/chat`, { method: 'POST', signal: controller.signal, headers: bearer(LIMITED), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { chunks: 100_000, delay_ms: 5 } }) })
  assert.equal(stream.status, 200)
  for (const path of ['/api/tags', '/api/ps', '/api/version', '/v1/models', '/']) {
    const read = await fetch(stack.url + path, { headers: bearer(LIMITED) })
    assert.equal(read.status, 200, `${path} while the slot is held`)
    await read.arrayBuffer()
  }
  const show = await fetch(`${stack.url}/api/show`, { method: 'POST', headers: bearer(LIMITED), body: JSON.stringify({ model: 'llama3.2' }) })
  assert.equal(show.status, 200)
  await show.arrayBuffer()
  const second = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(LIMITED), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }) })
  assert.equal(second.status, 429, 'inference is still held to one at a time')
  assert.match((await jsonOf(second)).error, /concurrency/)
  controller.abort()
  await waitUntil('the slot to come back', () => stack.app.concurrencySlots.count('app') === 0)
  // The stream's tokens are charged: inference is refused, reading is not.
  await waitUntil('the stream to be charged', async () => (await stack.app.limitWindows.peek('tpm:app', stack.app.clock())) >= 5)
  const chat = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(LIMITED), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }) })
  assert.equal(chat.status, 429)
  assert.match((await jsonOf(chat)).error, /tokens per minute/)
  const tags = await fetch(`${stack.url}/api/tags`, { headers: bearer(LIMITED) })
  assert.equal(tags.status, 200, 'spent tokens do not refuse a listing')
  await tags.arrayBuffer()
  const over = await fetch(`${stack.url}/api/tags`, { headers: bearer(LIMITED) })
  assert.equal(over.status, 429, 'the tenth keyed request of the minute is refused, listing or not')
  await over.arrayBuffer()
})

test('a front\'s HTML error page reaches the client as a JSON error in its dialect, with the front\'s status', async (t) => {
  const stack = await startStack(t)
  const page = { status: 403, headers: { 'content-type': 'text/html' }, chunks: ['<html><body>Access denied</body></html>'] }
  stack.fake.rawAnswers.set('/api/chat', page)
  stack.fake.rawAnswers.set('/v1/chat/completions', page)
  const native = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(TOKENS.generate), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }) })
  assert.equal(native.status, 403)
  assert.match((await jsonOf(native)).error, /a front before Ollama refused/)
  const openai = await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: bearer(TOKENS.generate), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }) })
  assert.equal(openai.status, 403)
  const body = await jsonOf(openai)
  assert.equal(body.error.type, 'permission_error')
  assert.match(body.error.message, /403/)
})

test('headers for a front before Ollama go on every request and health check; their values are never logged', async (t) => {
  const secret = 'cf-secret-value-0123456789abcdef'
  const stack = await startStack(t, { service: { headers: { 'CF-Access-Client-Id': 'proxy.access', 'CF-Access-Client-Secret': secret } } })
  await stack.app.hostHealth.checked()
  const response = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(TOKENS.generate), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: false }) })
  assert.equal(response.status, 200)
  await response.arrayBuffer()
  for (const rec of [stack.fake.last('/api/chat')!, stack.fake.checks[0]]) {
    assert.equal(rec.headers['cf-access-client-id'], 'proxy.access', rec.path)
    assert.equal(rec.headers['cf-access-client-secret'], secret, rec.path)
  }
  await waitUntil('the line', () => stack.logs.requestLines().length === 1)
  assert.ok(!stack.logs.text.includes(secret), 'the value never reaches the log')
})
