import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { TokenUsage } from './request-log.js'
import type { Host } from '../upstream/upstream-pool.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ProxyMetrics
  }
}

/**
 * Most distinct values a label takes per metric; past the cap new values count as "other".
 * Models are client-chosen strings; keys come from the config but accumulate across reloads;
 * statuses and error codes come from Ollama and the network.
 */
export const LABEL_CAPS = { model: 200, key: 500, status: 64, reason: 32 } as const
export const FOLDED_LABEL = 'other'

/** The first `cap` distinct values keep their name; every later one becomes "other". */
class LabelCap {
  private readonly seen = new Set<string>()
  constructor (private readonly cap: number) {}

  label (value: string): string {
    if (this.seen.has(value)) return value
    if (this.seen.size >= this.cap) return FOLDED_LABEL
    this.seen.add(value)
    return value
  }
}

export interface ProxyMetrics {
  registry: Registry
  recordTokens (key: string, model: string, usage: TokenUsage): void
}

/**
 * Prometheus metrics (prom-client) on a registry of the app's own. Labels stay bounded: routes
 * are route-table patterns, keys are names from the config, models are normalised and capped.
 */
export default fp(async function metricsPlugin (fastify) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'ollama_proxy_process_' })

  // The two per-request series are counted in plain maps and handed to prom-client when scraped:
  // its label hashing (sorting and joining label names on every call) cost more than the rest
  // of the metrics together on a small request. The maps stay as small as the label caps allow.
  const requestCounts = new Map<string, { labels: { route: string, method: string, status: string, key: string }, count: number }>()
  const inFlightCounts = new Map<string, number>()
  new Counter({ // eslint-disable-line no-new
    name: 'ollama_proxy_requests_total',
    help: 'Requests by route, status and key name',
    labelNames: ['route', 'method', 'status', 'key'],
    registers: [registry],
    collect () {
      this.reset()
      for (const { labels, count } of requestCounts.values()) this.inc(labels, count)
    }
  })
  const tokens = new Counter({ name: 'ollama_proxy_tokens_total', help: 'Tokens reported by Ollama, by key, model and kind (prompt or completion)', labelNames: ['key', 'model', 'kind'], registers: [registry] })
  new Gauge({ // eslint-disable-line no-new
    name: 'ollama_proxy_in_flight_requests',
    help: 'Requests and streams in flight to Ollama',
    labelNames: ['key'],
    registers: [registry],
    collect () {
      this.reset()
      for (const [key, count] of inFlightCounts) this.set({ key }, count)
    }
  })
  const firstByte = new Histogram({ name: 'ollama_proxy_upstream_first_byte_seconds', help: 'Time until Ollama\'s status line and headers', labelNames: ['route'], buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers: [registry] })
  const duration = new Histogram({ name: 'ollama_proxy_request_duration_seconds', help: 'Whole request duration, streams included', labelNames: ['route'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800], registers: [registry] })
  const upstreamErrors = new Counter({ name: 'ollama_proxy_upstream_errors_total', help: 'Upstream failures by reason', labelNames: ['reason'], registers: [registry] })
  const keyLabel = new LabelCap(LABEL_CAPS.key)
  const modelLabel = new LabelCap(LABEL_CAPS.model)
  const statusLabel = new LabelCap(LABEL_CAPS.status)
  const reasonLabel = new LabelCap(LABEL_CAPS.reason)
  const pool = fastify.upstreams
  // Read from the pool at scrape time, so the numbers are never stale.
  const hostGauge = (name: string, help: string, value: (host: Host) => number) => new Gauge({
    name,
    help,
    labelNames: ['host'],
    registers: [registry],
    collect () {
      for (const host of pool.hosts) this.set({ host: host.name }, value(host))
    }
  })
  hostGauge('ollama_proxy_upstream_healthy', '1 when the Ollama host passes its health checks', h => h.healthy ? 1 : 0)
  hostGauge('ollama_proxy_upstream_in_flight', 'Requests in flight per Ollama host', h => h.inFlight)
  hostGauge('ollama_proxy_upstream_models', 'Models the Ollama host has', h => h.models.size)
  hostGauge('ollama_proxy_upstream_loaded_models', 'Models loaded in the Ollama host\'s memory', h => h.loaded.size)

  const windows = fastify.limitWindows
  if (windows.usageTotals !== undefined) {
    const totals = windows.usageTotals.bind(windows)
    new Gauge({ // eslint-disable-line no-new
      name: 'ollama_proxy_shared_tokens',
      help: 'Tokens used by every replica together, by key, model and kind (from Redis)',
      labelNames: ['key', 'model', 'kind'],
      registers: [registry],
      async collect () {
        this.reset()
        // Redis holds every replica's counters, old key names included: fold them under fresh caps.
        const keys = new LabelCap(LABEL_CAPS.key)
        const models = new LabelCap(LABEL_CAPS.model)
        const sums = new Map<string, { key: string, model: string, kind: string, tokens: number }>()
        for (const total of await totals()) {
          const labels = { key: keys.label(total.key), model: models.label(total.model), kind: total.kind }
          const id = JSON.stringify(labels)
          const sum = sums.get(id) ?? { ...labels, tokens: 0 }
          sum.tokens += total.tokens
          sums.set(id, sum)
        }
        for (const { tokens, ...labels } of sums.values()) this.set(labels, tokens)
      }
    })
  }

  const metrics: ProxyMetrics = {
    registry,
    recordTokens (keyName, model, usage) {
      const labels = { key: keyLabel.label(keyName), model: modelLabel.label(model) }
      if (usage.promptTokens > 0) tokens.inc({ ...labels, kind: 'prompt' }, usage.promptTokens)
      if (usage.completionTokens > 0) tokens.inc({ ...labels, kind: 'completion' }, usage.completionTokens)
    }
  }
  fastify.decorate('metrics', metrics)

  fastify.observeUpstream((request) => {
    const key = keyLabel.label(request.apiKey?.name ?? 'none')
    inFlightCounts.set(key, (inFlightCounts.get(key) ?? 0) + 1)
  })

  fastify.onRequestDone((request, record) => {
    const key = keyLabel.label(request.apiKey?.name ?? 'none')
    const route = record.route ?? 'other'
    const method = request.method
    const status = statusLabel.label(String(record.status))
    const id = `${route} ${method} ${status} ${key}`
    const counted = requestCounts.get(id)
    if (counted !== undefined) counted.count++
    else requestCounts.set(id, { labels: { route, method, status, key }, count: 1 })
    duration.observe({ route }, record.ms / 1000)
    const upstream = request.upstream
    if (upstream === undefined) return
    if (upstream.status !== undefined) {
      // Counted up when Ollama answered (observeUpstream), down here however the request ended.
      inFlightCounts.set(key, (inFlightCounts.get(key) ?? 1) - 1)
      if (upstream.firstByteMs !== undefined) firstByte.observe({ route }, upstream.firstByteMs / 1000)
    }
    if (upstream.error !== undefined) upstreamErrors.inc({ reason: reasonLabel.label(upstream.error) })
  })
}, { name: 'metrics', fastify: '5.x', dependencies: ['upstream', 'request-log', 'limits'] })
