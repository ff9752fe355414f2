import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import { MetricCounts, type BucketHistogram } from './metric-counts.js'
import type { Host } from '../upstream/upstream-pool.js'
import type { WindowStore } from '../limits/key-limits.js'

/**
 * Only loaded on the first `/metrics` scrape (metrics.ts imports it dynamically): this module is
 * where prom-client, and through its default metrics `@opentelemetry/api`, come into the process.
 */

export const PROCESS_PREFIX = 'ollama_proxy_process_'

/** What the page is made of: the proxy's own counts, its Ollama hosts and queue, and Redis's usage totals. */
export interface MetricSources {
  counts: MetricCounts
  hosts: readonly Host[]
  /** Requests waiting for a host slot, per host and per key. */
  queue?: { queuedPerHost: () => Map<string, number>, waitingPerKey: () => Map<string, number> }
  sharedTokens?: WindowStore['usageTotals']
  /** What remains of each key's day and month budgets (keys with a budget only). */
  budgets?: () => Array<{ key: string, budget: string, remaining: number }>
}

/**
 * A prom-client registry that formats `sources` at each scrape, plus prom-client's default process
 * metrics (prefix `ollama_proxy_process_`), which start when this is called. Their CPU counters
 * are given the CPU the process used before, so they read CPU seconds since the process started.
 */
export function createRegistry (sources: MetricSources): Registry {
  const registry = new Registry()
  const cpuBefore = process.cpuUsage()
  collectDefaultMetrics({ register: registry, prefix: PROCESS_PREFIX })
  addCpuBefore(registry, cpuBefore)

  const { counts } = sources
  new Counter({ // eslint-disable-line no-new
    name: 'ollama_proxy_requests_total',
    help: 'Requests by route, status and key name',
    labelNames: ['route', 'method', 'status', 'key'],
    registers: [registry],
    collect () {
      this.reset()
      for (const { labels, count } of counts.requests.values()) this.inc(labels, count)
    }
  })
  new Counter({ // eslint-disable-line no-new
    name: 'ollama_proxy_tokens_total',
    help: 'Tokens reported by Ollama, by key, model and kind (prompt or completion)',
    labelNames: ['key', 'model', 'kind'],
    registers: [registry],
    collect () {
      this.reset()
      forEachTokenSeries(counts.tokens, (labels, tokens) => { this.inc(labels, tokens) })
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'ollama_proxy_in_flight_requests',
    help: 'Requests and streams in flight to Ollama',
    labelNames: ['key'],
    registers: [registry],
    collect () {
      this.reset()
      for (const [key, count] of counts.inFlight) this.set({ key }, count)
    }
  })
  registry.registerMetric(histogram('ollama_proxy_upstream_first_byte_seconds', 'Time until Ollama\'s status line and headers', counts.firstByte))
  registry.registerMetric(histogram('ollama_proxy_request_duration_seconds', 'Whole request duration, streams included', counts.duration))
  registry.registerMetric(histogram('ollama_proxy_queue_wait_seconds', 'Time inference waited for a host slot', counts.queueWait))
  const queue = sources.queue
  if (queue !== undefined) {
    new Gauge({ // eslint-disable-line no-new
      name: 'ollama_proxy_waiting_requests',
      help: 'Requests waiting for a host slot, by key',
      labelNames: ['key'],
      registers: [registry],
      collect () {
        this.reset()
        // Waiting keys are named keys and seed tokens of the config: capped like every key label.
        const capped = new Map<string, number>()
        for (const [key, waiting] of queue.waitingPerKey()) {
          const label = counts.keyLabel.label(key)
          capped.set(label, (capped.get(label) ?? 0) + waiting)
        }
        for (const [key, waiting] of capped) this.set({ key }, waiting)
      }
    })
  }
  new Counter({ // eslint-disable-line no-new
    name: 'ollama_proxy_upstream_errors_total',
    help: 'Upstream failures by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect () {
      this.reset()
      for (const [reason, count] of counts.upstreamErrors) this.inc({ reason }, count)
    }
  })

  // Read from the pool at scrape time, so the numbers are never stale.
  const hostGauge = (name: string, help: string, value: (host: Host) => number) => new Gauge({
    name,
    help,
    labelNames: ['host'],
    registers: [registry],
    collect () {
      for (const host of sources.hosts) this.set({ host: host.name }, value(host))
    }
  })
  hostGauge('ollama_proxy_upstream_healthy', '1 when the Ollama host passes its health checks', h => h.healthy ? 1 : 0)
  hostGauge('ollama_proxy_upstream_in_flight', 'Requests in flight per Ollama host', h => h.inFlight)
  hostGauge('ollama_proxy_upstream_models', 'Models the Ollama host has', h => h.models.size)
  hostGauge('ollama_proxy_upstream_loaded_models', 'Models loaded in the Ollama host\'s memory', h => h.loaded.size)
  if (queue !== undefined) {
    new Gauge({ // eslint-disable-line no-new
      name: 'ollama_proxy_upstream_queued',
      help: 'Requests waiting that the Ollama host could take',
      labelNames: ['host'],
      registers: [registry],
      collect () {
        for (const [host, queued] of queue.queuedPerHost()) this.set({ host }, queued)
      }
    })
  }

  const budgets = sources.budgets
  if (budgets !== undefined) {
    new Gauge({ // eslint-disable-line no-new
      name: 'ollama_proxy_budget_remaining',
      help: 'What remains of a key\'s day or month budget (tokens or requests), every replica together',
      labelNames: ['key', 'budget'],
      registers: [registry],
      collect () {
        this.reset()
        for (const { key, budget, remaining } of budgets()) this.set({ key: counts.keyLabel.label(key), budget }, remaining)
      }
    })
  }

  const totals = sources.sharedTokens
  if (totals !== undefined) {
    new Gauge({ // eslint-disable-line no-new
      name: 'ollama_proxy_shared_tokens',
      help: 'Tokens used by every replica together, by key, model and kind (from Redis)',
      labelNames: ['key', 'model', 'kind'],
      registers: [registry],
      async collect () {
        this.reset()
        // Redis holds every replica's counters, old key names included: fold them under fresh caps.
        const folded = new MetricCounts()
        for (const total of await totals()) {
          if (total.kind === 'prompt') folded.countTokens(total.key, total.model, total.tokens, 0)
          else folded.countTokens(total.key, total.model, 0, total.tokens)
        }
        forEachTokenSeries(folded.tokens, (labels, tokens) => { this.set(labels, tokens) })
      }
    })
  }
  return registry
}

/** Each non-zero token count as its series' labels (key, model, kind: prompt or completion) and value. */
function forEachTokenSeries (tokens: MetricCounts['tokens'], emit: (labels: { key: string, model: string, kind: 'prompt' | 'completion' }, tokens: number) => void): void {
  for (const [key, models] of tokens) {
    for (const [model, { prompt, completion }] of models) {
      if (prompt > 0) emit({ key, model, kind: 'prompt' }, prompt)
      if (completion > 0) emit({ key, model, kind: 'completion' }, completion)
    }
  }
}

/**
 * prom-client's CPU counters count from when they are created (they keep the last
 * `process.cpuUsage()` and add the difference at each scrape); created at the first scrape, they
 * are given what the process used until then. Only the microseconds between `before` and their
 * creation are missing.
 */
function addCpuBefore (registry: Registry, before: NodeJS.CpuUsage): void {
  const seconds: Array<[string, number]> = [
    ['process_cpu_user_seconds_total', before.user / 1e6],
    ['process_cpu_system_seconds_total', before.system / 1e6],
    ['process_cpu_seconds_total', (before.user + before.system) / 1e6]
  ]
  for (const [name, value] of seconds) {
    const counter = registry.getSingleMetric(PROCESS_PREFIX + name)
    if (counter instanceof Counter && value > 0) counter.inc(value)
  }
}

type HistogramRow = { metricName: string, labels: Record<string, string | number>, value: number }

/**
 * A histogram by route, formatted from counts kept elsewhere. prom-client's Histogram cannot be
 * handed bucket counts, so this implements what its registry reads from a metric (`name`,
 * `get()` giving `_bucket` rows with a cumulative `le`, `+Inf` included, then `_sum` and `_count`),
 * in the order and label order of prom-client's own Histogram, so the text is the same.
 */
function histogram (name: string, help: string, source: BucketHistogram): Metric {
  const bucketName = `${name}_bucket`
  const get = async () => {
    const values: HistogramRow[] = []
    for (const [route, series] of source.series) {
      let cumulative = 0
      for (let i = 0; i < source.bounds.length; i++) {
        cumulative += series.buckets[i]
        values.push({ metricName: bucketName, labels: { le: source.bounds[i], route }, value: cumulative })
      }
      values.push({ metricName: bucketName, labels: { le: '+Inf', route }, value: series.count })
      values.push({ metricName: `${name}_sum`, labels: { route }, value: series.sum })
      values.push({ metricName: `${name}_count`, labels: { route }, value: series.count })
    }
    return { name, help, type: 'histogram', values, aggregator: 'sum' }
  }
  // The registry's typings name prom-client's four classes; at run time it reads `name` and calls
  // `get()` (and `reset()` from `resetMetrics`, which the proxy does not call: the counts are not its own).
  return { name, help, get, reset () {} } as unknown as Metric
}
