import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { RedisLink, type RedisLogger } from '../redis/redis-link.js'
import { LocalSlots, type Lease, type SlotLedger } from './slot-ledger.js'

export interface RedisLeasesOptions {
  /** redis:// or rediss:// URL, password and database included */
  url: string
  /** put before every key and channel, e.g. "ollama-proxy:" */
  prefix: string
  /** A lease not renewed for this long (ms) is free again: how long a dead replica's slots stay lost (default 5000). */
  leaseTtlMs?: number
  /** How often (ms) held leases are renewed; well under leaseTtlMs (default a fifth of it). */
  renewIntervalMs?: number
  /** How often (ms) a waiter blocked by slots held elsewhere looks again (see SlotLedger; default 250). */
  pollIntervalMs?: number
}

const COMMAND_TIMEOUT_MS = 500
const RECONNECT_MS = 500
/** Leases renewed per script call. */
const RENEW_BATCH = 500
const FALLBACK_MESSAGE = 'redis unreachable: slot caps are per replica until it returns'
const BACK_MESSAGE = 'redis is back: slot caps are shared by all replicas again'

// A resource's leases are a sorted set: member = lease id, score = expiry in Redis's own clock
// (TIME), so replicas' clocks never matter. Every script drops expired members first.
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

/** KEYS[1] set; ARGV lease id, limit, ttl ms. 1 = taken, 0 = all held. */
const TAKE_LUA = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
return 1`

/**
 * KEYS sets, one per lease; ARGV[1] ttl ms, then the lease ids. Re-adds a lease that expired or
 * was lost with a restarted Redis: a slot still in use must be counted again.
 */
const RENEW_LUA = `${NOW}
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, 2 * ttl)
end
return #KEYS`

/** KEYS[1] set; ARGV lease id, channel, resource. */
const RELEASE_LUA = `redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`

interface HeldLease extends Lease {
  readonly id: string
}

/**
 * Slots shared by all replicas through Redis: each held slot is a lease with a short expiry,
 * renewed every renewIntervalMs while held and removed at once on release, so a replica that
 * dies without releasing loses its slots for at most leaseTtlMs. A release is published on a
 * channel, so replicas waiting for that resource look again at once (and every pollIntervalMs
 * anyway, for leases that simply expired). While Redis is unreachable or failing, slots are
 * counted on this replica alone (one warning, an info line when Redis is back, when every held
 * lease is registered again). No method waits longer than the 500 ms command timeout or throws.
 */
export class RedisLeases implements SlotLedger {
  readonly pollIntervalMs: number
  private readonly link: RedisLink
  private readonly client: Redis
  private readonly subscriber: Redis
  private readonly channel: string
  private readonly ttlMs: number
  /** Every lease this replica holds, Redis or not: what a fallback counts and a renewal registers. */
  private readonly local = new LocalSlots()
  private readonly held = new Map<string, HeldLease>()
  private readonly listeners = new Set<(resource: string) => void>()
  private readonly replica = randomUUID()
  private readonly renewTimer: NodeJS.Timeout
  private leaseCount = 0

  constructor (private readonly options: RedisLeasesOptions, log: RedisLogger) {
    this.ttlMs = options.leaseTtlMs ?? 5000
    this.pollIntervalMs = options.pollIntervalMs ?? 250
    this.channel = `${options.prefix}slots:freed`
    // Every lease held is registered again whenever Redis is (back) there.
    this.link = new RedisLink({
      url: options.url,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      messages: { connected: 'redis connected: slot caps are shared by all replicas', down: FALLBACK_MESSAGE, back: BACK_MESSAGE },
      onReady: () => { this.renew() }
    }, log)
    this.client = this.link.client
    // A subscriber connection serves nothing else; it queues its SUBSCRIBE until connected and
    // subscribes again after each reconnection.
    this.subscriber = new Redis(options.url, { connectTimeout: 2000, retryStrategy: () => RECONNECT_MS, maxRetriesPerRequest: null })
    this.subscriber.on('error', () => {})
    this.subscriber.on('message', (_channel: string, resource: string) => {
      for (const listener of this.listeners) listener(resource)
    })
    this.subscriber.subscribe(this.channel).catch(() => {})
    this.renewTimer = setInterval(() => this.renew(), options.renewIntervalMs ?? Math.max(50, Math.floor(this.ttlMs / 5)))
    this.renewTimer.unref()
  }

  /** 'redis' while slots are counted in Redis, 'local' while this replica counts on its own. */
  get mode (): 'redis' | 'local' {
    return this.link.usable() && !this.link.down ? 'redis' : 'local'
  }

  /** Leases this replica holds now. */
  get heldCount (): number {
    return this.held.size
  }

  /** One of `limit` slots of `resource` for all replicas (this replica's alone while Redis is away); null when all are held. */
  async take (resource: string, limit: number): Promise<Lease | null> {
    const id = `${this.replica}:${++this.leaseCount}`
    if (this.link.usable()) {
      try {
        const taken = await this.client.eval(TAKE_LUA, 1, this.setKey(resource), id, limit, this.ttlMs)
        this.link.succeeded()
        return taken === 1 ? this.hold(resource, id) : null
      } catch (err) {
        this.link.failed(err)
        // A hung server still runs the script when it goes on: that lease must not outlive this call.
        this.remove(resource, id)
      }
    }
    return this.local.count(resource) >= limit ? null : this.hold(resource, id)
  }

  /** `listener` hears every release published by any replica; returns the unsubscribe. */
  onFreed (listener: (resource: string) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Stops renewing and disconnects; held leases then expire within leaseTtlMs. */
  async close (): Promise<void> {
    clearInterval(this.renewTimer)
    this.listeners.clear()
    this.subscriber.disconnect()
    await this.link.close()
  }

  private hold (resource: string, id: string): HeldLease {
    this.local.add(resource)
    let released = false
    const lease: HeldLease = {
      resource,
      id,
      release: () => {
        if (released) return false
        released = true
        this.held.delete(id)
        this.local.drop(resource)
        this.remove(resource, id)
        return true
      }
    }
    this.held.set(id, lease)
    return lease
  }

  /**
   * Removes a lease from Redis and tells the replicas. Sent even while cooling down after a
   * failure: queued behind a take or renewal of the same lease on a hung server, it runs after
   * them, so no lease outlives its release by the TTL once Redis answers again.
   */
  private remove (resource: string, id: string): void {
    if (!this.link.connected()) return
    this.client.eval(RELEASE_LUA, 1, this.setKey(resource), id, this.channel, resource).then(() => this.link.succeeded(), (err: unknown) => this.link.failed(err))
  }

  /** Pushes every held lease's expiry forward, registering again those Redis lost. */
  private renew (): void {
    if (!this.link.usable() || this.held.size === 0) return
    const leases = [...this.held.values()]
    for (let i = 0; i < leases.length; i += RENEW_BATCH) {
      const batch = leases.slice(i, i + RENEW_BATCH)
      this.client.eval(RENEW_LUA, batch.length, ...batch.map(l => this.setKey(l.resource)), this.ttlMs, ...batch.map(l => l.id))
        .then(() => this.link.succeeded(), (err: unknown) => this.link.failed(err))
    }
  }

  private setKey (resource: string): string {
    return `${this.options.prefix}slots:${resource}`
  }
}
