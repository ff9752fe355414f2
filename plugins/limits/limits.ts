import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ProxyError } from '../http/error-shapes.js'
import type { Exchange } from '../http/exchange.js'
import { keyResource, type Lease, type SlotLedger } from '../scheduling/slot-ledger.js'
import { ConcurrencySlots, MemoryWindows, type WindowStore } from './key-limits.js'
import { chargeTokenWindow, limitHeaders, refuseWhenTokensSpent, secondsLeft } from './token-window.js'
import { budgetHeaders } from '../usage/budget-headers.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Per-key minute windows for requests and tokens; Redis-backed with several replicas. */
    limitWindows: WindowStore
    concurrencySlots: ConcurrencySlots
    /** Charges an answer's tokens (reported by Ollama or estimated) to the key's token window. */
    chargeTokens (keyName: string, tokens: number): void
  }
}

export interface LimitsOptions {
  /** Minute windows shared by the replicas (Redis); in memory without. */
  windows?: WindowStore
  /** Concurrency slots shared by the replicas (Redis leases); counted here alone without. */
  leases?: SlotLedger
}

/** A lease being taken: the exchange holds it from the moment it was asked for. */
const TAKING = Symbol('taking a lease')

const requestsKey = (name: string) => `rpm:${name}`

/** A refusal of stage 3: 429 with the limit's name for the log line. */
function refuse (exchange: Exchange, limit: string, message: string, headers: Record<string, string>): ProxyError {
  exchange.refusedBy = limit
  return new ProxyError(429, message, headers)
}

/**
 * Stage 3, the key's limits, checked before the body is read: requests per minute and per day
 * (every route), tokens per minute, day and month (only work that runs a model) and concurrent
 * requests (only work that runs or manages models: reading model information costs no GPU time,
 * and UIs poll it). Over a limit: 429 in dialect with Retry-After and RateLimit headers. Every answer is charged after it streams
 * (plugins/usage/accounting.ts); a spent token window refuses up front. A held slot is on the
 * exchange, which gives it back when it ends, however it ends.
 */
export default fp<LimitsOptions>(async function limitsPlugin (fastify, options) {
  const windows = options.windows ?? new MemoryWindows()
  const slots = new ConcurrencySlots()
  fastify.decorate('limitWindows', windows)
  fastify.decorate('concurrencySlots', slots)
  fastify.decorate('chargeTokens', function chargeTokens (keyName: string, tokens: number) {
    chargeTokenWindow(windows, keyName, tokens, fastify.clock(), (err: unknown) => {
      fastify.log.warn({ err }, 'could not record token usage')
    })
  })
  const leases = options.leases
  fastify.exchangeServices.releaseKeyLimits = (exchange: Exchange) => {
    if (exchange.holdsKeySlot) {
      exchange.holdsKeySlot = false
      slots.release(exchange.key!.name)
    }
    const lease = exchange.keyLease
    exchange.keyLease = null
    // A lease still being taken is given back when it arrives (the exchange has ended).
    if (lease !== null && lease !== TAKING) (lease as Lease).release()
  }

  /** The key's slot across every replica (Redis leases); the exchange holds it from the ask on. */
  async function takeLease (exchange: Exchange, ledger: SlotLedger, concurrent: number): Promise<boolean> {
    exchange.keyLease = TAKING
    const lease = await ledger.take(keyResource(exchange.key!.name), concurrent)
    if (exchange.ended || exchange.keyLease !== TAKING) {
      lease?.release()
      return true
    }
    exchange.keyLease = lease
    return lease !== null
  }

  /**
   * The key's day and month budgets (plugins/usage/accounting.ts): every answer to a key with a
   * budget says what is left of it (RateLimit-Policy and RateLimit fields); a spent one refuses
   * with 429 naming it and Retry-After until its window ends.
   */
  function checkBudgets (exchange: Exchange, reply: FastifyReply, now: number): void {
    const decision = fastify.usage.decide(exchange.key!, exchange.route!.work === 'inference', now)
    if (decision === undefined) return
    reply.headers(budgetHeaders(decision.remaining, fastify.usage.monthSeconds(now)))
    if (decision.allowed) return
    const { budget, message, retryAfterSeconds } = decision.refusal
    throw refuse(exchange, budget, message, { 'retry-after': String(retryAfterSeconds) })
  }

  async function check (exchange: Exchange, reply: FastifyReply): Promise<void> {
    const key = exchange.key!
    const { requestsPerMinute, tokensPerMinute, concurrent } = key.limits
    const usesModels = exchange.route!.work !== 'read'
    const now = fastify.clock()
    if (requestsPerMinute !== null) {
      const count = await windows.incr(requestsKey(key.name), 1, now)
      const reset = secondsLeft(now)
      reply.headers(limitHeaders(requestsPerMinute, Math.max(0, requestsPerMinute - count), reset))
      if (count > requestsPerMinute) {
        throw refuse(exchange, 'requests_per_minute', `rate limit exceeded: this key may send ${requestsPerMinute} requests per minute; retry in ${reset} s`, { 'retry-after': String(reset) })
      }
    }
    checkBudgets(exchange, reply, now)
    let awaited = false
    if (tokensPerMinute !== null && exchange.route!.work === 'inference') {
      awaited = true
      try {
        await refuseWhenTokensSpent(windows, key, now)
      } catch (err) {
        exchange.refusedBy = 'tokens_per_minute'
        throw err
      }
    }
    // A client that left while Redis answered has ended its exchange: it must not take a slot now.
    if (concurrent !== null && usesModels && !exchange.ended) {
      awaited ||= leases !== undefined
      const taken = leases !== undefined ? await takeLease(exchange, leases, concurrent) : slots.tryTake(key.name, concurrent)
      if (!taken) {
        throw refuse(exchange, 'concurrent', `concurrency limit exceeded: this key may run ${concurrent} requests at once`, { ...limitHeaders(concurrent, 0, 1), 'retry-after': '1' })
      }
      if (leases === undefined) exchange.holdsKeySlot = true
    }
    if (exchange.ended) return
    // The budgets again, in the same step as the admission: requests of the key admitted while
    // this one waited for Redis count now, so parallel requests cannot overrun requests_per_day.
    if (awaited) checkBudgets(exchange, reply, now)
    fastify.usage.admit(exchange)
  }

  // onRequest, right after the key: a refused request never uploads its body first.
  fastify.addHook('onRequest', function enforceKeyLimits (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    const exchange = request.exchange
    const key = exchange.key
    // Only requests that go to Ollama count: not the proxy's own routes.
    if (key === undefined || exchange.route!.hosts === 'proxy') {
      done()
      return
    }
    const limits = key.limits
    if (limits.requestsPerMinute === null && limits.tokensPerMinute === null && limits.concurrent === null && limits.requestsPerDay === null && limits.tokensPerDay === null && limits.tokensPerMonth === null) {
      fastify.usage.admit(exchange)
      done()
      return
    }
    check(exchange, reply).then(() => done(), done)
  })
}, { name: 'limits', fastify: '5.x', dependencies: ['config', 'auth', 'exchange', 'usage'] })
