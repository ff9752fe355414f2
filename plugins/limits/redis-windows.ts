import { MemoryWindows, WINDOW_MS, windowStart, type WindowStore } from './key-limits.js'
import { RedisLink, redisErrorMessage, type RedisLogger } from '../redis/redis-link.js'

/** What the store logs through: Fastify's (pino) logger fits. */
export type StoreLogger = RedisLogger

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
const FALLBACK_MESSAGE = 'redis unreachable: limits are per replica until it returns'

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
  private readonly link: RedisLink
  private readonly memory = new MemoryWindows()
  private readonly prefix: string

  constructor (options: RedisWindowsOptions, private readonly log: StoreLogger) {
    this.prefix = options.prefix
    this.link = new RedisLink({
      url: options.url,
      commandTimeoutMs: 500,
      messages: { connected: 'redis connected: limits are shared by all replicas', down: FALLBACK_MESSAGE, back: 'redis is back: limits are shared by all replicas again' }
    }, log)
  }

  /** 'redis' while counts go to Redis, 'local' while this replica counts on its own. */
  get mode (): 'redis' | 'local' {
    return this.link.usable() && !this.link.down ? 'redis' : 'local'
  }

  async incr (key: string, amount: number, now: number): Promise<number> {
    if (this.link.usable()) {
      const name = this.windowKey(key, now)
      try {
        const results = await this.link.client.multi().incrby(name, amount).pexpire(name, KEY_TTL_MS).exec()
        const [error, total] = results?.[0] ?? [new Error('transaction aborted'), null]
        if (error !== null) throw error
        this.link.succeeded()
        return Number(total)
      } catch (err) {
        this.link.failed(err)
      }
    }
    return this.memory.incr(key, amount, now)
  }

  async peek (key: string, now: number): Promise<number> {
    if (this.link.usable()) {
      try {
        const value = await this.link.client.get(this.windowKey(key, now))
        this.link.succeeded()
        return value === null ? 0 : Number(value)
      } catch (err) {
        this.link.failed(err)
      }
    }
    return this.memory.peek(key, now)
  }

  /** Adds an answer's tokens to the usage counters shared by all replicas; never waits, never throws. */
  recordUsage (keyName: string, model: string, promptTokens: number, completionTokens: number): void {
    if (!this.link.usable()) {
      this.log.debug?.({ redis: this.link.address, key: keyName }, 'redis unreachable: usage not recorded')
      return
    }
    const name = `${this.prefix}usage:${keyName}`
    this.link.client.eval(RECORD_USAGE_LUA, 1, name, model, promptTokens, completionTokens, MAX_USAGE_MODELS, FOLDED_MODEL)
      .catch((err: unknown) => {
        this.log.debug?.({ redis: this.link.address, key: keyName, reason: redisErrorMessage(err) }, 'could not record usage in redis')
      })
  }

  /** Every key's tokens per model since the counters began, from all replicas; [] when Redis fails. */
  async usageTotals (): Promise<UsageTotal[]> {
    const head = `${this.prefix}usage:`
    try {
      const names = new Set<string>()
      let cursor = '0'
      do {
        const [next, batch] = await this.link.client.scan(cursor, 'MATCH', `${escapeGlob(head)}*`, 'COUNT', 500)
        for (const name of batch) names.add(name)
        cursor = next
      } while (cursor !== '0')
      const totals: UsageTotal[] = []
      for (const name of [...names].sort()) {
        const fields = await this.link.client.hgetall(name)
        for (const [field, value] of Object.entries(fields)) {
          const bar = field.lastIndexOf('|')
          const kind = field.slice(bar + 1)
          if (bar <= 0 || (kind !== 'prompt' && kind !== 'completion')) continue
          totals.push({ key: name.slice(head.length), model: field.slice(0, bar), kind, tokens: Number(value) })
        }
      }
      return totals
    } catch (err) {
      this.log.debug?.({ redis: this.link.address, reason: redisErrorMessage(err) }, 'could not read usage from redis')
      return []
    }
  }

  async close (): Promise<void> {
    await this.link.close()
  }

  private windowKey (key: string, now: number): string {
    return `${this.prefix}win:${key}:${windowStart(now)}`
  }
}
