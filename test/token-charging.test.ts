import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bearer, KEYS, TOKENS } from './fixtures/keys.js'
import { jsonOf, startStack, type Stack } from './helper.js'
import { MemoryWindows } from '../plugins/limits/key-limits.js'
import { refuseWhenTokensSpent, tokensKey } from '../plugins/limits/token-window.js'
import { ProxyError } from '../plugins/http/error-shapes.js'
import { UsageMeter } from '../plugins/usage/usage-meter.js'

const KEY = KEYS.app
const auth = bearer(KEY)

function keyWith (tokensPerMinute: number) {
  return { auth: { generate_tokens: [], keys: [{ name: 'app', key: KEY, scopes: ['generate', 'models:read'], limits: { tokens_per_minute: tokensPerMinute } }] } }
}

/** Records every charge to the key's token window, and lets a test wait for the next one. */
function watchCharges (stack: Stack) {
  const windows = stack.app.limitWindows
  const incr = windows.incr.bind(windows)
  const charges: number[] = []
  let waiting: ((tokens: number) => void) | undefined
  windows.incr = (key, amount, now) => {
    if (key === tokensKey('app')) {
      charges.push(amount)
      waiting?.(amount)
      waiting = undefined
    }
    return incr(key, amount, now)
  }
  return {
    charges,
    /** The next charge (or the one already made since the last call). */
    next: async (seen: number): Promise<number> => {
      if (charges.length > seen) return charges[seen]
      return await new Promise<number>(resolve => { waiting = resolve })
    }
  }
}

const chat = { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }
const CHUNKS = 5
const fake = { chunks: CHUNKS, prompt_tokens: 11, delay_ms: 1 }
const reported = 11 + CHUNKS

// [name, path, body, tokens charged]. Without Ollama's counts, each NDJSON line or SSE event streamed
// counts as one token (for /v1 streams: the content chunks + the finish chunk + [DONE]), plus the
// prompt's text at 4 bytes per token (here "x": 1 token).
const dialects: Array<[string, string, Record<string, unknown>, number]> = [
  ['native chat, streamed', '/api/chat', { ...chat, fake }, reported],
  ['native chat, one document', '/api/chat', { ...chat, stream: false, fake }, reported],
  ['native generate, streamed', '/api/generate', { model: 'llama3.2', prompt: 'x', fake }, reported],
  ['native generate, one document', '/api/generate', { model: 'llama3.2', prompt: 'x', stream: false, fake }, reported],
  ['native embed', '/api/embed', { model: 'nomic-embed-text', input: ['a', 'b'], fake }, 11],
  ['legacy embeddings: prompt text at 4 bytes per token', '/api/embeddings', { model: 'nomic-embed-text', prompt: 'x'.repeat(41), fake }, 11],
  ['/v1 chat, one document', '/v1/chat/completions', { ...chat, fake }, reported],
  ['/v1 chat, streamed with include_usage', '/v1/chat/completions', { ...chat, stream: true, stream_options: { include_usage: true }, fake }, reported],
  ['/v1 chat, streamed without include_usage', '/v1/chat/completions', { ...chat, stream: true, fake }, 1 + CHUNKS + 2],
  ['/v1 completions, one document', '/v1/completions', { model: 'llama3.2', prompt: 'x', fake }, reported],
  ['/v1 completions, streamed with include_usage', '/v1/completions', { model: 'llama3.2', prompt: 'x', stream: true, stream_options: { include_usage: true }, fake }, reported],
  ['/v1 completions, streamed without include_usage', '/v1/completions', { model: 'llama3.2', prompt: 'x', stream: true, fake }, 1 + CHUNKS + 2],
  ['/v1 embeddings', '/v1/embeddings', { model: 'nomic-embed-text', input: 'a', fake }, 11],
  ['/v1/responses, one document', '/v1/responses', { model: 'llama3.2', input: 'x', fake }, reported],
  ['/v1/responses, streamed', '/v1/responses', { model: 'llama3.2', input: 'x', stream: true, fake }, reported],
  ['/v1/messages, one document', '/v1/messages', { ...chat, max_tokens: 50, fake }, reported],
  ['/v1/messages, streamed', '/v1/messages', { ...chat, max_tokens: 50, stream: true, fake }, reported]
]

test('every answer is charged: Ollama\'s counts when it prints them, else the documented estimate', async (t) => {
  const stack = await startStack(t, keyWith(1_000_000_000))
  const watch = watchCharges(stack)
  for (const [name, path, body, tokens] of dialects) {
    const seen = watch.charges.length
    const response = await fetch(stack.url + path, { method: 'POST', headers: { ...auth, 'x-request-id': `r${seen}` }, body: JSON.stringify(body) })
    assert.equal(response.status, 200, name)
    await response.arrayBuffer()
    // Charged when Ollama's answer ends, in the same turn as the proxy ends its own answer.
    assert.deepEqual(watch.charges.slice(seen), [tokens], `${name}: charged once, ${tokens} tokens`)
  }
})

test('Ollama\'s error answers are not charged', async (t) => {
  const stack = await startStack(t, keyWith(1_000_000_000))
  const watch = watchCharges(stack)
  const response = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth, body: JSON.stringify({ ...chat, fake: { status: 500 } }) })
  assert.equal(response.status, 500)
  await response.arrayBuffer()
  const ok = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth, body: JSON.stringify({ ...chat, fake }) })
  await ok.arrayBuffer()
  assert.deepEqual(watch.charges, [reported], 'only the answer that generated was charged')
})

// A client that leaves mid-stream is charged what it was sent: at least the frames it read.
const aborts: Array<[string, string, Record<string, unknown>, number]> = [
  ['native chat', '/api/chat', chat, 0],
  ['/v1 chat without include_usage', '/v1/chat/completions', { ...chat, stream: true }, 0],
  ['/v1/messages (input tokens from message_start)', '/v1/messages', { ...chat, max_tokens: 5000, stream: true }, 11],
  ['/v1/responses', '/v1/responses', { model: 'llama3.2', input: 'x', stream: true }, 0]
]

test('a client that leaves mid-stream is charged the estimate of what was streamed', async (t) => {
  const stack = await startStack(t, keyWith(1_000_000_000))
  const watch = watchCharges(stack)
  for (const [name, path, body, prompt] of aborts) {
    const seen = watch.charges.length
    const controller = new AbortController()
    const response = await fetch(stack.url + path, { method: 'POST', headers: auth, signal: controller.signal, body: JSON.stringify({ ...body, fake: { chunks: 2000, delay_ms: 2, prompt_tokens: 11 } }) })
    assert.equal(response.status, 200, name)
    const reader = response.body!.getReader()
    let newlines = 0
    while (newlines < 40) {
      const { value } = await reader.read()
      for (const byte of value ?? []) if (byte === 10) newlines++
    }
    controller.abort()
    await reader.cancel().catch(() => {})
    const charged = await watch.next(seen)
    const framesRead = path === '/api/chat' ? newlines : Math.floor(newlines / (path === '/v1/chat/completions' ? 2 : 3))
    assert.ok(charged >= prompt + framesRead, `${name}: charged ${charged}, the client read ${framesRead} frames`)
    assert.ok(charged < prompt + 2100, `${name}: charged ${charged}, no more than was generated`)
    await stack.fake.waitForEarlyClose(path)
  }
})

test('a spent window refuses the next request up front; streams without counts spend it too', async (t) => {
  // Windows are fixed minutes: one fixed instant keeps the requests inside one.
  const stack = await startStack(t, keyWith(10), { clock: () => 1_800_000_000_000 })
  const watch = watchCharges(stack)
  const first = await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ ...chat, stream: true, fake: { chunks: 12 } }) })
  assert.equal(first.status, 200)
  await first.arrayBuffer()
  assert.deepEqual(watch.charges, [15])
  const refused = await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ ...chat, stream: true }) })
  assert.equal(refused.status, 429)
  assert.match((await jsonOf(refused)).error.message, /10 tokens per minute/)
  assert.equal(stack.fake.count('/v1/chat/completions'), 1, 'the refused request never reached Ollama')
})

test('refuseWhenTokensSpent reads only the window: below the limit passes, at it refuses with 429', async () => {
  const windows = new MemoryWindows()
  const now = 120_000 + 15_000
  const key = (tokensPerMinute: number | null) => ({ name: 'app', limits: { requestsPerMinute: null, tokensPerMinute, concurrent: null, tokensPerDay: null, tokensPerMonth: null, requestsPerDay: null, queued: null } })
  await refuseWhenTokensSpent(windows, key(10), now)
  windows.incr(tokensKey('app'), 9, now)
  await refuseWhenTokensSpent(windows, key(10), now)
  windows.incr(tokensKey('app'), 1, now)
  await assert.rejects(refuseWhenTokensSpent(windows, key(10), now), (err: ProxyError) =>
    err.statusCode === 429 && err.headers['retry-after'] === '45' && err.headers['ratelimit-remaining'] === '0')
  await refuseWhenTokensSpent(windows, key(null), now)
  await refuseWhenTokensSpent(windows, key(10), now + 45_000)
})

test('frames are counted across chunk boundaries: NDJSON lines, SSE events', () => {
  const sse = 'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
  const ndjson = '{"done":false}\n{"done":false}\n{"done":true}\n'
  for (let cut = 0; cut <= sse.length; cut++) {
    const counter = new UsageMeter('event', false, 0)
    counter.count(Buffer.from(sse.slice(0, cut)))
    counter.count(Buffer.from(sse.slice(cut)))
    assert.equal(counter.estimate, 3, `sse cut at ${cut}`)
  }
  for (let cut = 0; cut <= ndjson.length; cut++) {
    const counter = new UsageMeter('line', false, 0)
    counter.count(Buffer.from(ndjson.slice(0, cut)))
    counter.count(Buffer.from(ndjson.slice(cut)))
    assert.equal(counter.estimate, 3, `ndjson cut at ${cut}`)
  }
  const encoded = new UsageMeter('line', true, 0)
  encoded.count(Buffer.alloc(10))
  assert.equal(encoded.estimate, 3, 'a compressed answer: one token per 4 bytes')
})

test('while an answer streams, the request keeps only the small fields of its body, not the prompt or history', async (t) => {
  const stack = await startStack(t)
  const seen: unknown[] = []
  stack.app.onExchangeDone((exchange) => { if (exchange.route?.path.startsWith('/api/')) seen.push(exchange.request.body) })
  const history = Array.from({ length: 50 }, (_, i) => ({ role: 'user', content: `message ${i} `.repeat(100) }))
  const prompt = 'a long prompt '.repeat(1000)
  const cases = [
    { path: '/api/chat', body: { model: 'llama3.2', messages: history, stream: true }, kept: { model: 'llama3.2' } },
    { path: '/api/generate', body: { model: 'llama3.2', prompt, stream: false }, kept: { model: 'llama3.2' } }
  ]
  for (const { path, body, kept } of cases) {
    const response = await fetch(stack.url + path, { method: 'POST', headers: bearer(TOKENS.generate), body: JSON.stringify(body) })
    assert.equal(response.status, 200, path)
    await response.text()
    assert.deepEqual(seen.pop(), kept, `${path}: only the small fields stay`)
  }
})

test('a client that leaves early pays for its prompt: Ollama never printed its count, the estimate stands in', async (t) => {
  const stack = await startStack(t, keyWith(1_000_000_000))
  const watch = watchCharges(stack)
  // ~4,000 tokens of prompt text each (16,000 bytes at 4 bytes a token).
  const longChat = { model: 'llama3.2', messages: [{ role: 'user', content: 'w'.repeat(16_000) }], stream: true }
  let total = 0
  for (let i = 0; i < 5; i++) {
    const seen = watch.charges.length
    const controller = new AbortController()
    const response = await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: auth, signal: controller.signal, body: JSON.stringify({ ...longChat, fake: { chunks: 2000, delay_ms: 2 } }) })
    const reader = response.body!.getReader()
    await reader.read()
    controller.abort()
    await reader.cancel().catch(() => {})
    total += await watch.next(seen)
  }
  assert.ok(total >= 5 * 4000, `five prompts left early cost ${total} tokens`)
})

test('/v1/messages: cached prompt tokens Ollama reports apart (cache_read_input_tokens) are charged too', async (t) => {
  const stack = await startStack(t, keyWith(1_000_000_000))
  const watch = watchCharges(stack)
  for (const stream of [false, true]) {
    const seen = watch.charges.length
    const response = await fetch(`${stack.url}/v1/messages`, { method: 'POST', headers: auth, body: JSON.stringify({ ...chat, max_tokens: 50, stream, fake: { chunks: 4, prompt_tokens: 11, cached_tokens: 8 } }) })
    assert.equal(response.status, 200)
    const text = await response.text()
    assert.match(text, /"cache_read_input_tokens":8/, 'the fake reports the cache apart, as Ollama 0.33.3 does')
    assert.deepEqual(watch.charges.slice(seen), [11 + 4], `stream: ${stream}`)
  }
})
