import type { IncomingHttpHeaders } from 'node:http'
import { ProxyError } from './error-shapes.js'

/** Seconds a client refused for memory pressure is asked to wait (`Retry-After`). */
export const BUSY_RETRY_AFTER_SECONDS = 1

/**
 * The bytes of request bodies the whole process holds at once. A body reserves its size before it
 * is read (its Content-Length, or chunk by chunk when chunked) and gives it back when its exchange
 * ends, so the sum never passes `limit`.
 */
export class ByteBudget {
  private held = 0
  constructor (readonly limit: number) {}

  /** Takes `bytes` from the budget; false (nothing taken) when they do not fit. */
  tryReserve (bytes: number): boolean {
    if (this.held + bytes > this.limit) return false
    this.held += bytes
    return true
  }

  release (bytes: number): void {
    this.held = Math.max(0, this.held - bytes)
  }

  /** Bytes held now. */
  get inFlight (): number {
    return this.held
  }
}

/** Where a body's reservation is kept: the request's exchange (plugins/http/exchange.ts). */
export interface BodyHolder {
  /** Bytes reserved so far; given back by the holder when it ends. */
  bodyBytes: number
  /** True once the request is over: nothing may be reserved for it any more. */
  readonly ended: boolean
}

export interface ReadLimits {
  /** Bytes the body may have; past it 413. */
  limit: number
  /** Time to receive the whole body once the handler asks for it; past it 408. */
  timeoutMs: number
  budget: ByteBudget
  /** Words for the 413 message, e.g. "request body". */
  what: string
}

function busy (): ProxyError {
  return new ProxyError(503, 'the proxy is holding as many request bodies as it may; retry shortly', { 'retry-after': String(BUSY_RETRY_AFTER_SECONDS) })
}

function tooLarge (what: string, limit: number): ProxyError {
  return new ProxyError(413, `${what} is larger than the limit of ${limit} bytes`)
}

/**
 * Reads a request body into one buffer, never more than `limit` bytes, within `timeoutMs`, and
 * only while the global budget has room. The reservation is added to `holder.bodyBytes` as it is
 * taken, so the holder gives it back however the request ends (the buffer is forwarded to Ollama
 * and lives as long as the request).
 * @throws ProxyError 413 (too large), 408 (too slow), 503 + Retry-After (budget spent),
 *   400 (client stopped before its Content-Length), 499 (the request is already over)
 */
export async function readBody (headers: IncomingHttpHeaders, holder: BodyHolder, payload: NodeJS.ReadableStream & { destroy?: () => void }, limits: ReadLimits): Promise<Buffer> {
  const { limit, timeoutMs, budget, what } = limits
  const declaredHeader = headers['content-length']
  // Node's parser has already refused malformed lengths; a non-number here is treated as unknown.
  const declared = declaredHeader === undefined || !Number.isSafeInteger(Number(declaredHeader)) ? undefined : Number(declaredHeader)
  if (declared !== undefined && declared > limit) throw tooLarge(what, limit)
  const reserve = (bytes: number): ProxyError | null => {
    if (holder.ended) return new ProxyError(499, 'the client left')
    if (!budget.tryReserve(bytes)) return busy()
    holder.bodyBytes += bytes
    return null
  }
  if (declared !== undefined) {
    const refused = reserve(declared)
    if (refused !== null) throw refused
  }

  return await new Promise<Buffer>((resolve, reject) => {
    // A known length is filled in place: one copy of the body, never a list plus a concatenation.
    const whole = declared !== undefined ? Buffer.allocUnsafe(declared) : undefined
    const chunks: Buffer[] = []
    let received = 0
    const timer = setTimeout(() => { finish(new ProxyError(408, `${what} was not received within ${timeoutMs / 1000} s`)) }, timeoutMs)

    function finish (error: ProxyError | null): void {
      clearTimeout(timer)
      payload.removeListener('data', onData)
      payload.removeListener('end', onEnd)
      payload.removeListener('error', onError)
      payload.removeListener('aborted', onAborted)
      if (error !== null) {
        // Stop reading; the answer closes the connection (see admission.ts).
        payload.pause()
        reject(error)
        return
      }
      if (whole !== undefined) resolve(received === whole.length ? whole : whole.subarray(0, received))
      else resolve(Buffer.concat(chunks, received))
    }
    function onData (chunk: Buffer): void {
      received += chunk.length
      if (received > limit) { finish(tooLarge(what, limit)); return }
      if (whole !== undefined) {
        if (received > whole.length) { finish(new ProxyError(400, 'request body does not match its Content-Length')); return }
        chunk.copy(whole, received - chunk.length)
        return
      }
      const refused = reserve(chunk.length)
      if (refused !== null) { finish(refused); return }
      chunks.push(chunk)
    }
    function onEnd (): void {
      if (whole !== undefined && received !== whole.length) finish(new ProxyError(400, 'request body does not match its Content-Length'))
      else finish(null)
    }
    function onError (): void { finish(new ProxyError(400, 'the request body could not be read')) }
    function onAborted (): void { finish(new ProxyError(400, 'the client stopped sending its request body')) }
    payload.on('data', onData)
    payload.once('end', onEnd)
    payload.once('error', onError)
    payload.once('aborted', onAborted)
  })
}
