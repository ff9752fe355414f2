import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ProxyError } from './error-shapes.js'
import { ConcurrencySlots, MemoryTokenWindows, WINDOW_MS, windowStart, type TokenWindowStore } from './key-limits.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Per-key token windows; the usage plugin adds to them as answers finish. */
    tokenWindows: TokenWindowStore
    concurrencySlots: ConcurrencySlots
  }
}

export interface LimitsOptions {
  /** A shared store for the request-rate limiter (Redis with several replicas). */
  rateLimitStore?: unknown
  tokenWindows?: TokenWindowStore
}

function retryHeaders (limit: number, seconds: number): Record<string, string> {
  return {
    'retry-after': String(seconds),
    'ratelimit-limit': String(limit),
    'ratelimit-remaining': '0',
    'ratelimit-reset': String(seconds)
  }
}

/**
 * A key's `limits` from the config: requests per minute (@fastify/rate-limit), tokens per minute
 * (counted from Ollama's own figures) and concurrent requests. Over a limit: 429 in dialect with
 * Retry-After and RateLimit-* headers. Keys without limits skip all of it.
 */
export default fp<LimitsOptions>(async function limitsPlugin (fastify, options) {
  const tokenWindows = options.tokenWindows ?? new MemoryTokenWindows()
  const slots = new ConcurrencySlots()
  fastify.decorate('tokenWindows', tokenWindows)
  fastify.decorate('concurrencySlots', slots)

  await fastify.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    timeWindow: WINDOW_MS,
    enableDraftSpec: true,
    ...(options.rateLimitStore !== undefined ? { store: options.rateLimitStore as never } : {}),
    keyGenerator: (request: FastifyRequest) => request.apiKey?.name ?? '',
    allowList: (request: FastifyRequest) => request.apiKey?.limits.requestsPerMinute == null,
    max: (request: FastifyRequest) => request.apiKey?.limits.requestsPerMinute ?? Number.MAX_SAFE_INTEGER,
    errorResponseBuilder: (_request: FastifyRequest, context: { max: number, after: string }) =>
      new ProxyError(429, `rate limit exceeded: this key may send ${context.max} requests per minute; retry in ${context.after}`)
  })

  function takeSlot (request: FastifyRequest, reply: FastifyReply): void {
    const key = request.apiKey
    const concurrent = key?.limits.concurrent
    if (key === undefined || concurrent == null) return
    if (!slots.tryTake(key.name, concurrent)) {
      throw new ProxyError(429, `concurrency limit exceeded: this key may run ${concurrent} requests at once`, retryHeaders(concurrent, 1))
    }
    // 'close' comes once per response, finished or aborted: the slot can never leak.
    reply.raw.once('close', () => slots.release(key.name))
  }

  fastify.addHook('preHandler', function enforceKeyLimits (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    const key = request.apiKey
    if (key === undefined || (key.limits.tokensPerMinute === null && key.limits.concurrent === null)) {
      done()
      return
    }
    const tokensPerMinute = key.limits.tokensPerMinute
    const now = Date.now()
    Promise.resolve(tokensPerMinute === null ? 0 : tokenWindows.used(key.name, now)).then(used => {
      if (tokensPerMinute !== null && used >= tokensPerMinute) {
        const seconds = Math.ceil((windowStart(now) + WINDOW_MS - now) / 1000)
        throw new ProxyError(429, `token limit exceeded: this key may use ${tokensPerMinute} tokens per minute; retry in ${seconds} s`, retryHeaders(tokensPerMinute, seconds))
      }
      takeSlot(request, reply)
      done()
    }).catch((err: Error) => done(err))
  })
}, { name: 'limits', fastify: '5.x', dependencies: ['auth'] })
