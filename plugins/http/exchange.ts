import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { ApiKey } from '../auth/keys.js'
import type { NamedModel } from '../auth/model-fields.js'
import type { TokenUsage, UsageMeter } from '../usage/usage-meter.js'
import { callListeners, withListener, withoutListener, type AbortListener, type AbortListeners } from './abort-listeners.js'
import type { RouteSpec } from './route-spec.js'
import type { UpstreamResponse, UpstreamTarget } from './upstream-target.js'

export type { UpstreamResponse, UpstreamTarget }

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's exchange: its whole state, from the first hook to the log line. */
    exchange: Exchange
  }
  interface FastifyInstance {
    /** What every exchange gives back and reports when it ends (see {@link ExchangeServices}). */
    exchangeServices: ExchangeServices
    /** Every exchange not ended yet, oldest connection first (the admin page's requests in flight). */
    openExchanges (): Exchange[]
  }
  interface FastifyContextConfig {
    /** The route table row of this route (routes/route-table.ts); every stage reads its columns. */
    route?: RouteSpec
  }
}

/** One call to one Ollama host (a retry on another host replaces it). */
export interface UpstreamAttempt {
  /** The host's name (config `name`, or host-N): never its address. */
  host: string
  target: UpstreamTarget
  /** What the call does besides streaming the answer back (plugins/upstream/forward.ts). */
  handlers: ForwardOptions | undefined
  /** performance.now() when the call left. */
  startedAt: number
  /** ms until Ollama's status line and headers arrived. */
  firstByteMs?: number
  status?: number
  /** Why the call failed: a network error code, or the code of a stream Ollama broke off. */
  error?: string
}

/** What one call to one host may do besides streaming Ollama's answer back as it is. */
export interface ForwardOptions {
  /** Replaces the pass-through of Ollama's answer (listing filters). */
  onResponse?: (exchange: Exchange, response: UpstreamResponse) => void
  /** The connection failed before Ollama answered (`code`: ECONNREFUSED, ...); true when it took over the reply. */
  onConnectError?: (code: string) => boolean
}

/** How an exchange ended: the answer was sent whole, the client left, or Ollama broke off a started answer. */
export type ExchangeOutcome = 'finished' | 'client-left' | 'upstream-broke-off'

/**
 * What an exchange gives back and reports when it ends, called in this order: each plugin puts
 * its part in at start-up (the defaults do nothing, so a plugin can be tested alone).
 */
export interface ExchangeServices {
  /** The key's concurrency slot or lease (plugins/limits/limits.ts). */
  releaseKeyLimits: (exchange: Exchange) => void
  /** Bytes of request body held under `server.max_body_bytes_in_flight` (plugins/http/body.ts). */
  releaseBodyBytes: (bytes: number) => void
  /** The host slot, or the place in the queue for one (plugins/upstream/proxy.ts). */
  releaseHostSlot: (exchange: Exchange) => void
  /** Tokens of the answer: key windows, budgets, usage store, metrics (plugins/usage/accounting.ts). */
  account: (exchange: Exchange) => void
  /** The request's one log line and its request metrics (plugins/observability/request-log.ts). */
  record: (exchange: Exchange) => void
  /** The first call to Ollama left (the in-flight gauge; `record` counts it down). */
  upstreamStarted: (exchange: Exchange) => void
}

function nothing (): void {}

/**
 * One request's whole state, created by the first onRequest hook and read and written by every
 * later stage (README, "How a request flows"). It ends exactly once: when its response closes,
 * finished or not, or when its connection closes (a pipelined request whose client left never
 * sees its response close, nodejs/node#62534). Ending stops Ollama's work for a departed client,
 * gives back everything the request held, accounts its tokens and writes its log line.
 *
 * It is also the abort signal of the upstream call, in the shape undici accepts (an emitter of
 * 'abort' with `aborted`), so a client that leaves during a model load stops the GPU at once
 * without a signal object per request.
 */
export class Exchange {
  /** The route table row, or undefined for a path the proxy does not serve (404). */
  readonly route: RouteSpec | undefined
  readonly request: FastifyRequest
  readonly reply: FastifyReply
  /** performance.now() when the first hook ran. */
  readonly startedAt = performance.now()
  /** The key that authorised the request (undefined on public routes and before the key stage). */
  key: ApiKey | undefined = undefined
  /** The models the request names, as read for the allowlist; the first is the one it runs. */
  models: readonly NamedModel[] = NO_MODELS
  /** The model the request runs or manages, as the client wrote it (for logs and routing). */
  model: string | undefined = undefined
  /** The body's bytes exactly as sent (JSON and multipart routes): forwarded as they are. */
  body: Buffer | undefined = undefined
  /** Prompt tokens estimated from the body (4 UTF-8 bytes a token), for answers that report none. */
  promptEstimate = 0
  /** Which limit or budget refused the request (for the log line), e.g. `requests_per_minute`. */
  refusedBy: string | undefined = undefined
  /** Admitted past the key's limits: counted in its daily requests and recorded in the usage store when it ends. */
  countsUsage = false

  /** Held: the key's concurrency slot. */
  holdsKeySlot = false
  /** Held: a lease on the key's concurrency across replicas (plugins/limits), or null. */
  keyLease: unknown = null
  /** Held: bytes of request body counted against `server.max_body_bytes_in_flight`. */
  bodyBytes = 0
  /** Held: a host slot, or a place in the queue for one (plugins/upstream/proxy.ts). */
  hostSlot: unknown = null
  /** ms the request waited in the queue for a host slot. */
  queueMs: number | undefined = undefined

  /** The upstream call (the last one when it was retried on another host). */
  upstream: UpstreamAttempt | undefined = undefined
  /** Ollama's answer body while it streams to the client (to tell a broken answer from a left client). */
  upstreamBody: NodeJS.ReadableStream | undefined = undefined
  /** Token counts of the answer, once accounted. */
  usage: TokenUsage | undefined = undefined
  /** Counts tokens in the answer while it streams (plugins/usage/usage-meter.ts). */
  meter: UsageMeter | undefined = undefined

  outcome: ExchangeOutcome | undefined = undefined
  /** The upstream call's abort signal state (undici reads `aborted`). */
  aborted = false
  private onAbort: AbortListeners = undefined
  private socket: Socket | null

  constructor (route: RouteSpec | undefined, request: FastifyRequest, reply: FastifyReply, private readonly services: ExchangeServices) {
    this.route = route
    this.request = request
    this.reply = reply
    this.socket = request.raw.socket
  }

  get ended (): boolean {
    return this.outcome !== undefined
  }

  /**
   * Ends the exchange once (later calls do nothing): stops the upstream call unless the answer was
   * sent whole, then, in this order, gives back the key's slot, the body bytes and the host slot,
   * accounts the answer's tokens, and writes the log line.
   */
  end (): void {
    if (this.outcome !== undefined) return
    const response = this.reply.raw
    if (response.writableFinished) {
      this.outcome = 'finished'
    } else {
      const broken = this.brokenUpstreamError()
      this.outcome = broken === undefined ? 'client-left' : 'upstream-broke-off'
      if (broken !== undefined && this.upstream !== undefined) this.upstream.error ??= broken
      this.abortUpstream()
    }
    this.leaveSocket()
    const services = this.services
    if (this.holdsKeySlot || this.keyLease !== null) services.releaseKeyLimits(this)
    if (this.bodyBytes > 0) {
      services.releaseBodyBytes(this.bodyBytes)
      this.bodyBytes = 0
    }
    if (this.hostSlot !== null) services.releaseHostSlot(this)
    services.account(this)
    services.record(this)
  }

  /** Starts an upstream call (a retry replaces the previous one); see plugins/upstream/forward.ts. */
  startUpstream (target: UpstreamTarget, handlers: ForwardOptions | undefined): UpstreamAttempt {
    const first = this.upstream === undefined
    const attempt: UpstreamAttempt = { host: target.name, target, handlers, startedAt: performance.now() }
    this.upstream = attempt
    if (first) this.services.upstreamStarted(this)
    return attempt
  }

  /** Stops the upstream call, before or after Ollama's first byte: Ollama's only signal to stop generating. */
  abortUpstream (): void {
    if (this.aborted) return
    this.aborted = true
    const listeners = this.onAbort
    this.onAbort = undefined
    callListeners(listeners)
  }

  private leaveSocket (): void {
    const open = (this.socket as SocketWithExchanges | null)?.[kOpenExchanges]
    this.socket = null
    if (open === undefined) return
    const at = open.indexOf(this)
    if (at >= 0) open.splice(at, 1)
  }

  /** The error code of Ollama's answer when it failed mid-stream (its body errored) while the proxy had not aborted it. */
  private brokenUpstreamError (): string | undefined {
    const errored = (this.upstreamBody as (NodeJS.ReadableStream & { errored?: Error & { code?: string } | null }) | undefined)?.errored
    if (this.aborted || errored == null) return undefined
    return errored.code ?? errored.name
  }

  // The abort signal contract of undici (lib/core/util.js addAbortListener) and of the slot
  // scheduler: EventTarget-style listeners, functions or objects with handleEvent, one per
  // upstream call or wait in flight (several while model management fans out).
  addEventListener (_type: 'abort', listener: AbortListener): void {
    if (this.aborted) queueMicrotask(() => { callListeners(listener) })
    else this.onAbort = withListener(this.onAbort, listener)
  }

  removeEventListener (_type: 'abort', listener: AbortListener): void {
    this.onAbort = withoutListener(this.onAbort, listener)
  }
}

const NO_MODELS: readonly NamedModel[] = Object.freeze([])

const kExchange = Symbol('exchange')
const kOpenExchanges = Symbol('openExchanges')
type ResponseWithExchange = ServerResponse & { [kExchange]?: Exchange }
type SocketWithExchanges = Socket & { [kOpenExchanges]?: Exchange[] }

function endOnResponseClose (this: ResponseWithExchange): void {
  this[kExchange]?.end()
}

function endOnSocketClose (this: SocketWithExchanges): void {
  const open = this[kOpenExchanges]
  if (open === undefined) return
  for (const exchange of open.splice(0)) exchange.end()
}

const noServices: ExchangeServices = {
  releaseKeyLimits: nothing,
  releaseBodyBytes: nothing,
  releaseHostSlot: nothing,
  account: nothing,
  record: nothing,
  upstreamStarted: nothing
}

/**
 * The first stage of every request: creates its exchange and ends it when the response or the
 * connection closes. Registered before every other plugin that adds request hooks.
 */
export default fp(async function exchangePlugin (fastify) {
  const services: ExchangeServices = { ...noServices }
  fastify.decorate('exchangeServices', services)
  fastify.decorateRequest('exchange', null as unknown as Exchange)

  const sockets = new Set<SocketWithExchanges>()
  fastify.server.on('connection', (socket: SocketWithExchanges) => {
    socket[kOpenExchanges] = []
    sockets.add(socket)
    socket.once('close', endOnSocketClose)
    socket.once('close', () => { sockets.delete(socket) })
  })
  fastify.decorate('openExchanges', () => [...sockets].flatMap(socket => socket[kOpenExchanges] ?? []))

  fastify.addHook('onRequest', function startExchange (request, reply, done) {
    openExchange(request.routeOptions.config.route, request, reply, services)
    done()
  })
}, { name: 'exchange', fastify: '5.x' })

/**
 * Creates the exchange of a request and ends it when its response or connection closes (the
 * first hook does this for every routed request; `route` undefined: a path the proxy does not
 * serve). Also for a request Fastify refuses before routing it (a path that is not valid
 * percent-encoding), so it is answered and logged like any other.
 */
export function openExchange (route: RouteSpec | undefined, request: FastifyRequest, reply: FastifyReply, services: ExchangeServices): Exchange {
  const exchange = new Exchange(route, request, reply, services)
  request.exchange = exchange
  // The id of the request's log line, for the client to quote (also sent to Ollama).
  reply.header('x-request-id', request.id)
  const response = reply.raw as ResponseWithExchange
  response[kExchange] = exchange
  response.on('close', endOnResponseClose)
  const socket = request.raw.socket as SocketWithExchanges | null
  // A socket that closed before this request's hooks ran (a pipelined request) ends it now.
  if (socket === null || socket.destroyed) {
    exchange.end()
  } else {
    (socket[kOpenExchanges] ??= []).push(exchange)
  }
  return exchange
}
