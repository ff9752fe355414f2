import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ProxyError } from '../http/error-shapes.js'
import { ConcurrencySlots, MemoryWindows, type WindowStore } from './key-limits.js'
import { chargeTokenWindow, limitHeaders, refuseWhenTokensSpent, secondsLeft } from './token-window.js'
import { onResponseClose } from '../http/per-request.js'

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
  windows?: WindowStore
}

const requestsKey = (name: string) => `rpm:${name}`

/**
 * A key's `limits` from the config: requests per minute, tokens per minute (every answer is
 * charged after it streams, see usage.ts; a spent window refuses up front, refuseWhenTokensSpent)
 * and concurrent requests, checked before the body is read. Over a limit: 429 in dialect with
 * Retry-After and RateLimit-* headers. Keys without limits pay one property check.
 */
export default fp<LimitsOptions>(async function limitsPlugin (fastify, options) {
  const windows = options.windows ?? new MemoryWindows()
  const slots = new ConcurrencySlots()
  fastify.decorate('limitWindows', windows)
  fastify.decorate('concurrencySlots', slots)
  fastify.decorate('chargeTokens', function chargeTokens (keyName: string, tokens: number) {
    chargeTokenWindow(windows, keyName, tokens, (err: unknown) => {
      fastify.log.warn({ err }, 'could not record token usage')
    })
  })

  async function check (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const key = request.apiKey!
    const { requestsPerMinute, tokensPerMinute, concurrent } = key.limits
    const now = Date.now()
    if (requestsPerMinute !== null) {
      const count = await windows.incr(requestsKey(key.name), 1, now)
      const reset = secondsLeft(now)
      reply.headers(limitHeaders(requestsPerMinute, Math.max(0, requestsPerMinute - count), reset))
      if (count > requestsPerMinute) {
        throw new ProxyError(429, `rate limit exceeded: this key may send ${requestsPerMinute} requests per minute; retry in ${reset} s`, { 'retry-after': String(reset) })
      }
    }
    if (tokensPerMinute !== null) await refuseWhenTokensSpent(windows, key, now)
    if (concurrent !== null) {
      if (!slots.tryTake(key.name, concurrent)) {
        throw new ProxyError(429, `concurrency limit exceeded: this key may run ${concurrent} requests at once`, { ...limitHeaders(concurrent, 0, 1), 'retry-after': '1' })
      }
      // 'close' comes once per response, finished or aborted: the slot can never leak.
      onResponseClose(reply, () => { slots.release(key.name) })
    }
  }

  // onRequest, right after auth: a refused request never uploads its body first.
  fastify.addHook('onRequest', function enforceKeyLimits (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    const limits = request.apiKey?.limits
    if (limits === undefined || (limits.requestsPerMinute === null && limits.tokensPerMinute === null && limits.concurrent === null)) {
      done()
      return
    }
    check(request, reply).then(() => done(), done)
  })
}, { name: 'limits', fastify: '5.x', dependencies: ['auth'] })
