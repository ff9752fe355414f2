import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import { ProxyError, sendError } from './error-shapes.js'
import { openExchange } from './exchange.js'

interface SchemaIssue { instancePath: string, keyword: string, message?: string, params: Record<string, unknown> }

/**
 * One readable sentence naming the field, e.g. `body.model must NOT have fewer than 1 characters`.
 * `anyOf` over `required` is how the schemas say "model or its alias name".
 */
export function formatSchemaErrors (errors: SchemaIssue[], dataVar: string): Error {
  const alternatives = errors.filter(e => e.keyword === 'required').map(e => `'${String(e.params.missingProperty)}'`)
  const hasAnyOf = errors.some(e => e.keyword === 'anyOf')
  const first = errors.find(e => e.keyword !== 'anyOf' && e.keyword !== 'required') ?? errors[0]
  let message: string
  if (hasAnyOf && alternatives.length > 1 && first.keyword === 'required') {
    message = `${dataVar} must have required property ${alternatives.join(' or ')}`
  } else {
    const path = first.instancePath.replace(/^\//, '').replaceAll('/', '.')
    message = `${dataVar}${path === '' ? '' : '.' + path} ${first.message ?? 'is invalid'}`
  }
  return new ProxyError(400, message)
}

const CLIENT_ERROR_MESSAGES: Record<string, string> = {
  FST_ERR_CTP_EMPTY_JSON_BODY: 'request body is empty',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported content type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'request body does not match its Content-Length'
}

/**
 * Fastify's `frameworkErrors` (serverOptions in src/app.ts): a request refused before routing,
 * for a path that is not valid percent-encoding (FST_ERR_BAD_URL, 400) or a path parameter of
 * more than 100 characters (FST_ERR_MAX_PARAM_LENGTH, 414). Answered as every error is, a JSON
 * error in the dialect of the path, and given an exchange so it has its log line; no hook runs
 * for such a request.
 */
export function answerFrameworkError (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const services = request.server.exchangeServices
  if (services !== undefined) openExchange(undefined, request, reply, services)
  const status = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400
  sendError(request, reply, status, status === 414 ? 'a segment of the path is longer than 100 characters' : 'the path is not valid percent-encoding')
}

/** Node's client errors (its HTTP parser's codes) that have their own status and wording. */
const MALFORMED_REQUESTS: Record<string, { status: number, message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, message: 'the request did not arrive within server.headers_timeout' },
  HPE_HEADER_OVERFLOW: { status: 431, message: 'request headers are larger than 16 KiB' }
}

/**
 * Fastify's `clientErrorHandler` (serverOptions in src/app.ts): a request Node's HTTP parser
 * refuses (a bad request line or header, conflicting lengths, headers too large or too slow) is
 * answered with a JSON error saying what was wrong (Ollama's `{"error"}` shape: no path was read
 * to choose a dialect) and gets one log line with the parser's code and the client's address.
 * The request's bytes are never logged: they may hold a key. A reset connection gets neither.
 */
export function answerMalformedRequest (this: { log: Logger }, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const code = error.code ?? 'unknown'
  const known = MALFORMED_REQUESTS[code]
  const status = known?.status ?? 400
  const message = known?.message ?? `malformed HTTP request (${code})`
  answerOnSocket(this.log, socket, status, code, message)
}

/**
 * Node's server 'connect' event: a CONNECT request asks for a tunnel, which no route of the proxy
 * gives. Without a listener Node closes the connection without a word and nothing is logged; here
 * it is answered 405 in JSON with a 'malformed request' log line (`error: "CONNECT"`), and closed.
 */
export function answerTunnelRequest (log: Pick<Logger, 'info'>, socket: Socket): void {
  answerOnSocket(log, socket, 405, 'CONNECT', 'the proxy opens no tunnels (CONNECT)')
}

/** One log line, a JSON error answer written straight to the socket (no request object exists), then the socket closed. */
function answerOnSocket (log: Pick<Logger, 'info'>, socket: Socket, status: number, code: string, message: string): void {
  log.info({ status, error: code, remoteAddress: socket.remoteAddress }, 'malformed request')
  if (socket.writable) {
    const body = JSON.stringify({ error: message })
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}

export default fp(async function errorsPlugin (fastify) {
  fastify.setErrorHandler(function handleError (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    if (error instanceof ProxyError) {
      reply.headers(error.headers)
      return sendError(request, reply, error.statusCode, error.message)
    }
    const status = error.statusCode ?? 500
    if (error.validation !== undefined) {
      return sendError(request, reply, 400, error.message)
    }
    if (status >= 400 && status < 500) {
      const message = error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `request body is larger than the limit of ${fastify.config.server.bodyLimit} bytes`
        : CLIENT_ERROR_MESSAGES[error.code] ?? error.message
      return sendError(request, reply, status, message)
    }
    request.log.error({ err: error }, 'proxy error')
    return sendError(request, reply, 500, 'internal proxy error')
  })

  fastify.setNotFoundHandler(function notFound (request, reply) {
    return sendError(request, reply, 404, `no route ${request.method} ${request.url.split('?')[0]}`)
  })
}, { name: 'errors', fastify: '5.x', dependencies: ['config'] })
