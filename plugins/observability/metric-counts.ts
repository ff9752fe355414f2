/**
 * The proxy's own metric series, counted in plain maps on the request path. prom-client only
 * formats them when `/metrics` is scraped (metrics-exposition.ts): its label hashing (sorting and
 * joining label names on every `inc`/`observe`) cost more than the rest of the metrics together on
 * a small request, and importing it at start would load modules a proxy that is never scraped
 * does not need.
 */

/**
 * Most distinct values a label takes per metric; past the cap new values count as "other".
 * Models are client-chosen strings; keys come from the config but accumulate across reloads;
 * statuses and error codes come from Ollama and the network.
 */
export const LABEL_CAPS = { model: 200, key: 500, status: 64, reason: 32 } as const
export const FOLDED_LABEL = 'other'

/** The first `cap` distinct values keep their name; every later one becomes "other". */
export class LabelCap {
  private readonly seen = new Set<string>()
  constructor (private readonly cap: number) {}

  label (value: string): string {
    if (this.seen.has(value)) return value
    if (this.seen.size >= this.cap) return FOLDED_LABEL
    this.seen.add(value)
    return value
  }
}

/** Bucket upper bounds (seconds, Prometheus `le`) of `ollama_proxy_upstream_first_byte_seconds`. */
export const FIRST_BYTE_BUCKETS: readonly number[] = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
/** Bucket upper bounds (seconds) of `ollama_proxy_queue_wait_seconds`. */
export const QUEUE_WAIT_BUCKETS: readonly number[] = [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
/** Bucket upper bounds (seconds) of `ollama_proxy_request_duration_seconds`. */
export const DURATION_BUCKETS: readonly number[] = [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800]

/**
 * One label set of a histogram: `buckets[i]` counts the observations in (bounds[i-1], bounds[i]]
 * (not cumulative; the exposition sums them up), observations above the last bound are only in
 * `count` (the `+Inf` bucket). `sum` is in the observed unit (seconds).
 */
export interface HistogramSeries { buckets: Float64Array, sum: number, count: number }

/** A histogram with one label (the route), with prom-client's bucket rule: value <= bound. */
export class BucketHistogram {
  /** label value -> its series, created on the first observation. */
  readonly series = new Map<string, HistogramSeries>()
  constructor (readonly bounds: readonly number[]) {}

  /** Counts `value` (seconds) under `label`; a value that is not a finite number is ignored. */
  observe (label: string, value: number): void {
    if (!Number.isFinite(value)) return
    let series = this.series.get(label)
    if (series === undefined) {
      series = { buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 }
      this.series.set(label, series)
    }
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]) {
        series.buckets[i]++
        break
      }
    }
    series.sum += value
    series.count++
  }
}

export interface RequestLabels { route: string, method: string, status: string, key: string }
export interface TokenCount { prompt: number, completion: number }

/**
 * Every series the proxy counts itself, already under LABEL_CAPS. Keys are label values; the
 * record methods allocate only when a label set is seen for the first time.
 */
export class MetricCounts {
  /** `ollama_proxy_requests_total`, by "route method status key" (only the key may hold spaces, and it is last). */
  readonly requests = new Map<string, { labels: RequestLabels, count: number }>()
  /** `ollama_proxy_in_flight_requests`, by key. */
  readonly inFlight = new Map<string, number>()
  /** `ollama_proxy_tokens_total`, by key, then model. */
  readonly tokens = new Map<string, Map<string, TokenCount>>()
  /** `ollama_proxy_upstream_errors_total`, by reason. */
  readonly upstreamErrors = new Map<string, number>()
  readonly firstByte = new BucketHistogram(FIRST_BYTE_BUCKETS)
  readonly duration = new BucketHistogram(DURATION_BUCKETS)
  /** By route: the time inference waited for a host slot (0 when one was free). */
  readonly queueWait = new BucketHistogram(QUEUE_WAIT_BUCKETS)

  readonly keyLabel = new LabelCap(LABEL_CAPS.key)
  readonly modelLabel = new LabelCap(LABEL_CAPS.model)
  readonly statusLabel = new LabelCap(LABEL_CAPS.status)
  readonly reasonLabel = new LabelCap(LABEL_CAPS.reason)

  /** One finished request; `key` is already capped (keyLabel), `status` is capped here. */
  countRequest (route: string, method: string, status: number, key: string): void {
    const statusText = this.statusLabel.label(String(status))
    const id = `${route} ${method} ${statusText} ${key}`
    const counted = this.requests.get(id)
    if (counted !== undefined) counted.count++
    else this.requests.set(id, { labels: { route, method, status: statusText, key }, count: 1 })
  }

  /** `delta` is +1 when Ollama answers, -1 when that request is done; `key` is already capped. */
  addInFlight (key: string, delta: number): void {
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + delta)
  }

  /**
   * Tokens of one answer; key and model are capped here. A count that is not positive adds
   * nothing, nor one that would make the sum infinite (a broken host's 400-digit `eval_count`
   * reads as Infinity): prom-client refuses a counter increment that is not finite, so one such
   * sum would fail every later scrape.
   */
  countTokens (keyName: string, model: string, promptTokens: number, completionTokens: number): void {
    const key = this.keyLabel.label(keyName)
    let models = this.tokens.get(key)
    if (models === undefined) {
      models = new Map()
      this.tokens.set(key, models)
    }
    const modelText = this.modelLabel.label(model)
    let counted = models.get(modelText)
    if (counted === undefined) {
      counted = { prompt: 0, completion: 0 }
      models.set(modelText, counted)
    }
    counted.prompt = finiteSum(counted.prompt, promptTokens)
    counted.completion = finiteSum(counted.completion, completionTokens)
  }

  /** One failed upstream exchange; the reason is capped here. */
  countUpstreamError (reason: string): void {
    const label = this.reasonLabel.label(reason)
    this.upstreamErrors.set(label, (this.upstreamErrors.get(label) ?? 0) + 1)
  }
}

/** `sum + count`, or `sum` unchanged when `count` is not positive or the result would not be finite. */
function finiteSum (sum: number, count: number): number {
  if (!(count > 0)) return sum
  const total = sum + count
  return Number.isFinite(total) ? total : sum
}
