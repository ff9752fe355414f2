import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SchedulingError } from '../plugins/scheduling/scheduling-error.js'
import type { Lease, SlotLedger } from '../plugins/scheduling/slot-ledger.js'
import { SlotScheduler } from '../plugins/scheduling/slot-scheduler.js'
import { canonical, GrantLog, testHost, type TestHost } from './scheduling-helpers.js'

const settings = { queueSize: 1000, queueTimeoutMs: 60_000 }

function schedulerOf (hosts: TestHost[], overrides: Partial<typeof settings> = {}) {
  const scheduler = new SlotScheduler(hosts, { ...settings, ...overrides })
  return { scheduler, log: new GrantLog(scheduler) }
}

async function refusal (promise: Promise<unknown>): Promise<SchedulingError> {
  try {
    await promise
  } catch (err) {
    assert.ok(err instanceof SchedulingError, String(err))
    return err
  }
  assert.fail('expected a refusal')
}

test('one host: max_concurrent holds, the next request waits and gets the freed slot', async () => {
  const gpu = testHost('gpu', 2)
  const { scheduler, log } = schedulerOf([gpu])
  const first = await log.acquire({ key: 'a' })
  await log.acquire({ key: 'a' })
  assert.equal(gpu.inFlight, 2)
  assert.equal(first.waitedMs, 0)
  log.enqueue({ key: 'a' }, 'third')
  await log.settled()
  assert.equal(log.granted.length, 2, 'the third waits')
  assert.equal(scheduler.waiting, 1)
  assert.deepEqual(scheduler.queuedPerHost(), new Map([['gpu', 1]]))
  assert.deepEqual(scheduler.waitingPerKey(), new Map([['a', 1]]))
  first.release()
  await log.next()
  await log.next()
  const third = await log.next()
  assert.equal(third.label, 'third')
  assert.equal(gpu.inFlight, 2, 'never more than max_concurrent')
  assert.ok(third.grant.waitedMs >= 0)
  assert.equal(scheduler.waiting, 0)
  assert.deepEqual(scheduler.waitingPerKey(), new Map())
})

test('unlimited host (max_concurrent null): nobody waits', async () => {
  const gpu = testHost('gpu', null)
  const { log } = schedulerOf([gpu], { queueSize: 0 })
  await Promise.all(Array.from({ length: 50 }, async () => await log.acquire({ key: 'a' })))
  assert.equal(gpu.inFlight, 50)
})

for (const hostCount of [1, 3]) {
  test(`${hostCount} host(s): a light key gets the next slot while another key has hundreds waiting`, async () => {
    const hosts = Array.from({ length: hostCount }, (_, i) => testHost(`gpu${i}`, 2))
    const { scheduler, log } = schedulerOf(hosts)
    const held = await Promise.all(Array.from({ length: 2 * hostCount }, async () => await log.acquire({ key: 'flood' })))
    for (let i = 0; i < 300; i++) log.enqueue({ key: 'flood' }, `flood-${i}`)
    log.enqueue({ key: 'light' }, 'light')
    await log.settled()
    assert.equal(scheduler.waiting, 301)
    for (let i = 0; i < held.length; i++) await log.next()
    held[0].release()
    const next = await log.next()
    assert.equal(next.label, 'light', 'the key with one request waiting goes before the flood')
    // The flood then keeps its own order.
    next.grant.release()
    assert.equal((await log.next()).label, 'flood-0')
  })
}

test('weights: a key of weight 3 gets three slots for each one of a weight-1 key while both wait', async () => {
  const gpu = testHost('gpu', 1)
  const { log } = schedulerOf([gpu])
  const holder = await log.acquire({ key: 'warm-up' })
  await log.next()
  for (let i = 0; i < 200; i++) {
    log.enqueue({ key: 'heavy', weight: 3 }, `heavy-${i}`)
    log.enqueue({ key: 'light', weight: 1 }, `light-${i}`)
  }
  await log.settled()
  holder.release()
  const counts = { heavy: 0, light: 0 }
  const order: string[] = []
  for (let served = 0; served < 200; served++) {
    const { key, label, grant } = await log.next()
    counts[key as 'heavy' | 'light']++
    order.push(label)
    grant.release()
  }
  const ratio = counts.heavy / counts.light
  assert.ok(ratio >= 3 * 0.8 && ratio <= 3 * 1.2, `heavy ${counts.heavy}, light ${counts.light}`)
  const heavyOrder = order.filter(l => l.startsWith('heavy')).map(l => Number(l.split('-')[1]))
  assert.deepEqual(heavyOrder, [...heavyOrder].sort((a, b) => a - b), 'first come, first served within a key')
})

test('requests of one key are served in arrival order, keys alternate at equal weight', async () => {
  const gpu = testHost('gpu', 1)
  const { log } = schedulerOf([gpu])
  const holder = await log.acquire({ key: 'x' })
  await log.next()
  for (let i = 0; i < 4; i++) log.enqueue({ key: 'a' }, `a${i}`)
  for (let i = 0; i < 4; i++) log.enqueue({ key: 'b' }, `b${i}`)
  await log.settled()
  holder.release()
  const order: string[] = []
  for (let i = 0; i < 8; i++) {
    const next = await log.next()
    order.push(next.label)
    next.grant.release()
  }
  assert.deepEqual(order, ['a0', 'b0', 'a1', 'b1', 'a2', 'b2', 'a3', 'b3'])
})

test('per-key queued bound: past it a 429 with Retry-After; other keys still queue', async () => {
  const gpu = testHost('gpu', 1)
  const { scheduler, log } = schedulerOf([gpu])
  await log.acquire({ key: 'a', queued: 2 })
  log.enqueue({ key: 'a', queued: 2 })
  log.enqueue({ key: 'a', queued: 2 })
  const err = await refusal(scheduler.acquire({ key: 'a', queued: 2 }))
  assert.equal(err.statusCode, 429)
  assert.equal(err.reason, 'key-queue-full')
  assert.equal(err.headers['retry-after'], '1')
  assert.match(err.message, /2 requests waiting/)
  log.enqueue({ key: 'b', queued: 2 })
  await log.settled()
  assert.deepEqual(scheduler.waitingPerKey(), new Map([['a', 2], ['b', 1]]))
  const never = await refusal(scheduler.acquire({ key: 'c', queued: 0 }))
  assert.equal(never.statusCode, 429, 'queued: 0 means the key never waits')
})

test('shared queue_size: past it a 503 with Retry-After, for any key', async () => {
  const gpu = testHost('gpu', 1)
  const { scheduler, log } = schedulerOf([gpu], { queueSize: 2 })
  await log.acquire({ key: 'a' })
  log.enqueue({ key: 'a' })
  log.enqueue({ key: 'b' })
  const err = await refusal(scheduler.acquire({ key: 'c' }))
  assert.equal(err.statusCode, 503)
  assert.equal(err.reason, 'queue-full')
  assert.equal(err.headers['retry-after'], '1')
})

test('queue timeout: 504, and the place is given up', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const gpu = testHost('gpu', 1)
  const { scheduler } = schedulerOf([gpu], { queueTimeoutMs: 5000 })
  const held = await scheduler.acquire({ key: 'a' })
  const waiting = scheduler.acquire({ key: 'b' })
  t.mock.timers.tick(4999)
  assert.equal(scheduler.waiting, 1)
  t.mock.timers.tick(1)
  const err = await refusal(waiting)
  assert.equal(err.statusCode, 504)
  assert.match(err.message, /within 5 s/)
  assert.equal(scheduler.waiting, 0)
  held.release()
  assert.equal(gpu.inFlight, 0)
})

test('a client that leaves while queued frees its place at once (499); the slot goes to the next', async () => {
  const gpu = testHost('gpu', 1)
  const { scheduler, log } = schedulerOf([gpu])
  const held = await log.acquire({ key: 'a' })
  await log.next()
  const controller = new AbortController()
  const leaving = scheduler.acquire({ key: 'b', signal: controller.signal })
  log.enqueue({ key: 'c' }, 'stays')
  await log.settled()
  assert.equal(scheduler.waiting, 2)
  controller.abort()
  const err = await refusal(leaving)
  assert.equal(err.statusCode, 499)
  assert.equal(scheduler.waiting, 1, 'its place is freed at once')
  held.release()
  assert.equal((await log.next()).label, 'stays')
  assert.equal(gpu.inFlight, 1)
  const gone = new AbortController()
  gone.abort()
  assert.equal((await refusal(scheduler.acquire({ key: 'd', signal: gone.signal }))).statusCode, 499, 'already gone: no place taken')
  assert.equal(scheduler.waiting, 0)
})

test('every grant is released once: a second release, or one after the client left, changes nothing', async () => {
  const gpu = testHost('gpu', 1)
  const { scheduler, log } = schedulerOf([gpu])
  const grant = await log.acquire({ key: 'a' })
  assert.equal(grant.release(), true)
  assert.equal(grant.release(), false)
  assert.equal(gpu.inFlight, 0)

  // The grant and the abort race: whichever wins, the slot is given back exactly once.
  const held = await scheduler.acquire({ key: 'a' })
  const controller = new AbortController()
  const racing = scheduler.acquire({ key: 'b', signal: controller.signal })
  held.release()
  controller.abort()
  const won = await racing
  assert.equal(gpu.inFlight, 1, 'granted before the abort: the caller holds it')
  assert.equal(won.release(), true)
  assert.equal(won.release(), false)
  assert.equal(gpu.inFlight, 0)
  assert.equal(held.release(), false)
  assert.equal(gpu.inFlight, 0, 'a stale release cannot take a slot from someone else')

  const next = await scheduler.acquire({ key: 'c' })
  const other = await refusal(scheduler.acquire({ key: 'd', queued: 0 }))
  assert.equal(other.statusCode, 429, 'the one slot is really taken')
  next.release()
  assert.equal(gpu.inFlight, 0)
})

test('502 when no healthy host can serve; a named host or excluded hosts narrow the choice', async () => {
  const a = testHost('a', 1)
  const b = testHost('b', 1, { healthy: false })
  const { scheduler, log } = schedulerOf([a, b])
  const err = await refusal(scheduler.acquire({ key: 'k', only: 'b' }))
  assert.equal(err.statusCode, 502)
  assert.equal(err.reason, 'no-healthy-host')
  assert.equal((await refusal(scheduler.acquire({ key: 'k', exclude: new Set(['a']) }))).statusCode, 502)
  const onA = await log.acquire({ key: 'k', only: 'a' })
  assert.equal(onA.host, a)
  log.enqueue({ key: 'k', only: 'a' }, 'waits for a')
  await log.settled()
  assert.deepEqual(scheduler.queuedPerHost(), new Map([['a', 1], ['b', 0]]))
})

test('host choice: a host that has the model, loaded first, then the least busy', async () => {
  const plain = testHost('plain', 4)
  const having = testHost('having', 4, { models: [canonical('llama3.2')] })
  const loaded = testHost('loaded', 4, { models: [canonical('llama3.2')], loaded: [canonical('llama3.2')] })
  const { scheduler } = schedulerOf([plain, having, loaded])
  assert.equal((await scheduler.acquire({ key: 'k', model: 'llama3.2' })).host, loaded)
  assert.equal((await scheduler.acquire({ key: 'k', model: 'LLAMA3.2:latest' })).host, loaded, 'names are normalised')
  await scheduler.acquire({ key: 'k', model: 'llama3.2' })
  await scheduler.acquire({ key: 'k', model: 'llama3.2' })
  assert.equal(loaded.inFlight, 4, 'loaded first while it has a slot')
  for (let i = 0; i < 4; i++) assert.equal((await scheduler.acquire({ key: 'k', model: 'llama3.2' })).host, having)
  assert.equal(plain.inFlight, 0, 'the model goes only to hosts that have it')
  const waiting = scheduler.acquire({ key: 'k', model: 'llama3.2' })
  assert.deepEqual(scheduler.queuedPerHost(), new Map([['plain', 0], ['having', 1], ['loaded', 1]]))
  // A model no host has may go anywhere: the least busy host.
  assert.equal((await scheduler.acquire({ key: 'k', model: 'other' })).host, plain)
  scheduler.close()
  await assert.rejects(waiting)
})

test('hostsChanged: a waiter moves to a host that became healthy and is served there', async () => {
  const busy = testHost('busy', 1)
  const back = testHost('back', 1, { healthy: false, models: [canonical('qwen3')] })
  const { scheduler, log } = schedulerOf([busy, back])
  await log.acquire({ key: 'k' })
  await log.next()
  log.enqueue({ key: 'k', model: 'qwen3' }, 'qwen3')
  await log.settled()
  assert.deepEqual(scheduler.queuedPerHost(), new Map([['busy', 1], ['back', 0]]))
  back.healthy = true
  scheduler.hostsChanged()
  const served = await log.next()
  assert.equal(served.label, 'qwen3')
  assert.equal(served.grant.host, back)
})

test('close: waiting requests get 503, later ones too; held grants release normally', async () => {
  const gpu = testHost('gpu', 1)
  const { scheduler } = schedulerOf([gpu])
  const held = await scheduler.acquire({ key: 'a' })
  const waiting = scheduler.acquire({ key: 'b' })
  scheduler.close()
  assert.equal((await refusal(waiting)).reason, 'closed')
  assert.equal((await refusal(scheduler.acquire({ key: 'c' }))).statusCode, 503)
  held.release()
  assert.equal(gpu.inFlight, 0)
})

test('a weight that is not a positive integer, or a negative queued bound, is a RangeError', async () => {
  const { scheduler } = schedulerOf([testHost('gpu', 1)])
  for (const weight of [0, -1, 1.5, Number.NaN]) {
    await assert.rejects(scheduler.acquire({ key: 'a', weight }), RangeError)
  }
  await assert.rejects(scheduler.acquire({ key: 'a', queued: -1 }), RangeError)
})

/** A ledger whose answers the test gives by hand, in the order asked. */
class ManualLedger implements SlotLedger {
  readonly pollIntervalMs = Infinity
  readonly asked: Array<{ resource: string, answer: (held: boolean) => Lease | null }> = []
  readonly released: string[] = []
  private listener: ((resource: string) => void) | undefined

  async take (resource: string): Promise<Lease | null> {
    return await new Promise(resolve => {
      this.asked.push({
        resource,
        answer: (free) => {
          const lease = free ? { resource, release: () => { this.released.push(resource); return true } } : null
          resolve(lease)
          return lease
        }
      })
    })
  }

  onFreed (listener: (resource: string) => void): () => void {
    this.listener = listener
    return () => { this.listener = undefined }
  }

  freed (resource: string): void {
    this.listener?.(resource)
  }
}

test('with a ledger: a slot held elsewhere sends the request back in line, in its place; a freed notice serves it', async () => {
  const ledger = new ManualLedger()
  const gpu = testHost('gpu', 4)
  const scheduler = new SlotScheduler([gpu], settings, { ledger })
  const log = new GrantLog(scheduler)
  log.enqueue({ key: 'a' }, 'a0')
  log.enqueue({ key: 'a' }, 'a1')
  log.enqueue({ key: 'b' }, 'b0')
  assert.equal(ledger.asked.length, 1, 'one question to the ledger at a time per host')
  assert.equal(ledger.asked[0].resource, 'host:gpu')
  assert.equal(gpu.inFlight, 1, 'the slot is reserved while the ledger answers')
  ledger.asked[0].answer(false)
  await log.settled()
  assert.equal(scheduler.waiting, 3, 'held elsewhere: back in line')
  assert.equal(gpu.inFlight, 0)
  assert.equal(ledger.asked.length, 1, 'no new question until a slot may have come free')

  ledger.freed('host:other')
  assert.equal(ledger.asked.length, 1, 'another resource freed: nothing to do')
  ledger.freed('host:gpu')
  assert.equal(ledger.asked.length, 2)
  ledger.asked[1].answer(true)
  assert.equal((await log.next()).label, 'a0', 'the put-back request kept its place')
  ledger.asked[2].answer(true)
  assert.equal((await log.next()).label, 'b0', 'and its key kept its share')
  ledger.asked[3].answer(true)
  assert.equal((await log.next()).label, 'a1')
  assert.equal(gpu.inFlight, 3)
  for (const granted of log.granted) granted.grant.release()
  assert.deepEqual(ledger.released, ['host:gpu', 'host:gpu', 'host:gpu'])
  assert.equal(gpu.inFlight, 0)
})

test('with a ledger: a client that leaves while the ledger answers gets 499 and the lease is given back', async () => {
  const ledger = new ManualLedger()
  const gpu = testHost('gpu', 1)
  const scheduler = new SlotScheduler([gpu], settings, { ledger })
  const controller = new AbortController()
  const leaving = scheduler.acquire({ key: 'a', signal: controller.signal })
  controller.abort()
  assert.equal((await refusal(leaving)).statusCode, 499)
  ledger.asked[0].answer(true)
  await new Promise(resolve => setImmediate(resolve))
  assert.deepEqual(ledger.released, ['host:gpu'])
  assert.equal(gpu.inFlight, 0)

  const closing = scheduler.acquire({ key: 'b' })
  scheduler.close()
  assert.equal((await refusal(closing)).reason, 'closed')
  ledger.asked[1].answer(true)
  await new Promise(resolve => setImmediate(resolve))
  assert.deepEqual(ledger.released, ['host:gpu', 'host:gpu'])
  assert.equal(gpu.inFlight, 0)

  const unlimited = new SlotScheduler([testHost('wide', null)], settings, { ledger })
  await unlimited.acquire({ key: 'c' })
  assert.equal(ledger.asked.length, 2, 'a host without max_concurrent needs no lease')
})

test('each grant says how long it waited (ms, by the scheduler\'s clock)', async () => {
  let clock = 1000
  const gpu = testHost('gpu', 1)
  const scheduler = new SlotScheduler([gpu], settings, { now: () => clock })
  const log = new GrantLog(scheduler)
  const first = await log.acquire({ key: 'a' })
  assert.equal(first.waitedMs, 0)
  log.enqueue({ key: 'b' })
  clock += 250
  first.release()
  await log.next()
  assert.equal((await log.next()).grant.waitedMs, 250)
})

test('grantNow: a free slot at once, without a promise; undefined when the request must wait or others wait first', async () => {
  const gpu = testHost('gpu', 1)
  const { scheduler } = schedulerOf([gpu])
  const first = scheduler.grantNow({ key: 'a' })
  assert.ok(first !== undefined)
  assert.equal(first.host, gpu)
  assert.equal(gpu.inFlight, 1)
  assert.equal(scheduler.grantNow({ key: 'b' }), undefined, 'the host is full')
  const waiting = scheduler.acquire({ key: 'b' })
  first.release()
  const second = await waiting
  assert.equal(second.host, gpu)
  assert.equal(scheduler.grantNow({ key: 'c' }), undefined, 'full again')
  second.release()
  assert.ok(scheduler.grantNow({ key: 'c' }) !== undefined)
  assert.throws(() => scheduler.grantNow({ key: 'd', exclude: new Set(['gpu']) }), (err: SchedulingError) => err.statusCode === 502)
})
