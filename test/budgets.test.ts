// Issue 20 through the whole proxy: day and month budgets refused up front and named, the
// RateLimit fields on every answer, a restart that keeps a spent budget, day and month rollover,
// /proxy/me, /proxy/usage equal to the traffic, the budget metrics. The store itself is tested
// alone in usage-store.test.ts (crash, retention, bad files) and usage-redis.test.ts (replicas).
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { startFakeOllama, type FakeOllama } from './fake-ollama.js'
import { bearer, jsonOf, LogCapture, startProxy, testConfig, waitUntil } from './helper.js'
import { redisAvailable, startRedis } from './redis-server.js'

const STUDENT = 'olp_student-budget-key-000000000000000001'
const READER = 'olp_usage-reader-key-0000000000000000000002'
/** 2026-12-07 22:00 UTC: two hours before the day turns, 24 days before the month does. */
const START = Date.UTC(2026, 11, 7, 22)
const HOUR = 60 * 60 * 1000

function config (fakeUrl: string, database: string, limits: Record<string, number>) {
  return testConfig(fakeUrl, {
    auth: {
      keys: [
        { name: 'student-17', key: STUDENT, scopes: ['generate'], limits },
        { name: 'reader', key: READER, scopes: ['usage:read'] }
      ]
    },
    usage: { database, timezone: 'UTC' }
  })
}

/** A proxy on `database` whose clock the test moves. */
async function proxyAt (t: TestContext, fake: FakeOllama, database: string, limits: Record<string, number>, clock: { now: number }) {
  const logs = new LogCapture()
  const proxy = await startProxy(t, config(fake.url, database, limits), logs, false, { clock: () => clock.now })
  return { ...proxy, logs }
}

function chat (url: string, body: Record<string, unknown> = {}): Promise<Response> {
  // The fake reports 11 prompt tokens and one completion token per chunk (3 by default): 14 a chat.
  return fetch(`${url}/api/chat`, { method: 'POST', headers: bearer(STUDENT), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: false, ...body }) })
}

async function fakeOllama (t: TestContext): Promise<FakeOllama> {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  return fake
}

const database = () => join(mkdtempSync(join(tmpdir(), 'proxy-budget-')), 'usage.sqlite')

test('a spent daily token budget refuses up front with 429 naming it, Retry-After to the day\'s end; every answer says what is left', async (t) => {
  const fake = await fakeOllama(t)
  const clock = { now: START }
  const proxy = await proxyAt(t, fake, database(), { tokens_per_day: 20 }, clock)
  const first = await chat(proxy.url)
  assert.equal(first.status, 200)
  assert.equal(first.headers.get('ratelimit-policy'), '"tokens_per_day";q=20;w=86400')
  assert.equal(first.headers.get('ratelimit'), '"tokens_per_day";r=20;t=7200')
  await first.arrayBuffer()
  const second = await chat(proxy.url)
  assert.equal(second.status, 200, 'started under the budget: it finishes, and may end past it')
  assert.equal(second.headers.get('ratelimit'), '"tokens_per_day";r=6;t=7200')
  await second.arrayBuffer()
  const before = fake.count('/api/chat')
  const refused = await chat(proxy.url)
  assert.equal(refused.status, 429)
  assert.equal(refused.headers.get('retry-after'), '7200')
  assert.equal((await jsonOf(refused)).error, 'daily token budget of student-17 is spent')
  assert.equal(fake.count('/api/chat'), before, 'never reached Ollama')
  const openai = await fetch(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: bearer(STUDENT), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }) })
  assert.equal(openai.status, 429)
  assert.equal((await jsonOf(openai)).error.type, 'rate_limit_error')
  await waitUntil('the lines', () => proxy.logs.requestLines().length === 4)
  assert.equal(proxy.logs.requestLines()[2].limit, 'tokens_per_day', 'the log line names the budget')
  // Reading model information is not refused for spent tokens.
  assert.equal((await fetch(`${proxy.url}/api/tags`, { headers: bearer(STUDENT) })).status, 200)
  // The day turns: the budget is whole again.
  clock.now = START + 2 * HOUR
  const nextDay = await chat(proxy.url)
  assert.equal(nextDay.status, 200)
  await nextDay.arrayBuffer()
})

test('a restart keeps a spent budget; the month turns it back', async (t) => {
  const fake = await fakeOllama(t)
  const file = database()
  const clock = { now: START }
  const first = await proxyAt(t, fake, file, { tokens_per_month: 14, requests_per_day: 100 }, clock)
  await (await chat(first.url)).arrayBuffer()
  await first.app.close()
  const again = await proxyAt(t, fake, file, { tokens_per_month: 14, requests_per_day: 100 }, clock)
  const refused = await chat(again.url)
  assert.equal(refused.status, 429)
  assert.equal((await jsonOf(refused)).error, 'monthly token budget of student-17 is spent')
  assert.equal(refused.headers.get('retry-after'), String((Date.UTC(2027, 0, 1) - START) / 1000))
  clock.now = Date.UTC(2027, 0, 1, 0, 0, 1)
  const nextMonth = await chat(again.url)
  assert.equal(nextMonth.status, 200)
  await nextMonth.arrayBuffer()
})

test('requests_per_day counts every request of the key, and requests still running', async (t) => {
  const fake = await fakeOllama(t)
  const clock = { now: START }
  const proxy = await proxyAt(t, fake, database(), { requests_per_day: 2 }, clock)
  const running = chat(proxy.url, { fake: { chunks: 2, delay_ms: 300 } })
  await fake.waitForRequest('/api/chat')
  const tags = await fetch(`${proxy.url}/api/tags`, { headers: bearer(STUDENT) })
  assert.equal(tags.status, 200)
  await tags.arrayBuffer()
  const third = await fetch(`${proxy.url}/api/version`, { headers: bearer(STUDENT) })
  assert.equal(third.status, 429)
  assert.equal((await jsonOf(third)).error, 'daily request budget of student-17 is spent')
  await (await running).arrayBuffer()
})

test('/proxy/me tells a key its limits and where its budgets stand; /proxy/usage is the traffic sent, for usage:read (and keys:admin) only', async (t) => {
  const fake = await fakeOllama(t)
  const clock = { now: START }
  const proxy = await proxyAt(t, fake, database(), { tokens_per_day: 1000, requests_per_day: 50 }, clock)
  for (let i = 0; i < 3; i++) await (await chat(proxy.url)).arrayBuffer()
  await (await fetch(`${proxy.url}/api/embed`, { method: 'POST', headers: bearer(STUDENT), body: JSON.stringify({ model: 'nomic-embed-text', input: 'x' }) })).arrayBuffer()
  await waitUntil('four lines', () => proxy.logs.requestLines().length === 4)

  const me = await jsonOf(await fetch(`${proxy.url}/proxy/me`, { headers: bearer(STUDENT) }))
  assert.equal(me.name, 'student-17')
  assert.deepEqual(me.limits, { tokens_per_day: 1000, requests_per_day: 50 })
  assert.deepEqual(me.usage.day.tokens, { used: 3 * 14 + 11, limit: 1000, remaining: 1000 - 53, reset: '2026-12-08T00:00:00Z' })
  assert.deepEqual(me.usage.day.requests, { used: 4, limit: 50, remaining: 46, reset: '2026-12-08T00:00:00Z' })
  assert.equal(me.usage.month.tokens.used, 53)
  assert.equal(JSON.stringify(me).includes('reader'), false, 'nothing about other keys')

  assert.equal((await fetch(`${proxy.url}/proxy/usage`, { headers: bearer(STUDENT) })).status, 401, 'usage:read or keys:admin is needed for everyone\'s usage')
  const report = await jsonOf(await fetch(`${proxy.url}/proxy/usage?since=2026-12-01&by=key,model,day`, { headers: bearer(READER) }))
  assert.equal(report.since, '2026-12-01')
  assert.equal(report.until, '2026-12-07')
  assert.deepEqual(report.rows, [
    { key: 'student-17', model: 'llama3.2:latest', day: '2026-12-07', requests: 3, prompt_tokens: 33, completion_tokens: 9 },
    { key: 'student-17', model: 'nomic-embed-text:latest', day: '2026-12-07', requests: 1, prompt_tokens: 11, completion_tokens: 0 }
  ])
  const bad = await fetch(`${proxy.url}/proxy/usage?by=color`, { headers: bearer(READER) })
  assert.equal(bad.status, 400)
  assert.match((await jsonOf(bad)).error, /by/)
  for (const [query, name] of [['by=key&by=day', 'by'], ['since=2026-12-01&since=3d', 'since'], ['until=2026-12-01&until=2026-12-02', 'until']]) {
    const twice = await fetch(`${proxy.url}/proxy/usage?${query}`, { headers: bearer(READER) })
    assert.equal(twice.status, 400, `${query}: not read as absent (the default)`)
    assert.match((await jsonOf(twice)).error, new RegExp(`^${name}: given more than once`))
  }

  const page = await (await fetch(`${proxy.url}/metrics`, { headers: bearer('mod-token-8e7d6c5b4a3928170f6e5d4c3b2a1908') })).text()
  assert.match(page, /ollama_proxy_budget_remaining\{key="student-17",budget="tokens_per_day"\} 947/)
  assert.match(page, /ollama_proxy_budget_remaining\{key="student-17",budget="requests_per_day"\} 46/)
})

test('a model Ollama did not answer for (404) is counted without its name: client-chosen names cannot fill the store\'s names', async (t) => {
  const fake = await fakeOllama(t)
  const clock = { now: START }
  const proxy = await proxyAt(t, fake, database(), { requests_per_day: 50 }, clock)
  const missing = await chat(proxy.url, { model: 'no-such-model-7f3a' })
  assert.equal(missing.status, 404)
  await missing.arrayBuffer()
  await (await chat(proxy.url)).arrayBuffer()
  await waitUntil('two lines', () => proxy.logs.requestLines().length === 2)
  const report = await jsonOf(await fetch(`${proxy.url}/proxy/usage?by=key,model`, { headers: bearer(READER) }))
  assert.deepEqual(report.rows, [
    { key: 'student-17', model: '', requests: 1, prompt_tokens: 0, completion_tokens: 0 },
    { key: 'student-17', model: 'llama3.2:latest', requests: 1, prompt_tokens: 11, completion_tokens: 3 }
  ])
})

const noRedis = redisAvailable() ? false : 'redis-server not found: install Redis to run this test'

test('requests_per_day holds for parallel requests while the key\'s checks wait for Redis', { skip: noRedis }, async (t) => {
  const fake = await fakeOllama(t)
  const redis = await startRedis()
  t.after(async () => { redis.resume(); await redis.stop() })
  const logs = new LogCapture()
  const withRedis = testConfig(fake.url, {
    auth: { keys: [{ name: 'student-17', key: STUDENT, scopes: ['generate'], limits: { requests_per_day: 2, concurrent: 10 } }] },
    usage: { database: database(), timezone: 'UTC' },
    redis: { url: redis.url }
  })
  const proxy = await startProxy(t, withRedis, logs)
  await waitUntil('redis to be used', () => logs.text.includes('redis connected'))
  // Redis holds every lease request: all five are past their first budget check at once.
  redis.pause()
  const answers = Array.from({ length: 5 }, () => chat(proxy.url))
  await waitUntil('five requests waiting for their key\'s lease', () => proxy.app.openExchanges().length === 5)
  redis.resume()
  const statuses = await Promise.all(answers.map(async answer => {
    const response = await answer
    await response.arrayBuffer()
    return response.status
  }))
  assert.equal(statuses.filter(status => status === 200).length, 2, `requests_per_day: 2, answered ${statuses.join(' ')}`)
  assert.equal(fake.count('/api/chat'), 2)
})
