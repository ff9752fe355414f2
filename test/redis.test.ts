import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { WINDOW_MS, windowStart } from '../plugins/limits/key-limits.js'
import { RedisWindows } from '../plugins/limits/redis-windows.js'
import { createLogger } from '../src/logger.js'
import { startFakeOllama, type FakeOllama } from './fake-ollama.js'
import { appKeyWithLimits, authWith, bearer, KEYS } from './fixtures/keys.js'
import { jsonOf, LogCapture, startProxy, testConfig, waitUntil } from './helper.js'
import { redisAvailable, startRedis, type RedisServer } from './redis-server.js'

const skip = redisAvailable() ? false : 'redis-server not found (neither /usr/bin/redis-server nor on PATH): install Redis to run these tests'

const FALLBACK = 'redis unreachable: limits are per replica until it returns'
const BACK = 'redis is back: limits are shared by all replicas again'

const auth = bearer(KEYS.app)
const chat = () => JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false })

const newPrefix = () => `test-${randomUUID().slice(0, 8)}:`

async function redisFor (t: TestContext): Promise<RedisServer> {
  const redis = await startRedis()
  t.after(async () => { await redis.stop() })
  return redis
}

function storeFor (t: TestContext, url: string, prefix = newPrefix(), logs = new LogCapture()) {
  const store = new RedisWindows({ url, prefix }, createLogger('debug', logs))
  t.after(async () => { await store.close() })
  return { store, logs, prefix }
}

const until = waitUntil

/**
 * Counters live in fixed minutes of Date.now(): the clock stands still one second into a minute
 * for the test, so its phases fall in one window however slow the machine (timers still run).
 */
function inOneWindow (t: TestContext): void {
  t.mock.timers.enable({ apis: ['Date'], now: windowStart(Date.now()) + 1000 })
}

const linesWith = (logs: LogCapture, msg: string) => logs.entries().filter(e => e.msg === msg)

test('RedisWindows: INCRBY per window in one round trip, GET to peek, keys expire', { skip }, async (t) => {
  const redis = await redisFor(t)
  const { store, prefix } = storeFor(t, redis.url)
  await until('the store to connect', () => store.mode === 'redis')
  const now = Date.now()
  assert.equal(await store.incr('rpm:app', 1, now), 1)
  assert.equal(await store.incr('rpm:app', 5, now), 6)
  assert.equal(await store.peek('rpm:app', now), 6)
  assert.equal(await store.peek('rpm:other', now), 0)
  assert.equal(await store.peek('rpm:app', now + WINDOW_MS), 0, 'the next minute starts at 0')
  assert.equal(await store.incr('rpm:app', 2, now + WINDOW_MS), 2)

  // A second store with the same prefix is another replica: same counters.
  const { store: replica } = storeFor(t, redis.url, prefix)
  await until('the second store to connect', () => replica.mode === 'redis')
  assert.equal(await replica.incr('rpm:app', 1, now), 7)
  assert.equal(await store.peek('rpm:app', now), 7)
  // Another prefix is another deployment: its own counters.
  const { store: stranger } = storeFor(t, redis.url)
  await until('the third store to connect', () => stranger.mode === 'redis')
  assert.equal(await stranger.peek('rpm:app', now), 0)

  const raw = new Redis(redis.url)
  t.after(() => raw.disconnect())
  const name = `${prefix}win:rpm:app:${windowStart(now)}`
  assert.equal(await raw.get(name), '7')
  const ttl = await raw.pttl(name)
  assert.ok(ttl > 0 && ttl <= 2 * WINDOW_MS, `PTTL ${ttl} ms: every window key expires within two windows`)
  const next = await raw.pttl(`${prefix}win:rpm:app:${windowStart(now) + WINDOW_MS}`)
  assert.ok(next > 0 && next <= 2 * WINDOW_MS)
})

test('RedisWindows: usage counters per key and model, shared, prefix taken literally', { skip }, async (t) => {
  const redis = await redisFor(t)
  const id = randomUUID().slice(0, 8)
  // "*" in a prefix must not match other prefixes in SCAN.
  const { store } = storeFor(t, redis.url, `t*${id}:`)
  const { store: replica } = storeFor(t, redis.url, `t*${id}:`)
  const { store: other } = storeFor(t, redis.url, `tX${id}:`)
  await until('the stores to connect', () => store.mode === 'redis' && replica.mode === 'redis' && other.mode === 'redis')
  assert.deepEqual(await store.usageTotals(), [])
  store.recordUsage('app', 'llama3.2', 11, 3)
  replica.recordUsage('app', 'llama3.2', 11, 3)
  replica.recordUsage('batch', 'qwen3:8b', 100, 0)
  other.recordUsage('app', 'llama3.2', 1000, 1000)
  const sorted = (rows: Awaited<ReturnType<RedisWindows['usageTotals']>>) =>
    rows.map(r => `${r.key} ${r.model} ${r.kind} ${r.tokens}`).sort()
  const expected = ['app llama3.2 completion 6', 'app llama3.2 prompt 22', 'batch qwen3:8b completion 0', 'batch qwen3:8b prompt 100']
  await until('the usage to land', async () => sorted(await store.usageTotals()).join() === expected.join())
  assert.deepEqual(sorted(await replica.usageTotals()), expected)
  assert.deepEqual(sorted(await other.usageTotals()), ['app llama3.2 completion 1000', 'app llama3.2 prompt 1000'])
})

test('RedisWindows: Redis down means memory counts, one warning, never an error; back means Redis again', { skip }, async (t) => {
  const redis = await redisFor(t)
  const { store, logs } = storeFor(t, redis.url)
  await until('the store to connect', () => store.mode === 'redis')
  const now = Date.now()
  assert.equal(await store.incr('rpm:app', 3, now), 3)

  await redis.stop()
  assert.equal(await store.incr('rpm:app', 1, now), 1, 'a fresh count in memory')
  assert.equal(await store.incr('rpm:app', 1, now), 2)
  assert.equal(await store.peek('rpm:app', now), 2)
  assert.equal(store.mode, 'local')
  store.recordUsage('app', 'llama3.2', 1, 1)
  assert.deepEqual(await store.usageTotals(), [])
  const client = (store as unknown as { link: { client: Redis } }).link.client
  // A few failed reconnections (events.once would reject on the 'error' each one brings).
  await new Promise<void>(resolve => {
    let attempts = 0
    const onReconnecting = () => { if (++attempts === 3) { client.off('reconnecting', onReconnecting); resolve() } }
    client.on('reconnecting', onReconnecting)
  })
  assert.equal(await store.incr('rpm:app', 1, now), 3)
  const warnings = linesWith(logs, FALLBACK)
  assert.equal(warnings.length, 1, logs.text)
  assert.equal(warnings[0].level, 40)
  assert.equal(warnings[0].redis, `127.0.0.1:${redis.port}`)

  await redis.start()
  await until('the store to reconnect', () => store.mode === 'redis')
  assert.equal(linesWith(logs, BACK).length, 1, logs.text)
  assert.equal(await store.incr('rpm:app', 1, now), 1, 'the restarted Redis is empty: counting there again')
  assert.equal(await store.peek('rpm:app', now), 1)
  assert.equal(linesWith(logs, FALLBACK).length, 1)
})

test('RedisWindows: the password never reaches the log; a wrong one means per-replica limits', { skip }, async (t) => {
  const redis = await redisFor(t)
  const secret = `pw-${randomUUID()}`
  const raw = new Redis(redis.url)
  t.after(() => raw.disconnect())
  await raw.config('SET', 'requirepass', secret)
  const good = storeFor(t, `redis://:${secret}@127.0.0.1:${redis.port}`)
  await until('the store to connect', () => good.store.mode === 'redis')
  assert.equal(await good.store.incr('rpm:app', 1, Date.now()), 1)
  const bad = storeFor(t, `redis://:wrong-${secret}@127.0.0.1:${redis.port}`)
  await until('the warning', () => linesWith(bad.logs, FALLBACK).length === 1)
  assert.equal(bad.store.mode, 'local')
  assert.equal(await bad.store.incr('rpm:app', 1, Date.now()), 1)
  for (const logs of [good.logs, bad.logs]) {
    assert.ok(logs.text.includes(`127.0.0.1:${redis.port}`), logs.text)
    assert.ok(!logs.text.includes(secret), logs.text)
  }
})

function windowsOf (app: FastifyInstance): RedisWindows {
  const windows = app.limitWindows
  assert.ok(windows instanceof RedisWindows, 'with config.redis set, src/app.ts must give the limits plugin a RedisWindows')
  return windows
}

interface Replicas {
  redis: RedisServer
  fake: FakeOllama
  a: Awaited<ReturnType<typeof startProxy>>
  b: Awaited<ReturnType<typeof startProxy>>
}

/** One fake Ollama, one Redis, two proxies: separate apps whose only common memory is Redis. */
async function twoReplicas (t: TestContext, limits: Record<string, number>): Promise<Replicas> {
  const redis = await redisFor(t)
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const config = testConfig(fake.url, {
    ...authWith([appKeyWithLimits(limits)], ['model']),
    redis: { url: redis.url, prefix: newPrefix() }
  })
  // Each replica has a usage database of its own, as in production (a database takes one proxy).
  const a = await startProxy(t, { ...config, usage: { ...config.usage } })
  const b = await startProxy(t, { ...config, usage: { ...config.usage } })
  await until('both replicas to use Redis', () => windowsOf(a.app).mode === 'redis' && windowsOf(b.app).mode === 'redis')
  return { redis, fake, a, b }
}

async function statusOf (url: string, init: RequestInit = {}): Promise<number> {
  const response = await fetch(url, { headers: auth, ...init })
  await response.arrayBuffer()
  return response.status
}

test('two proxy replicas share one key\'s requests per minute through Redis', { skip }, async (t) => {
  inOneWindow(t)
  const { a, b, fake } = await twoReplicas(t, { requests_per_minute: 4 })
  for (const [i, proxy] of [a, a, b, b].entries()) {
    const response = await fetch(`${proxy.url}/api/tags`, { headers: auth })
    assert.equal(response.status, 200, `request ${i + 1}`)
    assert.equal(response.headers.get('ratelimit-remaining'), String(3 - i), 'the count is shared')
    await response.arrayBuffer()
  }
  const over = await fetch(`${a.url}/api/tags`, { headers: auth })
  assert.equal(over.status, 429)
  assert.match((await jsonOf(over)).error, /4 requests per minute/)
  assert.equal(await statusOf(`${b.url}/api/tags`), 429)
  assert.equal(fake.count('/api/tags'), 4)
})

test('Redis stopped mid-test: requests keep working with per-replica limits; restarted: shared again', { skip }, async (t) => {
  inOneWindow(t)
  const { a, b, redis } = await twoReplicas(t, { requests_per_minute: 3 })
  assert.equal(await statusOf(`${a.url}/api/tags`), 200)
  // Counted per outage: on a busy machine a slow first connection may already have been one.
  const before = [a, b].map(proxy => ({ down: linesWith(proxy.logs, FALLBACK).length, back: linesWith(proxy.logs, BACK).length }))

  await redis.stop()
  // Each replica now counts on its own, from zero: 3 each, never a 5xx.
  assert.deepEqual(await Promise.all([1, 2, 3].map(async () => await statusOf(`${a.url}/api/tags`))), [200, 200, 200])
  assert.equal(await statusOf(`${a.url}/api/tags`), 429, 'the limit still holds per replica')
  for (let i = 0; i < 3; i++) assert.equal(await statusOf(`${b.url}/api/tags`), 200)
  assert.equal(await statusOf(`${b.url}/api/tags`), 429)
  for (const [i, proxy] of [a, b].entries()) {
    assert.equal(windowsOf(proxy.app).mode, 'local')
    const warnings = linesWith(proxy.logs, FALLBACK).slice(before[i].down)
    assert.equal(warnings.length, 1, 'one warning per outage')
    assert.equal(warnings[0].level, 40)
  }

  await redis.start()
  await until('both replicas to use Redis again', () => windowsOf(a.app).mode === 'redis' && windowsOf(b.app).mode === 'redis')
  for (const [i, proxy] of [a, b].entries()) assert.equal(linesWith(proxy.logs, BACK).length - before[i].back, 1)
  for (const [i, proxy] of [a, b].entries()) assert.equal(linesWith(proxy.logs, FALLBACK).length - before[i].down, 1, 'still one warning')
  // The restarted Redis is empty. B alone would refuse (its local count is spent): it asks Redis.
  assert.equal(await statusOf(`${a.url}/api/tags`), 200)
  assert.equal(await statusOf(`${a.url}/api/tags`), 200)
  assert.equal(await statusOf(`${b.url}/api/tags`), 200)
  assert.equal(await statusOf(`${b.url}/api/tags`), 429, 'the shared limit applies again')
  for (const proxy of [a, b]) {
    const errors = proxy.logs.requestLines().filter(line => Number(line.status) >= 500)
    assert.deepEqual(errors, [], 'no 5xx at any point')
  }
})

test('two proxy replicas share one key\'s tokens per minute through Redis', { skip }, async (t) => {
  inOneWindow(t)
  const { a, b, fake } = await twoReplicas(t, { tokens_per_minute: 20 })
  const used = async () => await windowsOf(b.app).peek('tpm:app', Date.now())
  // The fake reports 11 prompt + 3 completion tokens for a non-streamed chat.
  assert.equal(await statusOf(`${a.url}/api/chat`, { method: 'POST', body: chat() }), 200)
  await until('A\'s tokens to reach Redis', async () => await used() === 14)
  assert.equal(await statusOf(`${b.url}/api/chat`, { method: 'POST', body: chat() }), 200, '14 of 20 used: B may still send')
  await until('B\'s tokens to reach Redis', async () => await used() === 28)
  // A alone has used 14 < 20: only the shared count refuses it.
  const over = await fetch(`${a.url}/api/chat`, { method: 'POST', headers: auth, body: chat() })
  assert.equal(over.status, 429)
  assert.match((await jsonOf(over)).error, /20 tokens per minute/)
  assert.equal(await statusOf(`${b.url}/api/chat`, { method: 'POST', body: chat() }), 429)
  assert.equal(fake.count('/api/chat'), 2)
  // Both answers also land in the usage counters every replica reads.
  const usage = async (kind: 'prompt' | 'completion') => (await windowsOf(a.app).usageTotals())
    .filter(row => row.key === 'app' && row.kind === kind).reduce((sum, row) => sum + row.tokens, 0)
  await until('the shared usage counters', async () => await usage('prompt') === 22 && await usage('completion') === 6)
})
