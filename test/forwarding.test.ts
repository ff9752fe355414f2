import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { test } from 'node:test'
import { bearer, TOKENS, xApiKey } from './fixtures/keys.js'
import { jsonOf, startStack } from './helper.js'

const gen = bearer(TOKENS.generate)
const admin = bearer(TOKENS.model)

test('the body reaches Ollama byte for byte, unknown fields and odd spacing included', async (t) => {
  const stack = await startStack(t)
  const body = '{ "model":"llama3.2",  "messages":[{"role":"user","content":"hi","images":["iVBORw0K"]}],\n' +
    '"think":"high","tools":[],"format":{"type":"object"},"keep_alive":"5m","options":{"temperature":"0.2","num_ctx":8192},"stream":false,"future_field":[1,2,3]}'
  const response = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: { ...gen, 'content-type': 'application/json' }, body })
  assert.equal(response.status, 200)
  await jsonOf(response)
  const seen = stack.fake.last('/api/chat')
  assert.ok(seen)
  assert.equal(seen.body.toString(), body)
  assert.equal(seen.headers['content-length'], String(Buffer.byteLength(body)))
})

test('client credentials, cookies and browser headers stay at the proxy; Host names the upstream', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/generate`, {
    method: 'POST',
    headers: {
      ...gen,
      ...xApiKey(TOKENS.generate),
      cookie: 'session=1',
      origin: 'http://evil.example',
      referer: 'http://evil.example/page',
      'proxy-authorization': 'Basic Zm9v',
      'user-agent': 'ollama-js/0.6',
      'x-custom': 'kept'
    },
    body: JSON.stringify({ model: 'llama3.2', prompt: 'hi', stream: false })
  })
  assert.equal(response.status, 200)
  await response.arrayBuffer()
  const seen = stack.fake.last('/api/generate')
  assert.ok(seen)
  for (const name of ['authorization', 'x-api-key', 'cookie', 'origin', 'referer', 'proxy-authorization', 'expect']) {
    assert.equal(seen.headers[name], undefined, `${name} is not forwarded`)
  }
  assert.equal(seen.headers.host, new URL(stack.fake.url).host)
  assert.equal(seen.headers['user-agent'], 'ollama-js/0.6')
  assert.equal(seen.headers['x-custom'], 'kept')
  assert.equal(seen.headers['x-request-id'], response.headers.get('x-request-id'))
})

test('the request id: a sane incoming one is kept, anything else is replaced', async (t) => {
  const stack = await startStack(t)
  const kept = await fetch(`${stack.url}/api/version`, { headers: { ...gen, 'x-request-id': 'trace-abc.123:x' } })
  assert.equal(kept.headers.get('x-request-id'), 'trace-abc.123:x')
  await kept.arrayBuffer()
  assert.equal(stack.fake.last('/api/version')?.headers['x-request-id'], 'trace-abc.123:x')
  const replaced = await fetch(`${stack.url}/api/version`, { headers: { ...gen, 'x-request-id': 'bad id with spaces' + 'x'.repeat(200) } })
  assert.match(replaced.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/)
  await replaced.arrayBuffer()
  const fresh = await fetch(`${stack.url}/api/version`, { headers: gen })
  assert.match(fresh.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/)
  await fresh.arrayBuffer()
})

test('query strings pass through; the upstream path is the route\'s, not the client\'s', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/sys/tags?verbose=1&x=%2F..%2Fpull`, { headers: admin })
  assert.equal(response.status, 200)
  await response.arrayBuffer()
  const seen = stack.fake.last()
  assert.equal(seen?.path, '/api/tags')
  assert.equal(seen?.query, '?verbose=1&x=%2F..%2Fpull')
})

test('/sys aliases forward to their /api twins', async (t) => {
  const stack = await startStack(t)
  const cases: Array<[string, string, string, unknown]> = [
    ['GET', '/sys/tags', '/api/tags', undefined],
    ['POST', '/sys/show', '/api/show', { name: 'llama3.2' }],
    ['POST', '/sys/pull', '/api/pull', { name: 'llama3.2', stream: false }],
    ['POST', '/sys/push', '/api/push', { name: 'llama3.2', stream: false }],
    ['POST', '/sys/copy', '/api/copy', { source: 'llama3.2', destination: 'copy1' }],
    ['DELETE', '/sys/delete', '/api/delete', { name: 'copy1' }],
    ['GET', '/sys/ps', '/api/ps', undefined]
  ]
  for (const [method, path, upstream, body] of cases) {
    const response = await fetch(stack.url + path, { method, headers: admin, body: body === undefined ? undefined : JSON.stringify(body) })
    assert.equal(response.status, 200, `${method} ${path}: ${await response.text()}`)
    assert.equal(stack.fake.last()?.path, upstream)
    assert.equal(stack.fake.last()?.method, method)
  }
})

test('a JSON body on DELETE /api/delete is forwarded', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/delete`, { method: 'DELETE', headers: admin, body: '{"model":"qwen3:8b"}' })
  assert.equal(response.status, 200)
  assert.equal(await response.text(), '')
  assert.equal(stack.fake.last('/api/delete')?.body.toString(), '{"model":"qwen3:8b"}')
})

test('any Content-Type is read as JSON on JSON routes (curl -d sends form-urlencoded)', async (t) => {
  const stack = await startStack(t)
  for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'application/json; charset=utf-8', 'application/octet-stream']) {
    const response = await fetch(`${stack.url}/api/embeddings`, { method: 'POST', headers: { ...gen, 'content-type': type }, body: '{"model":"nomic-embed-text","prompt":"hi"}' })
    assert.equal(response.status, 200, type)
    await response.arrayBuffer()
  }
  const noType = await new Promise<number>((resolve, reject) => {
    const url = new URL(`${stack.url}/api/embeddings`)
    const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: gen }, res => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.end('{"model":"nomic-embed-text","prompt":"hi"}')
  })
  assert.equal(noType, 200)
})

test('NDJSON streams arrive chunk by chunk, before Ollama has finished writing', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/chat`, {
    method: 'POST',
    headers: gen,
    // 400 ms between chunks: Ollama is still writing when the first arrives, however busy the machine.
    body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], fake: { chunks: 5, delay_ms: 400 } })
  })
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', /application\/x-ndjson/)
  const reader = response.body!.getReader()
  const first = await reader.read()
  const firstAt = performance.now()
  assert.ok(first.value !== undefined && first.value.length > 0)
  assert.equal(stack.fake.last('/api/chat')?.finished, false, 'the first chunk came while Ollama was still writing')
  const lines = new TextDecoder().decode(first.value).split('\n').filter(Boolean)
  let rest = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    rest += new TextDecoder().decode(value)
  }
  const elapsed = performance.now() - firstAt
  lines.push(...rest.split('\n').filter(Boolean))
  assert.equal(lines.length, 6, 'five content chunks and the final one')
  assert.ok(elapsed > 1200, `the rest came over time (${elapsed} ms), not in one burst`)
  assert.equal(JSON.parse(lines.at(-1)!).done, true)
})

test('Ollama\'s own errors pass through unchanged', async (t) => {
  const stack = await startStack(t)
  const missing = await fetch(`${stack.url}/api/show`, { method: 'POST', headers: gen, body: '{"model":"nope"}' })
  assert.equal(missing.status, 404)
  assert.deepEqual(await jsonOf(missing), { error: "model 'nope' not found" })
  const busy = await fetch(`${stack.url}/api/generate`, { method: 'POST', headers: gen, body: JSON.stringify({ model: 'llama3.2', prompt: 'x', fake: { status: 503, error: 'server busy, please try again.  maximum pending requests exceeded' } }) })
  assert.equal(busy.status, 503)
  assert.match((await jsonOf(busy)).error, /server busy/)
  assert.equal(stack.fake.count('/api/generate'), 1, 'a 503 is not retried')
  const inStream = await fetch(`${stack.url}/api/pull`, { method: 'POST', headers: admin, body: '{"model":"nope"}' })
  assert.equal(inStream.status, 200)
  const lines = (await inStream.text()).trim().split('\n').map(l => JSON.parse(l))
  assert.deepEqual(lines.at(-1), { error: 'pull model manifest: file does not exist' })
})

test('hop-by-hop response headers from Ollama are dropped', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/generate`, {
    method: 'POST',
    headers: gen,
    body: JSON.stringify({ model: 'llama3.2', prompt: 'x', stream: false, fake: { headers: { 'keep-alive': 'timeout=1', 'x-ollama-thing': 'yes', 'access-control-allow-origin': 'http://ollama.local' } } })
  })
  await response.arrayBuffer()
  assert.equal(response.headers.get('x-ollama-thing'), 'yes')
  assert.equal(response.headers.get('access-control-allow-origin'), '*', 'the proxy\'s CORS answer wins')
  assert.notEqual(response.headers.get('keep-alive'), 'timeout=1')
})

test('Ollama down gives 502 JSON without the upstream address, in each dialect', async (t) => {
  const stack = await startStack(t)
  const port = new URL(stack.fake.url).port
  await stack.fake.close()
  const native = await fetch(`${stack.url}/api/tags`, { headers: gen })
  assert.equal(native.status, 502)
  const nativeText = await native.text()
  assert.deepEqual(JSON.parse(nativeText), { error: 'Ollama is unreachable' })
  assert.ok(!nativeText.includes(port))
  const openai = await fetch(`${stack.url}/v1/models`, { headers: gen })
  assert.equal(openai.status, 502)
  assert.equal((await jsonOf(openai)).error.type, 'api_error')
  const anthropic = await fetch(`${stack.url}/v1/messages`, { method: 'POST', headers: gen, body: '{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]}' })
  assert.equal(anthropic.status, 502)
  assert.equal((await jsonOf(anthropic)).type, 'error')
  const health = await fetch(`${stack.url}/healthz`)
  assert.equal(health.status, 200, 'the proxy itself stays healthy')
  await health.arrayBuffer()
})

test('bodies above the limit get 413 JSON; the limit is configurable', async (t) => {
  const stack = await startStack(t, { server: { body_limit: 1024 } })
  const big = JSON.stringify({ model: 'llama3.2', prompt: 'x'.repeat(2000) })
  const response = await fetch(`${stack.url}/api/generate`, { method: 'POST', headers: gen, body: big })
  assert.equal(response.status, 413)
  assert.match((await jsonOf(response)).error, /larger than the limit of 1024 bytes/)
  assert.equal(stack.fake.count('/api/generate'), 0)
})

test('the default body limit takes a 30 MB chat with base64 images', async (t) => {
  const stack = await startStack(t)
  const image = Buffer.alloc(22 * 1024 * 1024, 7).toString('base64')
  const response = await fetch(`${stack.url}/api/chat`, {
    method: 'POST',
    headers: gen,
    body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'what is it', images: [image] }], stream: false })
  })
  assert.equal(response.status, 200)
  await response.arrayBuffer()
  assert.ok(stack.fake.last('/api/chat')!.bodyBytes > 29 * 1024 * 1024)
})

test('SSE streams on /v1 arrive event by event, like NDJSON on native paths', async (t) => {
  const stack = await startStack(t)
  for (const [path, body] of [
    ['/v1/chat/completions', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true, fake: { chunks: 4, delay_ms: 200 } }],
    ['/v1/messages', { model: 'llama3.2', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }], stream: true, fake: { chunks: 4, delay_ms: 200 } }]
  ] as const) {
    const response = await fetch(stack.url + path, { method: 'POST', headers: gen, body: JSON.stringify(body) })
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/)
    const reader = response.body!.getReader()
    const arrivals: number[] = []
    let text = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      arrivals.push(performance.now())
      text += new TextDecoder().decode(value)
    }
    assert.ok(arrivals.length >= 4, `${path}: ${arrivals.length} reads`)
    assert.ok(arrivals.at(-1)! - arrivals[0] > 500, `${path}: events spread over time`)
    assert.match(text, path === '/v1/messages' ? /event: message_stop/ : /data: \[DONE\]/)
  }
})
