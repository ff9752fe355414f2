import fp from 'fastify-plugin'
import replyFrom from '@fastify/reply-from'
import { Agent, type Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import { EventEmitter } from 'node:events'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ProxyError, sendError } from '../http/error-shapes.js'
import { UpstreamPool, type Host } from './upstream-pool.js'
import { onResponseClose, routeConfigOf } from '../http/per-request.js'

declare module 'fastify' {
  interface FastifyReply {
    /** Streams the request to Ollama's `upstreamPath` and Ollama's answer back, unbuffered. */
    forward (upstreamPath: string, options?: ForwardOptions): FastifyReply
  }
  interface FastifyRequest {
    upstream?: UpstreamTiming
  }
  interface FastifyInstance {
    /** Registers a reader of every upstream answer that is streamed to a client (usage counting). */
    observeUpstream (observer: UpstreamObserver): void
    /** The Ollama hosts, their health, models and load. */
    upstreams: UpstreamPool
    /** The one undici pool every upstream call goes through. */
    upstreamAgent: Agent
  }
}

export interface UpstreamTiming {
  /** performance.now() when the request left for Ollama */
  startedAt: number
  /** ms until Ollama's status line and headers arrived */
  firstByteMs?: number
  status?: number
  /** which upstream answered (several-host setups) */
  host?: string
  error?: string
}

export interface UpstreamResponse {
  statusCode: number
  headers: IncomingHttpHeaders
  stream: NodeJS.ReadableStream
}

/** Sees an upstream body as it is piped to the client; it must not pause or consume it. */
export type UpstreamObserver = (request: FastifyRequest, stream: NodeJS.ReadableStream, response: UpstreamResponse) => void

export interface ForwardOptions {
  /** Replaces the default pass-through of Ollama's answer (listing filters). */
  onResponse?: (request: FastifyRequest, reply: FastifyReply, response: UpstreamResponse) => void
  /** Host to send to instead of the first configured one (several-host routing). */
  host?: UpstreamTarget
  /** Called when the connection failed before Ollama answered; true when it took over the reply. */
  onConnectError?: (code: string) => boolean
}

/** Where an upstream request goes: origin, Ollama's path prefix there, the proxy's credentials for it. */
export type UpstreamTarget = Pick<Host, 'url' | 'basePath' | 'authorization'>

// Credentials of the proxy and browser context that must never reach Ollama (or, through
// Ollama's cloud passthrough, ollama.com); Expect is refused by undici (nodejs/undici#197).
// X-Ollama-Host is the proxy's own routing header.
const CLIENT_ONLY_HEADERS = ['authorization', 'x-api-key', 'proxy-authorization', 'cookie', 'origin', 'referer', 'expect', 'x-ollama-host']
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer', 'te']

/**
 * reply-from calls `dispatcher.request()` synchronously inside `reply.from()`, so the
 * per-request abort signal, origin and upstream credentials are handed over through this slot. reply-from itself
 * passes no signal, and a client that leaves during a model load must stop the GPU work.
 */
/**
 * Tells undici that the client went away. undici takes any EventEmitter with `aborted` and an
 * 'abort' event as a signal; this one costs a fraction of an AbortController (whose EventTarget
 * and AbortSignal were ~3% of a small request's CPU, bench/README.md), one per forwarded request.
 */
class ClientGone extends EventEmitter {
  aborted = false
  abort (): void {
    if (this.aborted) return
    this.aborted = true
    this.emit('abort')
  }
}

interface DispatchContext { signal: ClientGone, origin: string, authorization: string | null }
let handover: DispatchContext | undefined

function wrapDispatcher (agent: Agent) {
  return {
    request (options: Dispatcher.RequestOptions, callback: (err: Error | null, data: Dispatcher.ResponseData) => void) {
      const context = handover
      handover = undefined
      if (context !== undefined) {
        options.signal = context.signal
        options.origin = context.origin
        const headers = options.headers as Record<string, string>
        // reply-from set Host from the base URL; Ollama checks Host, so it must name this host.
        headers.host = hostHeaderOf(context.origin)
        // The client's credentials were stripped; a front before Ollama may want the proxy's own.
        if (context.authorization !== null) headers.authorization = context.authorization
      }
      return agent.request(options, callback)
    },
    close: async () => await agent.close(),
    destroy: async () => await agent.destroy()
  }
}

const hostHeaders = new Map<string, string>()
function hostHeaderOf (origin: string): string {
  let host = hostHeaders.get(origin)
  if (host === undefined) {
    host = new URL(origin).host
    hostHeaders.set(origin, host)
  }
  return host
}

function stripClientHeaders (request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
  for (const name of CLIENT_ONLY_HEADERS) delete headers[name]
  headers['x-request-id'] = request.id
  // Answers the proxy reads (listings it filters, token counts) must come uncompressed.
  const config = routeConfigOf(request)
  if (config.listing !== undefined || config.countsTokens === true) headers['accept-encoding'] = 'identity'
  return headers
}

function stripHopByHop (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  for (const name of HOP_BY_HOP) delete headers[name]
  // @fastify/cors owns these; Ollama's would overwrite the proxy's own answer.
  for (const name of Object.keys(headers)) {
    if (name.startsWith('access-control-')) delete headers[name]
  }
  return headers
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

function mapUpstreamError (reply: FastifyReply, { error }: { error: Error & { code?: string, cause?: Error & { code?: string } } }): void {
  const request = reply.request
  const code = error.cause?.code ?? error.code ?? 'unknown'
  if (request.upstream !== undefined) request.upstream.error = code
  if (reply.raw.destroyed || reply.raw.writableEnded || reply.sent) {
    // The client is gone (its abort cancelled the upstream call): nobody to answer.
    return
  }
  // The proxy's own refusal of the request body (upload_limit) surfaces here as the body's error.
  const original = error.cause ?? error
  if (original instanceof ProxyError) {
    sendError(request, reply, original.statusCode, original.message)
    return
  }
  const onConnectError = (reply as ReplyWithForward)[kOnConnectError]
  if (onConnectError !== undefined && onConnectError(code)) return
  // reply-from has logged the cause (with the upstream address); the client gets no address.
  if (TIMEOUT_CODES.has(code) || TIMEOUT_CODES.has(error.code ?? '')) {
    sendError(request, reply, 504, 'Ollama did not answer in time')
    return
  }
  sendError(request, reply, 502, 'Ollama is unreachable')
}

function recordResponse (this: UpstreamObserver[], request: FastifyRequest, reply: FastifyReply, response: UpstreamResponse): void {
  const upstream = request.upstream
  if (upstream !== undefined) {
    upstream.firstByteMs = performance.now() - upstream.startedAt
    upstream.status = response.statusCode
  }
  const custom = (reply as ReplyWithForward)[kOnResponse]
  if (custom !== undefined) {
    custom(request, reply, response)
    return
  }
  reply.send(response.stream)
  // Added after send() has piped the stream, so an extra 'data' listener only watches.
  for (const observe of this) observe(request, response.stream, response)
}

const kOnResponse = Symbol('forward.onResponse')
const kOnConnectError = Symbol('forward.onConnectError')
type ReplyWithForward = FastifyReply & { [kOnResponse]?: ForwardOptions['onResponse'], [kOnConnectError]?: ForwardOptions['onConnectError'] }

export default fp(async function upstreamPlugin (fastify) {
  const service = fastify.config.service
  const agent = new Agent({
    // Unlimited by default: a request parked in the proxy's pool is invisible to Ollama's
    // own queue, so Ollama's "server busy" would never come and order of service would change.
    connections: service.maxConnections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: service.firstByteTimeoutMs,
    bodyTimeout: service.idleTimeoutMs,
    connect: { timeout: service.connectTimeoutMs }
  })

  await fastify.register(replyFrom, {
    base: service.upstreams[0].url,
    undici: wrapDispatcher(agent) as unknown as Dispatcher,
    // Ollama's 503 means its queue is full: retrying makes it worse.
    retryMethods: [],
    disableRequestLogging: true,
    contentTypesToEncode: []
  })

  const firstHost: UpstreamTarget = service.upstreams[0]
  fastify.decorateRequest('upstream', undefined)
  const observers: UpstreamObserver[] = []
  // Set by the JSON body parser; declared here too so that every request has the same shape.
  if (!fastify.hasRequestDecorator('rawBody')) fastify.decorateRequest('rawBody', undefined)
  fastify.decorateReply(kOnResponse as unknown as string, undefined)
  fastify.decorateReply(kOnConnectError as unknown as string, undefined)
  // The same options object for every body-less forward; reply-from only reads it.
  const streamedBodyOptions = {
    rewriteRequestHeaders: stripClientHeaders,
    rewriteHeaders: stripHopByHop,
    onResponse: recordResponse.bind(observers),
    onError: mapUpstreamError
  }
  fastify.decorate('observeUpstream', (observer: UpstreamObserver) => { observers.push(observer) })
  fastify.decorateReply('forward', function forward (this: FastifyReply, upstreamPath: string, options?: ForwardOptions) {
    const request = this.request
    const raw = this.raw
    const gone = new ClientGone()
    onResponseClose(this, () => { if (!raw.writableFinished) gone.abort() })
    ;(this as ReplyWithForward)[kOnResponse] = options?.onResponse
    ;(this as ReplyWithForward)[kOnConnectError] = options?.onConnectError
    request.upstream = { startedAt: performance.now(), host: request.upstream?.host }
    const body = request.rawBody
    const target = options?.host ?? firstHost
    handover = { signal: gone, origin: target.url, authorization: target.authorization }
    try {
      return this.from(target.basePath + upstreamPath, (body === undefined
        ? streamedBodyOptions
        : { ...streamedBodyOptions, body, contentType: 'application/json' }) as never)
    } finally {
      handover = undefined
    }
  })

  const pool = new UpstreamPool(service.upstreams, service, agent, fastify.log)
  fastify.decorate('upstreams', pool)
  fastify.decorate('upstreamAgent', agent)
  fastify.addHook('onReady', async () => { pool.start() })

  fastify.addHook('onClose', async () => {
    pool.stop()
    await agent.destroy()
  })
}, { name: 'upstream', fastify: '5.x', dependencies: ['config'] })
