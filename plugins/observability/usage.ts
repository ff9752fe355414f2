import fp from 'fastify-plugin'
import type { Exchange } from '../http/exchange.js'
import { normaliseModel } from '../auth/model-names.js'

/**
 * Stage 8, account: when an exchange ends, the tokens its answer cost (Ollama's counts, or the
 * estimate of usage-meter.ts, marked `estimated`) go on the exchange (and so on its log line),
 * into the key's token window, the token metrics and, with Redis, the usage shared by all
 * replicas. Every successful inference answer is charged once, whether it completed or the client
 * left; error answers cost nothing.
 */
export default fp(async function usagePlugin (fastify) {
  fastify.exchangeServices.account = function account (exchange: Exchange) {
    const meter = exchange.meter
    if (meter === undefined) return
    exchange.meter = undefined
    const usage = meter.usage(exchange.outcome === 'finished')
    exchange.usage = usage
    const key = exchange.key
    const total = usage.promptTokens + usage.completionTokens
    if (key !== undefined && key.limits.tokensPerMinute !== null && total > 0) fastify.chargeTokens(key.name, total)
    const model = exchange.model === undefined ? 'other' : normaliseModel(exchange.model)
    fastify.metrics.recordTokens(key?.name ?? 'none', model, usage)
    fastify.limitWindows.recordUsage?.(key?.name ?? 'none', model, usage.promptTokens, usage.completionTokens)
  }
}, { name: 'usage', fastify: '5.x', dependencies: ['exchange', 'limits', 'metrics'] })
