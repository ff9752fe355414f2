import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { RedisLeases, type RedisLeasesOptions } from '../plugins/scheduling/redis-leases.js'
import { hostResource, keyResource } from '../plugins/scheduling/slot-ledger.js'
import { SlotScheduler } from '../plugins/scheduling/slot-scheduler.js'
import { createLogger } from '../src/logger.js'
import { LogCapture, waitUntil } from './helper.js'
import { spawnProcess, TSX_LOADER } from './proxy-process.js'
import { redisAvailable, startRedis, type RedisServer } from './redis-server.js'
import { GrantLog, testHost } from './scheduling-helpers.js'

const skip = redisAvailable() ? false : 'redis-server not found (neither /usr/bin/redis-server nor on PATH): install Redis to run these tests'

const FALLBACK = 'redis unreachable: slot caps are per replica until it returns'
const BACK = 'redis is back: slot caps are shared by all replicas again'
const HOLDER = fileURLToPath(new URL('./fixtures/lease-holder.ts', import.meta.url))

const newPrefix = () => `test-${randomUUID().slice(0, 8)}:`

async function redisFor (t: TestContext): Promise<RedisServer> {
  const redis = await startRedis()
  t.after(async () => { await redis.stop() })
  return redis
}

/** One replica's leases, connected. */
async function replica (t: TestContext, options: RedisLeasesOptions, logs = new LogCapture()) {
  const leases = new RedisLeases(options, createLogger('debug', logs))
  t.after(async () => { await leases.close() })
  await waitUntil('the replica to connect to redis', () => leases.mode === 'redis')
  return { leases, logs }
}

function rawClient (t: TestContext, url: string): Redis {
  const raw = new Redis(url)
  t.after(() => raw.disconnect())
  return raw
}

const linesWith = (logs: LogCapture, msg: string) => logs.entries().filter(e => e.msg === msg)

test('a key\'s concurrent limit holds across two replicas; a release frees the slot at once', { skip }, async (t) => {
  const redis = await redisFor(t)
  const prefix = newPrefix()
  const { leases: a } = await replica(t, { url: redis.url, prefix })
  const { leases: b } = await replica(t, { url: redis.url, prefix })
  const key = keyResource('app')
  const first = await a.take(key, 3)
  const second = await a.take(key, 3)
  const third = await b.take(key, 3)
  assert.ok(first !== null && second !== null && third !== null)
  assert.equal(await a.take(key, 3), null, 'the fourth is refused on one replica')
  assert.equal(await b.take(key, 3), null, 'and on the other')
  assert.equal(await a.take(keyResource('other'), 3) !== null, true, 'other keys have their own slots')

  const raw = rawClient(t, redis.url)
  const name = `${prefix}slots:${key}`
  assert.equal(await raw.zcard(name), 3)
  const [seconds] = await raw.time()
  const scores = (await raw.zrange(name, 0, -1, 'WITHSCORES')).filter((_, i) => i % 2 === 1).map(Number)
  for (const score of scores) assert.ok(score <= Number(seconds) * 1000 + 1000 + 5000, `a lease expires within the TTL: ${score}`)
  assert.ok(await raw.pttl(name) > 0, 'the set itself expires when nobody renews it')

  assert.equal(third.release(), true)
  assert.equal(third.release(), false, 'a second release does nothing')
  assert.equal(await raw.zcard(name), 2, 'removed from Redis at once')
  const again = await a.take(key, 3)
  assert.ok(again !== null, 'the freed slot is taken on the other replica')
  assert.equal(await b.take(key, 3), null)
})

test('a host\'s max_concurrent holds across two replicas\' schedulers; a waiter gets a slot freed on the other replica', { skip }, async (t) => {
  const redis = await redisFor(t)
  const prefix = newPrefix()
  // A poll this slow never fires within the test: the freed slot must arrive by the published release.
  const options = { url: redis.url, prefix, pollIntervalMs: 600_000 }
  const { leases: ledgerA } = await replica(t, options)
  const { leases: ledgerB } = await replica(t, options)
  const gpuA = testHost('gpu', 2)
  const gpuB = testHost('gpu', 2)
  const settings = { queueSize: 100, queueTimeoutMs: 60_000 }
  const a = new SlotScheduler([gpuA], settings, { ledger: ledgerA })
  const b = new SlotScheduler([gpuB], settings, { ledger: ledgerB })
  t.after(() => { a.close(); b.close() })
  const logB = new GrantLog(b)

  const held = [await a.acquire({ key: 'batch' }), await a.acquire({ key: 'batch' })]
  logB.enqueue({ key: 'web' }, 'web-1')
  logB.enqueue({ key: 'web' }, 'web-2')
  // Each waiter went to Redis, found the host full and is back in line, first come first.
  await waitUntil('replica B to find the host full', () => b.waiting === 2)
  const raw = rawClient(t, redis.url)
  assert.equal(await raw.zcard(`${prefix}slots:${hostResource('gpu')}`), 2)
  assert.equal(logB.granted.length, 0)
  assert.equal(gpuB.inFlight, 0)

  held[0].release()
  const granted = await logB.next()
  assert.equal(granted.label, 'web-1', 'the oldest waiter first')
  // web-2 tries too, finds the host full again and is back in line.
  await waitUntil('web-2 to be refused by Redis', () => b.waiting === 1)
  assert.equal(gpuB.inFlight, 1)
  assert.equal(await raw.zcard(`${prefix}slots:${hostResource('gpu')}`), 2, 'never more than max_concurrent in all')
  granted.grant.release()
  assert.equal((await logB.next()).label, 'web-2')
  held[1].release()
})

test('a replica killed while it holds slots: they come back within the lease TTL', { skip }, async (t) => {
  const redis = await redisFor(t)
  const prefix = newPrefix()
  const ttl = 2000
  const holder = spawnProcess(t, process.execPath, ['--import', TSX_LOADER, HOLDER, redis.url, prefix, String(ttl), hostResource('gpu'), '2', '2'])
  await holder.waitFor(/held 2/)

  const { leases } = await replica(t, { url: redis.url, prefix, leaseTtlMs: ttl, pollIntervalMs: 100 })
  const gpu = testHost('gpu', 2)
  const scheduler = new SlotScheduler([gpu], { queueSize: 10, queueTimeoutMs: 60_000 }, { ledger: leases })
  t.after(() => scheduler.close())
  const log = new GrantLog(scheduler)
  log.enqueue({ key: 'web' }, 'after-the-kill')
  await waitUntil('the slots to be found held by the other replica', () => scheduler.waiting === 1)

  const raw = rawClient(t, redis.url)
  const name = `${prefix}slots:${hostResource('gpu')}`
  holder.child.kill('SIGKILL')
  await holder.exited
  const [seconds, micros] = await raw.time()
  const killedAt = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
  const expiries = (await raw.zrange(name, 0, -1, 'WITHSCORES')).filter((_, i) => i % 2 === 1).map(Number)
  assert.equal(expiries.length, 2, 'the dead replica\'s leases are still counted')
  for (const expiry of expiries) assert.ok(expiry <= killedAt + ttl, `lease expires ${expiry - killedAt} ms after the kill, within the ${ttl} ms TTL`)

  const { grant } = await log.next()
  assert.equal(grant.host, gpu)
  assert.equal(await raw.zcard(name), 1, 'the expired leases are gone, the new one counted')
  grant.release()
})

test('Redis down: slots are counted per replica, one warning; back: leases are registered again, one info line', { skip }, async (t) => {
  const redis = await redisFor(t)
  const prefix = newPrefix()
  const { leases, logs } = await replica(t, { url: redis.url, prefix })
  const key = keyResource('app')
  const before = await leases.take(key, 2)
  assert.ok(before !== null)

  await redis.stop()
  const during = await leases.take(key, 2)
  assert.ok(during !== null, 'taken on this replica alone')
  assert.equal(await leases.take(key, 2), null, 'the limit still holds per replica, counting the lease taken before')
  assert.equal(leases.mode, 'local')
  assert.equal(await leases.take(key, 2), null)
  const warnings = linesWith(logs, FALLBACK)
  assert.equal(warnings.length, 1, logs.text)
  assert.equal(warnings[0].level, 40)
  assert.equal(warnings[0].redis, `127.0.0.1:${redis.port}`)

  await redis.start()
  await waitUntil('the replica to reconnect', () => leases.mode === 'redis')
  const raw = rawClient(t, redis.url)
  const name = `${prefix}slots:${key}`
  await waitUntil('both held leases to be registered in the new Redis', async () => await raw.zcard(name) === 2)
  assert.equal(linesWith(logs, BACK).length, 1, logs.text)
  assert.equal(linesWith(logs, FALLBACK).length, 1)
  assert.equal(await leases.take(key, 2), null, 'shared counting again, with the held leases')
  during.release()
  await waitUntil('the release to reach Redis', async () => await raw.zcard(name) === 1)
  assert.ok(await leases.take(key, 2) !== null)
})

test('Redis hung, then answering again: a take that timed out and releases made meanwhile leave no lease behind', { skip }, async (t) => {
  const redis = await redisFor(t)
  t.after(() => redis.resume())
  const prefix = newPrefix()
  const { leases } = await replica(t, { url: redis.url, prefix })
  const key = keyResource('app')
  const before = await leases.take(key, 1)
  assert.ok(before !== null)

  redis.pause()
  // Its script stays queued on the connection and runs when Redis goes on.
  const late = await leases.take(key, 5)
  assert.ok(late !== null, 'taken on this replica alone once the command timed out')
  assert.equal(leases.mode, 'local')
  before.release()
  late.release()
  redis.resume()

  // A command answered on the same connection comes after everything sent before it.
  const probe = keyResource('probe')
  await waitUntil('Redis to answer this replica again', async () => {
    const lease = await leases.take(probe, 1000)
    lease?.release()
    return leases.mode === 'redis'
  })
  const raw = rawClient(t, redis.url)
  assert.deepEqual(await raw.zrange(`${prefix}slots:${key}`, 0, -1), [], 'no lease is left to block the key until it expires')
  assert.ok(await leases.take(key, 1) !== null, 'the key\'s one slot is free at once')
})
