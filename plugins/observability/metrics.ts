import fp from 'fastify-plugin'
import type { Registry } from 'prom-client'
import { ProxyError } from '../http/error-shapes.js'
import { MetricCounts } from './metric-counts.js'
import type { MetricSources } from './metrics-exposition.js'
import type { TokenUsage } from '../usage/usage-meter.js'

export { FOLDED_LABEL, LABEL_CAPS } from './metric-counts.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ProxyMetrics
  }
}

/** A Prometheus text page and its content type (`text/plain; version=0.0.4; charset=utf-8`). */
export interface MetricsPage { contentType: string, text: string }

export interface ProxyMetrics {
  /**
   * The page for `/metrics`. The first call loads prom-client and creates its registry (calls
   * made meanwhile wait for the same one). If prom-client cannot be loaded it logs the cause and
   * rejects with a ProxyError 503; Node keeps a failed import, so every later call fails the
   * same way until the proxy is restarted.
   */
  scrape (): Promise<MetricsPage>
  /** Tokens of one answer, by key name and normalised model (both capped, see LABEL_CAPS). */
  recordTokens (key: string, model: string, usage: TokenUsage): void
}

/**
 * `load` run once, on the first call; calls made while it runs share its promise. A rejection is
 * not kept: the next call runs `load` again.
 */
export function loadOnce<T> (load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined
  return async () => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined
      throw error
    })
    return await loading
  }
}

/**
 * Prometheus metrics. Every series of the proxy is counted in plain maps (metric-counts.ts) from
 * the start; prom-client (with `@opentelemetry/api`) is imported on the first scrape and
 * formats them at each scrape. Its default process metrics (`ollama_proxy_process_*`) start at
 * that scrape too: CPU seconds still count from the process start (metrics-exposition.ts adds
 * the CPU used before), but the GC histogram counts from then on and the event-loop lag figures
 * of the first scrape are empty. Labels stay bounded: routes are route-table patterns, keys are
 * names from the config, models are normalised and capped (LABEL_CAPS).
 */
export default fp(async function metricsPlugin (fastify) {
  const counts = new MetricCounts()
  const windows = fastify.limitWindows
  const sources: MetricSources = {
    counts,
    hosts: fastify.upstreams.hosts,
    queue: fastify.upstreams.scheduler,
    budgets: () => fastify.keyRing.keys.flatMap(key => {
      const decision = fastify.usage.decide(key, true, fastify.clock())
      return (decision?.remaining ?? []).map(b => ({ key: key.name, budget: b.budget, remaining: b.remaining }))
    }),
    sharedTokens: windows.usageTotals?.bind(windows)
  }
  const registry = loadOnce<Registry>(async () => {
    const { createRegistry } = await import('./metrics-exposition.js')
    return createRegistry(sources)
  })

  const metrics: ProxyMetrics = {
    async scrape () {
      let loaded: Registry
      try {
        loaded = await registry()
      } catch (err) {
        fastify.log.error({ err }, 'metrics unavailable: prom-client could not be loaded')
        throw new ProxyError(503, 'metrics are unavailable: the proxy could not load prom-client (the cause is in its log; it tries again only after a restart)')
      }
      return { contentType: loaded.contentType, text: await loaded.metrics() }
    },
    recordTokens (keyName, model, usage) {
      counts.countTokens(keyName, model, usage.promptTokens, usage.completionTokens)
    }
  }
  fastify.decorate('metrics', metrics)

  // In flight from the first call to Ollama until the exchange ends, however it ends.
  fastify.exchangeServices.upstreamStarted = (exchange) => {
    counts.addInFlight(counts.keyLabel.label(exchange.key?.name ?? 'none'), 1)
  }

  fastify.onExchangeDone((exchange, status, ms) => {
    const key = counts.keyLabel.label(exchange.key?.name ?? 'none')
    const route = exchange.route?.path ?? 'other'
    counts.countRequest(route, exchange.request.method, status, key)
    counts.duration.observe(route, ms / 1000)
    const upstream = exchange.upstream
    if (upstream === undefined) return
    counts.addInFlight(key, -1)
    if (upstream.firstByteMs !== undefined) counts.firstByte.observe(route, upstream.firstByteMs / 1000)
    if (exchange.queueMs !== undefined) counts.queueWait.observe(route, exchange.queueMs / 1000)
    if (upstream.error !== undefined) counts.countUpstreamError(upstream.error)
  })
}, { name: 'metrics', fastify: '5.x', dependencies: ['upstream', 'request-log', 'limits', 'usage'] })
