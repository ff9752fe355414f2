import { Redis } from 'ioredis'
import { MemoryWindows, WINDOW_MS, windowStart, type WindowStore } from './key-limits.js'
import { redactUrlCredentials } from '../config/config-loader.js'

type LogFn = (obj: Record<string, unknown>, msg: string) => void

/** What the store logs through: Fastify's (pino) logger fits. */
export interface StoreLogger {
  info: LogFn
  warn: LogFn
  error: LogFn
  debug?: LogFn
}

export interface RedisWindowsOptions {
  /** redis:// or rediss:// URL, password and database included */
  url: string
  /** put before every key, e.g. "ollama-proxy:" */
  prefix: string
}

export interface UsageTotal {
  key: string
  model: string
  kind: 'prompt' | 'completion'
  tokens: number
}

/** Keys live two windows: the current one is always complete, old ones clean themselves up. */
const KEY_TTL_MS = 2 * WINDOW_MS
/** After a failed command on a connection that still looks fine (a hung server), stay local this long. */
const COOLDOWN_MS = 1000
const RECONNECT_MS = 500
const FALLBACK_MESSAGE = 'redis unreachable: limits are per replica until it returns'

/** host:port of a Redis URL, for logs: never the password. */
export function redisAddress (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port !== '' ? parsed.port : '6379'}`
  } catch {
    return 'redis'
  }
}

/** An error's message for a log line, with any URL's user:password replaced. */
function messageOf (err: unknown): string {
  return redactUrlCredentials(err instanceof Error ? err.message : String(err))
}

/** Most distinct models a key's usage hash in Redis counts by name; later ones add to "other". */
export const MAX_USAGE_MODELS = 200
export const FOLDED_MODEL = 'other'

/**
 * Adds prompt and completion tokens to a key's usage hash in one step. A model the hash does not
 * hold yet is folded into FOLDED_MODEL once the hash has MAX_USAGE_MODELS models (two fields each),
 * so client-chosen model names cannot grow Redis without bound. Returns the model counted.
 * KEYS[1] hash; ARGV model, prompt tokens, completion tokens, cap, folded name.
 */
const RECORD_USAGE_LUA = `
local model = ARGV[1]
if redis.call('HEXISTS', KEYS[1], model .. '|prompt') == 0 and redis.call('HLEN', KEYS[1]) >= 2 * tonumber(ARGV[4]) then
  model = ARGV[5]
end
redis.call('HINCRBY', KEYS[1], model .. '|prompt', ARGV[2])
redis.call('HINCRBY', KEYS[1], model .. '|completion', ARGV[3])
return model
`

/** SCAN MATCH treats * ? [ ] and \ as pattern characters; a prefix is taken literally. */
function escapeGlob (text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/**
 * Minute windows shared by every replica through Redis (one INCRBY + PEXPIRE round trip per
 * count), with an in-memory fallback: while Redis is unreachable or failing, each replica counts
 * on its own, and returns to Redis as soon as it is back. No method ever throws or waits for a
 * reconnection: commands fail fast while disconnected (no offline queue, short timeout).
 */
export class RedisWindows implements WindowStore {
  private readonly client: Redis
  private readonly memory = new MemoryWindows()
  private readonly prefix: string
  private readonly address: string
  /** true from the first failure until Redis answers again: one warn line per outage */
  private down = false
  private connectedOnce = false
  private closing = false
  private retryAt = 0

  constructor (options: RedisWindowsOptions, private readonly log: StoreLogger) {
    this.prefix = options.prefix
    this.address = redisAddress(options.url)
    this.client = new Redis(options.url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: 500,
      connectTimeout: 2000,
      // Forever, at a steady pace: Redis may be away for minutes.
      retryStrategy: () => RECONNECT_MS
    })
    this.client.on('ready', () => {
      this.retryAt = 0
      if (this.down) {
        this.down = false
        this.log.info({ redis: this.address }, 'redis is back: limits are shared by all replicas again')
      } else if (!this.connectedOnce) {
        this.log.info({ redis: this.address }, 'redis connected: limits are shared by all replicas')
      }
      this.connectedOnce = true
    })
    // Without an 'error' listener ioredis prints every failed reconnection to stderr.
    this.client.on('error', (err: unknown) => this.fallBack(err))
    this.client.on('close', () => this.fallBack(new Error('connection closed')))
  }

  /** 'redis' while counts go to Redis, 'local' while this replica counts on its own. */
  get mode (): 'redis' | 'local' {
    return this.usable() && !this.down ? 'redis' : 'local'
  }

  async incr (key: string, amount: number, now: number): Promise<number> {
    if (this.usable()) {
      const name = this.windowKey(key, now)
      try {
        const results = await this.client.multi().incrby(name, amount).pexpire(name, KEY_TTL_MS).exec()
        const [error, total] = results?.[0] ?? [new Error('transaction aborted'), null]
        if (error !== null) throw error
        this.recovered()
        return Number(total)
      } catch (err) {
        this.commandFailed(err)
      }
    }
    return this.memory.incr(key, amount, now)
  }

  async peek (key: string, now: number): Promise<number> {
    if (this.usable()) {
      try {
        const value = await this.client.get(this.windowKey(key, now))
        this.recovered()
        return value === null ? 0 : Number(value)
      } catch (err) {
        this.commandFailed(err)
      }
    }
    return this.memory.peek(key, now)
  }

  /** Adds an answer's tokens to the usage counters shared by all replicas; never waits, never throws. */
  recordUsage (keyName: string, model: string, promptTokens: number, completionTokens: number): void {
    if (!this.usable()) {
      this.log.debug?.({ redis: this.address, key: keyName }, 'redis unreachable: usage not recorded')
      return
    }
    const name = `${this.prefix}usage:${keyName}`
    this.client.eval(RECORD_USAGE_LUA, 1, name, model, promptTokens, completionTokens, MAX_USAGE_MODELS, FOLDED_MODEL)
      .catch((err: unknown) => {
        this.log.debug?.({ redis: this.address, key: keyName, reason: messageOf(err) }, 'could not record usage in redis')
      })
  }

  /** Every key's tokens per model since the counters began, from all replicas; [] when Redis fails. */
  async usageTotals (): Promise<UsageTotal[]> {
    const head = `${this.prefix}usage:`
    try {
      const names = new Set<string>()
      let cursor = '0'
      do {
        const [next, batch] = await this.client.scan(cursor, 'MATCH', `${escapeGlob(head)}*`, 'COUNT', 500)
        for (const name of batch) names.add(name)
        cursor = next
      } while (cursor !== '0')
      const totals: UsageTotal[] = []
      for (const name of [...names].sort()) {
        const fields = await this.client.hgetall(name)
        for (const [field, value] of Object.entries(fields)) {
          const bar = field.lastIndexOf('|')
          const kind = field.slice(bar + 1)
          if (bar <= 0 || (kind !== 'prompt' && kind !== 'completion')) continue
          totals.push({ key: name.slice(head.length), model: field.slice(0, bar), kind, tokens: Number(value) })
        }
      }
      return totals
    } catch (err) {
      this.log.debug?.({ redis: this.address, reason: messageOf(err) }, 'could not read usage from redis')
      return []
    }
  }

  async close (): Promise<void> {
    this.closing = true
    if (this.client.status === 'ready') {
      try {
        await this.client.quit()
        return
      } catch {
        // fall through: drop the connection
      }
    }
    this.client.disconnect()
  }

  private windowKey (key: string, now: number): string {
    return `${this.prefix}win:${key}:${windowStart(now)}`
  }

  private usable (): boolean {
    return !this.closing && this.client.status === 'ready' && Date.now() >= this.retryAt
  }

  private commandFailed (err: unknown): void {
    this.retryAt = Date.now() + COOLDOWN_MS
    this.fallBack(err)
  }

  private fallBack (err: unknown): void {
    if (this.closing || this.down) return
    this.down = true
    this.log.warn({ redis: this.address, reason: messageOf(err) }, FALLBACK_MESSAGE)
  }

  /** A command worked again on a connection that never dropped (e.g. after a timeout). */
  private recovered (): void {
    if (!this.down) return
    this.down = false
    this.log.info({ redis: this.address }, 'redis is back: limits are shared by all replicas again')
  }
}
