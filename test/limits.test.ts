import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import authPlugin from '../plugins/auth/auth.js'
import limitsPlugin from '../plugins/limits/limits.js'
import usagePlugin from '../plugins/usage/accounting.js'
import { WINDOW_MS } from '../plugins/limits/key-limits.js'
import { appKeyWithLimits, authWith, bearer, KEYS, namedKey } from './fixtures/keys.js'
import { jsonOf, startStack, waitUntil } from './helper.js'
import { pluginHarness, tableRows, type TestHandler } from './plugin-harness.js'

const auth = bearer(KEYS.app)

function keyWith (limits: Record<string, number>) {
  return authWith([appKeyWithLimits(limits)], ['model'])
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

/** One second into a minute window, as the limits stage's clock. */
const ONE_SECOND_IN = 1_000 * WINDOW_MS + 1000

const LIMITED_ROUTES = tableRows('GET /api/tags', 'POST /api/chat', 'POST /api/generate', 'POST /api/pull', 'POST /v1/messages')

/** The key stage and the limits stage alone, the key "app" with these limits (and scopes generate and models:admin). */
async function limitsAlone (t: TestContext, limits: Record<string, number>, options: { clock?: () => number, handler?: TestHandler } = {}) {
  const config = authWith([namedKey('app', ['generate', 'models:admin'], { limits })], ['model'])
  return await pluginHarness(t, { plugins: [authPlugin, usagePlugin, limitsPlugin], routes: LIMITED_ROUTES, config, ...options })
}

/** A promise with its resolve at hand. */
function deferred (): { promise: Promise<void>, resolve: () => void } {
  let open = () => {}
  const promise = new Promise<void>(resolve => { open = resolve })
  return { promise, resolve: () => { open() } }
}

test('requests per minute: over the limit is 429 with Retry-After and RateLimit headers, in dialect', async (t) => {
  let now = ONE_SECOND_IN
  const harness = await limitsAlone(t, { requests_per_minute: 3 }, { clock: () => now })
  const { app } = harness
  for (let i = 0; i < 3; i++) {
    const ok = await app.inject({ url: '/api/tags', headers: auth })
    assert.equal(ok.statusCode, 200)
    assert.equal(ok.headers['ratelimit-limit'], '3')
    assert.equal(ok.headers['ratelimit-remaining'], String(2 - i))
  }
  const over = await app.inject({ url: '/api/tags', headers: auth })
  assert.equal(over.statusCode, 429)
  assert.equal(over.headers['retry-after'], '59', 'the seconds left in the minute')
  assert.equal(over.headers['ratelimit-limit'], '3')
  assert.equal(over.headers['ratelimit-remaining'], '0')
  assert.equal(over.headers['ratelimit-reset'], '59')
  assert.match(over.json().error, /3 requests per minute/)
  const anthropic = await app.inject({ method: 'POST', url: '/v1/messages', headers: auth, payload: '{"model":"llama3.2","max_tokens":5,"messages":[{"role":"user","content":"x"}]}' })
  assert.equal(anthropic.statusCode, 429)
  assert.equal(anthropic.json().error.type, 'rate_limit_error')
  assert.equal(harness.reached.length, 3, 'refused requests never reach the route')
  await harness.endedCount(5)
  assert.deepEqual(harness.ended.map(exchange => exchange.refusedBy), [undefined, undefined, undefined, 'requests_per_minute', 'requests_per_minute'])

  now += WINDOW_MS - 1000
  const nextMinute = await app.inject({ url: '/api/tags', headers: auth })
  assert.equal(nextMinute.statusCode, 200, 'the window turns with the clock')
  assert.equal(nextMinute.headers['ratelimit-remaining'], '2')
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
  const gate = deferred()
  let arrived = deferred()
  const harness = await limitsAlone(t, { concurrent: 2 }, {
    handler: async () => {
      arrived.resolve()
      await gate.promise
      return { reached: true }
    }
  })
  const { app } = harness
  const slots = () => app.concurrencySlots.count('app')
  const post = async (url = '/api/chat') => await app.inject({ method: 'POST', url, headers: auth, payload: chat() })
  const first = post()
  await arrived.promise
  arrived = deferred()
  const second = post()
  await arrived.promise
  // Both hold their slot while they run.
  assert.equal(slots(), 2)
  const third = await post()
  assert.equal(third.statusCode, 429)
  assert.equal(third.headers['retry-after'], '1')
  assert.equal(third.headers['ratelimit-limit'], '2')
  assert.match(third.json().error, /2 requests at once/)
  assert.equal(slots(), 2, 'a refused request takes no slot')
  gate.resolve()
  for (const response of await Promise.all([first, second])) assert.equal(response.statusCode, 200)
  // The slots come back when the exchanges end, not when the handler returns.
  await harness.endedCount(3)
  assert.equal(slots(), 0)
  assert.equal(harness.ended.find(exchange => exchange.refusedBy !== undefined)?.refusedBy, 'concurrent')
  const after = await post()
  assert.equal(after.statusCode, 200)
  await harness.endedCount(4)
  assert.equal(slots(), 0)
})

test('concurrent requests: reading model information takes no slot; managing models does', async (t) => {
  const gate = deferred()
  const arrived = deferred()
  const harness = await limitsAlone(t, { concurrent: 1 }, {
    handler: async (exchange) => {
      if (exchange.route?.path === '/api/pull') {
        arrived.resolve()
        await gate.promise
      }
      return { reached: true }
    }
  })
  const { app } = harness
  const holding = app.inject({ method: 'POST', url: '/api/pull', headers: auth, payload: '{"model":"llama3.2"}' })
  await arrived.promise
  assert.equal(app.concurrencySlots.count('app'), 1, 'a pull holds the key\'s slot')
  const read = await app.inject({ url: '/api/tags', headers: auth })
  assert.equal(read.statusCode, 200, 'a read passes while the only slot is held')
  assert.equal(read.headers['ratelimit-limit'], undefined, 'and is not counted against concurrency')
  const chatWhileHeld = await app.inject({ method: 'POST', url: '/api/chat', headers: auth, payload: chat() })
  assert.equal(chatWhileHeld.statusCode, 429)
  gate.resolve()
  assert.equal((await holding).statusCode, 200)
  await harness.endedCount(3)
  assert.equal(app.concurrencySlots.count('app'), 0)
})

test('tokens per minute spent: inference is refused up front; reading and managing models are not', async (t) => {
  const now = ONE_SECOND_IN
  const harness = await limitsAlone(t, { tokens_per_minute: 10 }, { clock: () => now })
  const { app } = harness
  app.chargeTokens('app', 9)
  const under = await app.inject({ method: 'POST', url: '/api/generate', headers: auth, payload: '{"model":"llama3.2","prompt":"hi"}' })
  assert.equal(under.statusCode, 200, 'a window not yet spent lets the request run')
  app.chargeTokens('app', 1)
  for (const [url, body] of [['/api/generate', '{"model":"llama3.2","prompt":"hi"}'], ['/api/chat', chat()]] as const) {
    const refused = await app.inject({ method: 'POST', url, headers: auth, payload: body })
    assert.equal(refused.statusCode, 429, url)
    assert.match(refused.json().error, /^token limit exceeded: this key may use 10 tokens per minute; retry in 59 s$/)
    assert.equal(refused.headers['retry-after'], '59')
    assert.equal(refused.headers['ratelimit-remaining'], '0')
  }
  assert.equal((await app.inject({ url: '/api/tags', headers: auth })).statusCode, 200)
  assert.equal((await app.inject({ method: 'POST', url: '/api/pull', headers: auth, payload: '{"model":"llama3.2"}' })).statusCode, 200)
  await harness.endedCount(5)
  assert.deepEqual(harness.ended.map(exchange => exchange.refusedBy), [undefined, 'tokens_per_minute', 'tokens_per_minute', undefined, undefined])
})

test('1,000 aborted requests leave every concurrency slot free', async (t) => {
  // Five keys, each with four slots, run their rounds side by side: 5 x 50 rounds x 4 requests.
  const lanes = Array.from({ length: 5 }, (_, i) => ({ name: `app${i}`, key: `${KEYS.app}-lane${i}` }))
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
        const response = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(lane.key), body: chat(fake, true), signal: controller.signal })
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
  const after = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(lanes[0].key), body: chat() })
  assert.equal(after.status, 200)
  await after.arrayBuffer()
})
