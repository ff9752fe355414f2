import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { checkBudgets } from '../plugins/usage/budgets.js'
import { SHARED_BACK, SHARED_DOWN } from '../plugins/usage/shared-usage.js'
import { UsageReader } from '../plugins/usage/usage-reader.js'
import type { UsageReportRow } from '../plugins/usage/usage-report.js'
import type { UsageStore } from '../plugins/usage/usage-store.js'
import { waitUntil } from './helper.js'
import { freePort, redisAvailable, startRedis, type RedisServer } from './redis-server.js'
import { openStore, tempFolder } from './usage-helper.js'

const skip = redisAvailable() ? false : 'redis-server not found (neither /usr/bin/redis-server nor on PATH): install Redis to run these tests'

const ALL_TIME = { since: '2020-01-01', until: '2030-12-31' }
const budgets = { tokensPerDay: 1000, tokensPerMonth: 100_000, requestsPerDay: null }

async function redisFor (t: TestContext): Promise<RedisServer> {
  const redis = await startRedis()
  t.after(async () => { await redis.stop() })
  return redis
}

/** Two replicas: their own databases, one Redis and prefix, flushing every 20 ms. */
function replicas (t: TestContext, redis: RedisServer, prefix = `t-${randomUUID().slice(0, 8)}:`) {
  const folder = tempFolder(t)
  const open = (name: string) => openStore(t, { file: join(folder, `${name}.sqlite`), redis: { url: redis.url, prefix }, flushIntervalMs: 20 })
  return { a: open('a'), b: open('b'), folder, prefix }
}

const use = (store: UsageStore, key: string, model: string, host: string, prompt: number, completion: number) =>
  store.record({ key, model, host, promptTokens: prompt, completionTokens: completion })

const sorted = (rows: UsageReportRow[]) => [...rows].sort((x, y) => JSON.stringify(x) < JSON.stringify(y) ? -1 : 1)

test('usage through Redis: two replicas agree on budgets and each reports both replicas\' traffic', { skip }, async (t) => {
  const redis = await redisFor(t)
  const { a: { store: a }, b: { store: b }, folder, prefix } = replicas(t, redis)
  await waitUntil('both replicas to reach Redis', () => a.redisMode === 'redis' && b.redisMode === 'redis')

  use(a, 'student-17', 'llama3.2', 'gpu-1', 400, 200)
  use(b, 'student-17', 'llama3.2', 'gpu-2', 300, 200)
  use(b, 'student-17', 'qwen3:8b', 'gpu-2', 10, 0)
  use(a, 'web-app', 'qwen3:8b', 'gpu-1', 5, 5)
  // Day and month totals come from two hashes another replica writes in turn: wait for both.
  const agreed = (store: UsageStore) => store.spent('student-17').dayTokens === 1110 && store.spent('student-17').monthTokens === 1110 && store.spent('web-app').dayTokens === 10
  await waitUntil('both replicas to see 1110 tokens of student-17', () => agreed(a) && agreed(b))
  for (const store of [a, b]) {
    assert.deepEqual([store.spent('student-17').dayRequests, store.spent('student-17').monthTokens, store.spent('web-app').dayTokens], [3, 1110, 10])
    const decision = checkBudgets('student-17', budgets, store.spent('student-17'), Date.now())
    assert.ok(!decision.allowed && decision.refusal.budget === 'tokens_per_day', 'the budget is spent on every replica')
  }

  const expected = [
    { key: 'student-17', model: 'llama3.2', host: 'gpu-1', requests: 1, prompt_tokens: 400, completion_tokens: 200 },
    { key: 'student-17', model: 'llama3.2', host: 'gpu-2', requests: 1, prompt_tokens: 300, completion_tokens: 200 },
    { key: 'student-17', model: 'qwen3:8b', host: 'gpu-2', requests: 1, prompt_tokens: 10, completion_tokens: 0 },
    { key: 'web-app', model: 'qwen3:8b', host: 'gpu-1', requests: 1, prompt_tokens: 5, completion_tokens: 5 }
  ]
  await waitUntil('both rows of every replica in Redis', async () => (await a.report({ ...ALL_TIME, by: ['key', 'model', 'host'] })).report.rows.length === 4 &&
    (await b.report({ ...ALL_TIME, by: ['key', 'model', 'host'] })).report.rows.length === 4)
  for (const store of [a, b]) {
    const { report, redis: source } = await store.report({ ...ALL_TIME, by: ['key', 'model', 'host'] })
    assert.equal(source, 'included')
    assert.deepEqual(sorted(report.rows), sorted(expected))
  }
  assert.deepEqual([...(await a.lastUsed()).keys()].sort(), ['student-17', 'web-app'])
  assert.deepEqual([...(await b.lastUsed()).keys()].sort(), ['student-17', 'web-app'])

  // The CLI's reader: this database plus the others from Redis; without Redis, this database alone.
  const withRedis = UsageReader.open({ file: join(folder, 'a.sqlite'), redis: { url: redis.url, prefix } })
  const alone = UsageReader.open({ file: join(folder, 'a.sqlite') })
  t.after(async () => { await withRedis.close(); await alone.close() })
  assert.deepEqual(sorted((await withRedis.report({ ...ALL_TIME, by: ['key', 'model', 'host'] })).report.rows), sorted(expected))
  assert.deepEqual((await alone.report({ ...ALL_TIME, by: ['key'] })).report.rows.map(r => [r.key, r.requests]), [['student-17', 1], ['web-app', 1]])

  // Another prefix is another deployment.
  const stranger = openStore(t, { file: join(folder, 'c.sqlite'), redis: { url: redis.url, prefix: `${prefix}other:` }, flushIntervalMs: 20 }).store
  await waitUntil('the third store to reach Redis', () => stranger.redisMode === 'redis')
  assert.deepEqual((await stranger.report({ ...ALL_TIME, by: ['key'] })).report.rows, [])

  // Day hashes expire after the retention (400 days in these stores).
  const raw = new Redis(redis.url)
  t.after(() => raw.disconnect())
  const [dayKey] = await raw.keys(`${prefix}usage-store:day:*:student-17`)
  const ttl = await raw.ttl(dayKey)
  assert.ok(ttl > 400 * 86_400 && ttl <= 403 * 86_400, `TTL ${ttl} s`)
})

test('usage through Redis: stopped and restarted empty, nothing counted is lost; one warning, one info line', { skip }, async (t) => {
  const redis = await redisFor(t)
  const { a: { store: a, logs: logsA }, b: { store: b, logs: logsB } } = replicas(t, redis)
  await waitUntil('both replicas to reach Redis', () => a.redisMode === 'redis' && b.redisMode === 'redis')
  use(a, 'k', 'm', 'h1', 100, 0)
  use(b, 'k', 'm', 'h2', 200, 0)
  // Rows nobody touches after the outage: only a replica sending everything again brings them back.
  use(a, 'early', 'm', 'h1', 1, 1)
  use(b, 'early', 'm', 'h2', 2, 2)
  await waitUntil('both replicas to see 300 tokens', () => a.spent('k').dayTokens === 300 && b.spent('k').dayTokens === 300 &&
    a.spent('early').dayTokens === 6 && b.spent('early').dayTokens === 6)

  await redis.stop()
  await waitUntil('both replicas to count on their own', () => a.redisMode === 'local' && b.redisMode === 'local')
  use(a, 'k', 'm', 'h1', 10, 0)
  use(b, 'k', 'm', 'h2', 20, 0)
  use(b, 'k', 'm', 'h2', 20, 0)
  // Each counts its own on top of what it last knew of the other.
  assert.equal(a.spent('k').dayTokens, 310)
  assert.equal(b.spent('k').dayTokens, 340)
  const local = await a.report({ ...ALL_TIME, by: ['key'] })
  assert.equal(local.redis, 'unreachable')
  assert.deepEqual(local.report.rows, [{ key: 'early', requests: 1, prompt_tokens: 1, completion_tokens: 1 }, { key: 'k', requests: 2, prompt_tokens: 110, completion_tokens: 0 }])
  b.flush()

  await redis.start() // empty: no persistence
  await waitUntil('both replicas to see every count again', () => a.spent('k').dayTokens === 350 && b.spent('k').dayTokens === 350 &&
    a.spent('early').dayTokens === 6 && b.spent('early').dayTokens === 6)
  const expected = [
    { key: 'early', host: 'h1', requests: 1, prompt_tokens: 1, completion_tokens: 1 },
    { key: 'early', host: 'h2', requests: 1, prompt_tokens: 2, completion_tokens: 2 },
    { key: 'k', host: 'h1', requests: 2, prompt_tokens: 110, completion_tokens: 0 },
    { key: 'k', host: 'h2', requests: 3, prompt_tokens: 240, completion_tokens: 0 }
  ]
  await waitUntil('the reports to hold every count', async () =>
    JSON.stringify((await a.report({ ...ALL_TIME, by: ['key', 'host'] })).report.rows) === JSON.stringify(expected) &&
    JSON.stringify((await b.report({ ...ALL_TIME, by: ['key', 'host'] })).report.rows) === JSON.stringify(expected))
  for (const logs of [logsA, logsB]) {
    assert.equal(logs.entries().filter(e => e.msg === SHARED_DOWN).length, 1, 'one warning per outage')
    assert.equal(logs.entries().filter(e => e.msg === SHARED_BACK).length, 1, 'one info line when it is back')
    assert.equal(logs.entries().filter(e => e.msg === SHARED_DOWN)[0].level, 40)
  }
})

test('usage through Redis: counts made while Redis is away survive a restart in the outbox', { skip }, async (t) => {
  const redis = await redisFor(t)
  const { a: { store: a }, b: { store: b }, folder, prefix } = replicas(t, redis)
  await waitUntil('both replicas to reach Redis', () => a.redisMode === 'redis' && b.redisMode === 'redis')
  await redis.stop()
  await waitUntil('replica a to count on its own', () => a.redisMode === 'local')
  use(a, 'k', 'm', 'h', 70, 0)
  await a.close()
  await redis.start()
  const again = openStore(t, { file: join(folder, 'a.sqlite'), redis: { url: redis.url, prefix }, flushIntervalMs: 20 }).store
  await waitUntil('replica b to see what a counted while Redis was away', () => b.spent('k').dayTokens === 70)
  assert.equal(again.spent('k').dayTokens, 70)
})

test('usage reader: Redis configured but unreachable gives this database\'s report and says so', { skip }, async (t) => {
  const folder = tempFolder(t)
  const file = join(folder, 'usage.sqlite')
  const { store } = openStore(t, { file })
  use(store, 'k', 'm', 'h', 1, 2)
  await store.close()
  const reader = UsageReader.open({ file, redis: { url: `redis://127.0.0.1:${await freePort()}`, prefix: 'x:' } })
  t.after(async () => { await reader.close() })
  const result = await reader.report({ ...ALL_TIME, by: ['key'] })
  assert.equal(result.redis, 'unreachable')
  assert.deepEqual(result.report.rows, [{ key: 'k', requests: 1, prompt_tokens: 1, completion_tokens: 2 }])
})

test('usage through Redis: a last-used time in Redis no clock gives (another process wrote it) is skipped, not turned into NaN', { skip }, async (t) => {
  const redis = await redisFor(t)
  const { a: { store: a }, prefix } = replicas(t, redis)
  await waitUntil('the replica to reach Redis', () => a.redisMode === 'redis')
  use(a, 'web-app', 'qwen3:8b', 'gpu-1', 5, 5)
  const client = new Redis(redis.url)
  t.after(() => { client.disconnect() })
  await client.hset(`${prefix}usage-store:last-used`, 'other-replica\nweb-app', 'not a time', 'other-replica\nstudent-17', '1e300')
  const lastUsed = await a.lastUsed()
  assert.ok(Number.isFinite(lastUsed.get('web-app')), `web-app: ${lastUsed.get('web-app')}`)
  assert.equal(lastUsed.has('student-17'), false)
})
