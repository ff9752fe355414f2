import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { WINDOW_MS } from '../plugins/limits/key-limits.js'
import { jsonOf, startStack, waitUntil } from './helper.js'

const KEY = 'limited-key-000000000000000000000001'
const auth = { authorization: `Bearer ${KEY}` }

function keyWith (limits: Record<string, number>) {
  return { auth: { generate_tokens: [], keys: [{ name: 'app', key: KEY, scopes: ['generate', 'models:read'], limits }] } }
}

/**
 * Limits count in fixed minutes of Date.now(): the clock stands still one second into a minute for
 * the test, so its requests all fall in one window however slow the machine (timers still run).
 */
function inOneWindow (t: TestContext): void {
  t.mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS + 1000 })
}

const chat = (fake: Record<string, unknown> = {}, stream = false) =>
  JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream, fake })

test('requests per minute: over the limit is 429 with Retry-After and RateLimit headers, in dialect', async (t) => {
  inOneWindow(t)
  const stack = await startStack(t, keyWith({ requests_per_minute: 3 }))
  for (let i = 0; i < 3; i++) {
    const ok = await fetch(`${stack.url}/api/tags`, { headers: auth })
    assert.equal(ok.status, 200)
    assert.equal(ok.headers.get('ratelimit-limit'), '3')
    assert.equal(ok.headers.get('ratelimit-remaining'), String(2 - i))
    await ok.arrayBuffer()
  }
  const over = await fetch(`${stack.url}/api/tags`, { headers: auth })
  assert.equal(over.status, 429)
  assert.ok(Number(over.headers.get('retry-after')) > 0)
  assert.equal(over.headers.get('ratelimit-limit'), '3')
  assert.equal(over.headers.get('ratelimit-remaining'), '0')
  assert.ok(over.headers.get('ratelimit-reset') !== null)
  assert.match((await jsonOf(over)).error, /3 requests per minute/)
  const anthropic = await fetch(`${stack.url}/v1/messages`, { method: 'POST', headers: auth, body: '{"model":"llama3.2","max_tokens":5,"messages":[{"role":"user","content":"x"}]}' })
  assert.equal(anthropic.status, 429)
  assert.equal((await jsonOf(anthropic)).error.type, 'rate_limit_error')
  assert.equal(stack.fake.count('/api/tags'), 3)
})

test('tokens per minute: counted from Ollama\'s figures, then 429 until the window turns', async (t) => {
  inOneWindow(t)
  const stack = await startStack(t, keyWith({ tokens_per_minute: 20 }))
  // The fake reports 11 prompt tokens and one completion token per chunk (3 by default).
  const first = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth, body: chat() })
  assert.equal(first.status, 200)
  await first.arrayBuffer()
  const second = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth, body: chat({}, true) })
  assert.equal(second.status, 200)
  await second.arrayBuffer()
  // The stream's counts are charged when the proxy has read its end, not when the client has.
  await waitUntil('the key\'s window to be spent', async () => (await stack.app.limitWindows.peek('tpm:app', Date.now())) >= 20)
  const third = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth, body: chat() })
  assert.equal(third.status, 429)
  assert.equal(third.headers.get('ratelimit-limit'), '20')
  assert.ok(Number(third.headers.get('retry-after')) >= 1 && Number(third.headers.get('retry-after')) <= 60)
  assert.match((await jsonOf(third)).error, /20 tokens per minute/)
  assert.equal(stack.fake.count('/api/chat'), 2)
})

test('concurrent requests: the slot after the limit is 429, and slots come back', async (t) => {
  const stack = await startStack(t, keyWith({ concurrent: 2 }))
  const slow = () => fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth, body: chat({ first_byte_delay_ms: 600 }) })
  const running = [slow(), slow()]
  // Both hold their slot once Ollama has them.
  await Promise.all([stack.fake.waitForRequest('/api/chat'), stack.fake.waitForRequest('/api/chat')])
  const third = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth, body: chat() })
  assert.equal(third.status, 429)
  assert.equal(third.headers.get('retry-after'), '1')
  assert.match((await jsonOf(third)).error, /2 requests at once/)
  for (const response of await Promise.all(running)) {
    assert.equal(response.status, 200)
    await response.arrayBuffer()
  }
  await waitUntil('the slots to come back', () => stack.app.concurrencySlots.count('app') === 0)
  const after = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth, body: chat() })
  assert.equal(after.status, 200)
  await after.arrayBuffer()
})

test('1,000 aborted requests leave every concurrency slot free', async (t) => {
  // Five keys, each with four slots, run their rounds side by side: 5 x 50 rounds x 4 requests.
  const lanes = Array.from({ length: 5 }, (_, i) => ({ name: `app${i}`, key: `${KEY}-lane${i}` }))
  const stack = await startStack(t, {
    auth: { generate_tokens: [], keys: lanes.map(lane => ({ name: lane.name, key: lane.key, scopes: ['generate'], limits: { concurrent: 4 } })) }
  })
  const slots = (name: string) => stack.app.concurrencySlots.count(name)
  let started = 0
  await Promise.all(lanes.map(async lane => {
    for (let round = 0; round < 50; round++) {
      const controllers = Array.from({ length: 4 }, () => new AbortController())
      const calls = controllers.map(async (controller, i) => {
        // Half leave before Ollama answers, half in the middle of the stream.
        const fake = i % 2 === 0 ? { first_byte_delay_ms: 60_000 } : { chunks: 100, delay_ms: 50 }
        const response = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: { authorization: `Bearer ${lane.key}` }, body: chat(fake, true), signal: controller.signal })
        assert.equal(response.status, 200)
        started++
        await response.body?.getReader().read()
      })
      // Leave only once all four hold a slot and the two streams have started.
      await Promise.all(calls.filter((_, i) => i % 2 === 1))
      await waitUntil(`${lane.name} round ${round}: four slots taken`, () => slots(lane.name) === 4)
      for (const controller of controllers) controller.abort()
      const outcomes = await Promise.allSettled(calls)
      for (const [i, outcome] of outcomes.entries()) {
        if (i % 2 === 0) assert.equal(outcome.status, 'rejected', 'the waiting request ended by its abort')
      }
      await waitUntil(`${lane.name} round ${round}: slots back`, () => slots(lane.name) === 0)
    }
  }))
  for (const lane of lanes) assert.equal(slots(lane.name), 0)
  assert.equal(started, 500, 'every streaming request had started before its client left')
  const after = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: { authorization: `Bearer ${lanes[0].key}` }, body: chat() })
  assert.equal(after.status, 200)
  await after.arrayBuffer()
})
