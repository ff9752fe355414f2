// Issue 21 through the whole proxy: the cap holds with one host, a light key is served while
// another floods, per-key queue bounds, caps on what a request asks of the GPU, and the queue
// made visible. The scheduler itself is tested alone in slot-scheduler.test.ts.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bearer, KEYS, TOKENS } from './fixtures/keys.js'
import { jsonOf, startStack, waitUntil, type Stack } from './helper.js'

const FLOOD = KEYS.flood
const LIGHT = KEYS.light

const keys = (extra: Record<string, unknown> = {}) => ({
  auth: {
    keys: [
      { name: 'flood', key: FLOOD, scopes: ['generate'], ...extra },
      { name: 'light', key: LIGHT, scopes: ['generate'] }
    ]
  }
})

function chat (stack: Stack, key: string, fake: Record<string, unknown>, id?: string, signal?: AbortSignal): Promise<Response> {
  return fetch(`${stack.url}/api/chat`, {
    method: 'POST',
    signal,
    headers: { ...bearer(key), ...(id !== undefined ? { 'x-request-id': id } : {}) },
    body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: id ?? 'x' }], stream: false, fake })
  })
}

test('service.max_concurrent holds with one host (base_url): Ollama never works on more at once', async (t) => {
  const stack = await startStack(t, { ...keys(), service: { max_concurrent: 2, queue_size: 100 } })
  const answers = await Promise.all(Array.from({ length: 12 }, () => chat(stack, FLOOD, { chunks: 3, delay_ms: 30 })))
  assert.deepEqual(answers.map(a => a.status), Array(12).fill(200))
  await Promise.all(answers.map(async a => await a.arrayBuffer()))
  assert.equal(stack.fake.count('/api/chat'), 12)
  assert.equal(stack.fake.maxActive, 2, 'at most max_concurrent requests reached Ollama at once')
})

test('a light key is served at the next free slot while another key floods the queue', async (t) => {
  const stack = await startStack(t, { ...keys(), service: { max_concurrent: 1, queue_size: 100 } })
  // The first flood request holds the slot until the light one waits too, however slow the machine.
  const holder = new AbortController()
  const running = chat(stack, FLOOD, { first_byte_delay_ms: 60_000 }, 'flood-0', holder.signal)
  await stack.fake.waitForRequest('/api/chat')
  const flood = Array.from({ length: 19 }, (_, i) => chat(stack, FLOOD, { chunks: 2, delay_ms: 20 }, `flood-${i + 1}`))
  await waitUntil('the flood to fill the queue', () => stack.app.upstreams.queued === 19)
  const light = chat(stack, LIGHT, { chunks: 1 }, 'light')
  await waitUntil('the light key to wait', () => stack.app.upstreams.queued === 20)
  holder.abort()
  await assert.rejects(running)
  await (await light).arrayBuffer()
  const order = stack.fake.requests.filter(r => r.path === '/api/chat').map(r => (r.json as { messages: Array<{ content: string }> }).messages[0].content)
  // The one running when it arrived finishes, then the light key goes: second or third at most.
  assert.ok(order.indexOf('light') <= 2, `the light key went ${order.indexOf('light') + 1}th: ${order.join(' ')}`)
  await Promise.all((await Promise.all(flood)).map(async a => await a.arrayBuffer()))
  const line = stack.logs.requestLines().find(l => l.reqId === 'light')!
  assert.equal(typeof line.queueMs, 'number', 'the log line has the queue wait')
})

test('limits.queued bounds one key\'s waiting requests: 429 with Retry-After, others still queue', async (t) => {
  const stack = await startStack(t, { ...keys({ limits: { queued: 2 } }), service: { max_concurrent: 1, queue_size: 100 } })
  const running = chat(stack, FLOOD, { chunks: 2, delay_ms: 200 })
  await stack.fake.waitForRequest('/api/chat')
  const waiting = [chat(stack, FLOOD, { chunks: 1 }), chat(stack, FLOOD, { chunks: 1 })]
  await waitUntil('two to wait', () => stack.app.upstreams.queued === 2)
  const refused = await chat(stack, FLOOD, { chunks: 1 })
  assert.equal(refused.status, 429)
  assert.equal(refused.headers.get('retry-after'), '1')
  assert.match((await jsonOf(refused)).error, /2 requests waiting/)
  const other = chat(stack, LIGHT, { chunks: 1 })
  await waitUntil('the other key to wait too', () => stack.app.upstreams.queued === 3)
  for (const answer of await Promise.all([running, ...waiting, other])) {
    assert.equal(answer.status, 200)
    await answer.arrayBuffer()
  }
  await waitUntil('every line', () => stack.logs.requestLines().length === 5)
  assert.equal(stack.logs.requestLines().find(l => l.status === 429)?.limit, 'queued')
})

test('a queue timeout answers 504 in the caller\'s dialect', async (t) => {
  const stack = await startStack(t, { ...keys(), service: { max_concurrent: 1, queue_timeout: 0.2 } })
  const running = chat(stack, FLOOD, { chunks: 2, delay_ms: 2000 })
  await stack.fake.waitForRequest('/api/chat')
  const native = await chat(stack, LIGHT, { chunks: 1 })
  assert.equal(native.status, 504)
  assert.match((await jsonOf(native)).error, /no Ollama host was free within 0.2 s/)
  const openai = await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: bearer(LIGHT), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }) })
  assert.equal(openai.status, 504)
  assert.equal(typeof (await jsonOf(openai)).error.message, 'string')
  await (await running).arrayBuffer()
})

test('/metrics and /readyz show the queue: waiting requests per key, queued per host, the wait histogram', async (t) => {
  const stack = await startStack(t, { ...keys(), service: { max_concurrent: 1, queue_size: 100 } })
  const running = chat(stack, FLOOD, { chunks: 2, delay_ms: 300 })
  await stack.fake.waitForRequest('/api/chat')
  const waiting = [chat(stack, FLOOD, { chunks: 1 }), chat(stack, FLOOD, { chunks: 1 }), chat(stack, LIGHT, { chunks: 1 })]
  await waitUntil('three to wait', () => stack.app.upstreams.queued === 3)
  const page = await (await fetch(`${stack.url}/metrics`, { headers: bearer(TOKENS.model) })).text()
  assert.match(page, /ollama_proxy_waiting_requests\{key="flood"\} 2/)
  assert.match(page, /ollama_proxy_waiting_requests\{key="light"\} 1/)
  assert.match(page, /ollama_proxy_upstream_queued\{host="host-1"\} 3/)
  const ready = await jsonOf(await fetch(`${stack.url}/readyz`))
  assert.equal(ready.upstreams.queued, 3)
  for (const answer of await Promise.all([running, ...waiting])) await answer.arrayBuffer()
  await waitUntil('every line', () => stack.logs.requestLines().length >= 5)
  const after = await (await fetch(`${stack.url}/metrics`, { headers: bearer(TOKENS.model) })).text()
  assert.match(after, /ollama_proxy_queue_wait_seconds_count\{route="\/api\/chat"\} 4/)
})

// [route, body, cap that refuses it]: every native route carrying keep_alive and options.num_ctx.
const capped = { caps: { num_ctx: 8192, keep_alive: '30m', unload: false } }
const capCases: Array<[string, Record<string, unknown>, string | undefined]> = [
  ['/api/chat', { messages: [{ role: 'user', content: 'x' }], options: { num_ctx: 131072 } }, 'num_ctx'],
  ['/api/generate', { prompt: 'x', options: { num_ctx: 8193 } }, 'num_ctx'],
  ['/api/embed', { input: 'x', options: { num_ctx: 65536 } }, 'num_ctx'],
  ['/api/embeddings', { prompt: 'x', options: { num_ctx: 65536 } }, 'num_ctx'],
  ['/api/chat', { messages: [{ role: 'user', content: 'x' }], keep_alive: -1 }, 'keep_alive'],
  ['/api/generate', { prompt: 'x', KEEP_ALIVE: '2h' }, 'keep_alive'],
  ['/api/embed', { input: 'x', keep_alive: 0 }, 'unload'],
  ['/api/embeddings', { prompt: 'x', keep_alive: '0s' }, 'unload'],
  ['/api/chat', { messages: [{ role: 'user', content: 'x' }], keep_alive: '30m', options: { num_ctx: 8192 } }, undefined],
  ['/api/generate', { prompt: 'x', options: { NUM_CTX: 131072 } }, undefined]
]

test('caps: what one request asks of the GPU is refused with 400 naming the cap, before Ollama sees it', async (t) => {
  const stack = await startStack(t, keys(capped))
  for (const [path, body, cap] of capCases) {
    const before = stack.fake.requests.length
    const model = path.includes('embed') ? 'nomic-embed-text' : 'llama3.2'
    const response = await fetch(stack.url + path, { method: 'POST', headers: bearer(FLOOD), body: JSON.stringify({ model, ...body, stream: false }) })
    const label = `${path} ${JSON.stringify(body)}`
    if (cap === undefined) {
      assert.equal(response.status, 200, label)
      assert.equal(stack.fake.requests.length, before + 1, label)
      await response.arrayBuffer()
      continue
    }
    assert.equal(response.status, 400, label)
    assert.match((await jsonOf(response)).error, new RegExp(`caps\\.${cap}`), label)
    assert.equal(stack.fake.requests.length, before, `${label} never reaches Ollama`)
  }
  const other = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(LIGHT), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], keep_alive: -1, stream: false }) })
  assert.equal(other.status, 200, 'a key without caps is not held to them')
  await other.arrayBuffer()
})
