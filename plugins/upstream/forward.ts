import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Dispatcher } from 'undici'
import { ProxyError, sendError } from '../http/error-shapes.js'
import type { Exchange, ForwardOptions, UpstreamResponse, UpstreamTarget } from '../http/exchange.js'
import { framingOf, UsageMeter } from '../usage/usage-meter.js'
import { assertIdentityEncoding, discard, UnreadableAnswer } from './bounded-read.js'

// Credentials of the proxy and browser context that must never reach Ollama (or, through
// Ollama's cloud passthrough, ollama.com); Expect is refused by undici (nodejs/undici#197).
// X-Ollama-Host is the proxy's own routing header.
const CLIENT_ONLY_HEADERS = ['authorization', 'x-api-key', 'proxy-authorization', 'cookie', 'origin', 'referer', 'expect', 'x-ollama-host']
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer', 'te']
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

/**
 * The exchange rides to the dispatcher (see {@link exchangeDispatcher}) under this key of the
 * request headers reply-from passes on: reply-from copies the headers object whole, symbol keys
 * included, and undici never sees it.
 */
const kExchange = Symbol('exchange')
type HeadersWithExchange = IncomingHttpHeaders & { [kExchange]?: Exchange }

/**
 * Wraps the undici agent reply-from sends through: every call gets its exchange as the abort
 * signal, so a client that leaves before Ollama's first byte (a model load, a long prompt) stops
 * the work at once. reply-from itself passes no signal.
 */
export function exchangeDispatcher (agent: Dispatcher): Pick<Dispatcher, 'request' | 'close' | 'destroy'> {
  return {
    request (options: Dispatcher.RequestOptions, callback?: unknown) {
      const headers = options.headers as HeadersWithExchange
      const exchange = headers[kExchange]
      if (exchange !== undefined) {
        delete headers[kExchange]
        options.signal = exchange as never
      }
      return (agent.request as (o: Dispatcher.RequestOptions, c: unknown) => unknown)(options, callback)
    },
    close: async () => { await agent.close() },
    destroy: async () => { await agent.destroy() }
  } as unknown as Pick<Dispatcher, 'request' | 'close' | 'destroy'>
}

function upstreamOf (request: FastifyRequest): string {
  return request.exchange.upstream!.target.url
}

function rewriteRequestHeaders (request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const exchange = request.exchange
  const host = exchange.upstream!.target
  for (const name of CLIENT_ONLY_HEADERS) delete headers[name]
  headers['x-request-id'] = request.id
  // Answers the proxy reads (listings it filters, token counts) must come uncompressed.
  if (exchange.route?.readsAnswer === true) headers['accept-encoding'] = 'identity'
  // A front before Ollama may want the proxy's own credentials and fixed headers.
  if (host.authorization !== null) headers.authorization = host.authorization
  for (const name in host.headers) headers[name] = host.headers[name]
  ;(headers as HeadersWithExchange)[kExchange] = exchange
  return headers
}

function rewriteHeaders (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  for (const name of HOP_BY_HOP) delete headers[name]
  // @fastify/cors owns these; Ollama's would overwrite the proxy's own answer.
  for (const name of Object.keys(headers)) {
    if (name.startsWith('access-control-')) delete headers[name]
  }
  return headers
}

/** A 4xx/5xx that is not JSON came from something in front of Ollama (an HTML 403 page): say so in the client's dialect. */
function frontRefusal (response: UpstreamResponse): boolean {
  if (response.statusCode < 400) return false
  const type = String(response.headers['content-type'] ?? '')
  return !type.includes('json')
}

function onResponse (request: FastifyRequest, reply: FastifyReply, response: UpstreamResponse): void {
  const exchange = request.exchange
  const attempt = exchange.upstream!
  attempt.firstByteMs = performance.now() - attempt.startedAt
  attempt.status = response.statusCode
  if (frontRefusal(response)) {
    discard(response.stream as never)
    reply.removeHeader('content-length')
    reply.removeHeader('content-encoding')
    sendError(request, reply, response.statusCode, `Ollama's address answered ${response.statusCode} with a page that is not Ollama's (a front before Ollama refused the request)`)
    return
  }
  const custom = attempt.handlers?.onResponse
  if (custom !== undefined) {
    custom(exchange, response)
    return
  }
  exchange.upstreamBody = response.stream
  if (exchange.route?.chargesTokens === true && response.statusCode < 300) meter(exchange, response)
  reply.send(response.stream)
}

function countChunk (this: NodeJS.ReadableStream & { [kMeter]: UsageMeter }, chunk: Buffer): void {
  this[kMeter].count(chunk)
}
const kMeter = Symbol('meter')

/** Counts the tokens of an answer as it streams to the client (settled when the exchange ends). */
function meter (exchange: Exchange, response: UpstreamResponse): void {
  let encoded = false
  try {
    assertIdentityEncoding(response.headers, 'the answer')
  } catch (err) {
    if (!(err instanceof UnreadableAnswer)) throw err
    encoded = true
  }
  const usageMeter = new UsageMeter(framingOf(response.headers['content-type']), encoded, exchange.promptEstimate)
  exchange.meter = usageMeter
  const stream = response.stream as NodeJS.ReadableStream & { [kMeter]: UsageMeter }
  stream[kMeter] = usageMeter
  stream.on('data', countChunk)
}

function onError (reply: FastifyReply, { error }: { error: Error & { code?: string, cause?: Error & { code?: string } } }): void {
  const request = reply.request
  const exchange = request.exchange
  const code = error.cause?.code ?? error.code ?? 'unknown'
  if (exchange.upstream !== undefined) exchange.upstream.error = code
  if (reply.raw.destroyed || reply.raw.writableEnded || reply.sent || exchange.ended) return
  // The proxy's own refusal of the request body (upload_limit) surfaces here as the body's error.
  const original = error.cause ?? error
  if (original instanceof ProxyError) {
    sendError(request, reply, original.statusCode, original.message)
    return
  }
  if (exchange.upstream?.handlers?.onConnectError?.(code) === true) return
  // reply-from has the cause (with the upstream address); the client gets no address.
  if (TIMEOUT_CODES.has(code) || TIMEOUT_CODES.has(error.code ?? '')) {
    sendError(request, reply, 504, 'Ollama did not answer in time')
    return
  }
  sendError(request, reply, 502, 'Ollama is unreachable')
}

/** reply-from's per-call options of a call without a body of its own (body-less, or a raw upload stream). */
const STREAMED = { getUpstream: upstreamOf, rewriteRequestHeaders, rewriteHeaders, onResponse, onError } as const

/**
 * Stage 7, forward: sends the exchange's request to one Ollama host through reply-from and
 * streams the answer back unbuffered (or hands it to `options.onResponse`). The body is the
 * exchange's original bytes (JSON, multipart) or the request stream (raw uploads). Records the
 * attempt (host, timing, status, error) on the exchange; a retry on another host calls this again.
 */
export function forwardTo (exchange: Exchange, host: UpstreamTarget, upstreamPath: string, handlers?: ForwardOptions): void {
  exchange.startUpstream(host, handlers)
  const reply = exchange.reply
  const body = exchange.body
  const source = host.basePath + upstreamPath
  if (body === undefined) {
    reply.from(source, STREAMED as never)
    return
  }
  const contentType = exchange.route?.body === 'multipart' ? String(exchange.request.headers['content-type']) : 'application/json'
  reply.from(source, { getUpstream: upstreamOf, rewriteRequestHeaders, rewriteHeaders, onResponse, onError, body, contentType } as never)
}
