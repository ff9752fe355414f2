/** Why a request got no slot, each with the HTTP status the caller answers. */
export type RefusalReason =
  /** 502: no healthy host can take the request. */
  | 'no-healthy-host'
  /** 503 + Retry-After: every candidate host is busy and the shared queue is full. */
  | 'queue-full'
  /** 429 + Retry-After: the key already has as many requests waiting as its `queued` bound. */
  | 'key-queue-full'
  /** 504: no slot came free within the queue timeout. */
  | 'queue-timeout'
  /** 499: the client left (its AbortSignal fired) while the request waited. */
  | 'client-left'
  /** 503 + Retry-After: the scheduler was closed (the proxy is shutting down). */
  | 'closed'

const STATUS: Record<RefusalReason, 429 | 499 | 502 | 503 | 504> = {
  'no-healthy-host': 502,
  'queue-full': 503,
  'key-queue-full': 429,
  'queue-timeout': 504,
  'client-left': 499,
  closed: 503
}

/**
 * A request that got no slot. Shaped like the proxy's ProxyError (`statusCode`, `message`,
 * `headers`) so the caller can answer it in the route's dialect as it stands; `reason` says which
 * bound refused it (for logs and metrics). `headers` carries `retry-after` (seconds) on 429 and 503.
 */
export class SchedulingError extends Error {
  readonly statusCode: 429 | 499 | 502 | 503 | 504

  constructor (readonly reason: RefusalReason, message: string, readonly headers: Readonly<Record<string, string>> = {}) {
    super(message)
    this.name = 'SchedulingError'
    this.statusCode = STATUS[reason]
  }
}
