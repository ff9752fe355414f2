import fp from 'fastify-plugin'
import type { Socket } from 'node:net'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { BUSY_RETRY_AFTER_SECONDS, ByteBudget } from './body-reader.js'
import { sendError } from './error-shapes.js'
import { answerTunnelRequest } from './errors.js'
import { repeatedHeader } from './raw-headers.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Bytes of request bodies held by the whole process (`server.max_body_bytes_in_flight`). */
    bodyBudget: ByteBudget
  }
}

const kOverCapacity = Symbol('overCapacity')
type CountedSocket = Socket & { [kOverCapacity]?: boolean }

/** An unread body up to this size (bytes) is read and dropped after the answer so the connection can be reused; a larger one closes it. */
export const DRAIN_CAP_BYTES = 64 * 1024

/**
 * What to do with a body the proxy has not read (and now never will): nothing when it has wholly
 * arrived or there is none; 'drain' a small one (Node reads and drops it after the answer);
 * 'close' the connection on a large or chunked one.
 */
function unreadBody (request: FastifyRequest): 'none' | 'drain' | 'close' {
  const raw = request.raw
  if (raw.complete || raw.readableEnded) return 'none'
  if (raw.headers['transfer-encoding'] !== undefined) return 'close'
  const declared = Number(raw.headers['content-length'] ?? 0)
  if (!(declared > 0)) return 'none'
  return declared > DRAIN_CAP_BYTES || raw.readableFlowing === false || raw.listenerCount('data') > 0 ? 'close' : 'drain'
}

/**
 * Node drains an unread body at the client's pace with no time limit: one byte a minute would
 * hold the connection for ever. A drain not done within `timeoutMs` of the answer closes it.
 */
function limitDrain (request: FastifyRequest, timeoutMs: number): void {
  const raw = request.raw
  const timer = setTimeout(() => { if (!raw.complete) raw.socket?.destroy() }, timeoutMs)
  timer.unref()
  raw.once('end', () => { clearTimeout(timer) })
}

/**
 * Stage 1, admission: nothing is spent before a request is admitted. Fastify's root parsers are
 * removed (a route without its own parser never reads a body), unknown paths are answered 404 in
 * onRequest, open connections are capped (`server.max_connections`, then 503 and the connection
 * closes), and an answer that leaves a body unread closes the connection instead of reading it,
 * unless the body is small, which is drained within `server.body_timeout`.
 * `100 Continue` is sent only to admitted requests. Registered after CORS (so refusals carry
 * CORS headers) and before the key stage.
 */
export default fp(async function admissionPlugin (fastify) {
  const { maxConnections, maxBodyBytesInFlight, bodyTimeoutMs } = fastify.config.server
  const budget = new ByteBudget(maxBodyBytesInFlight)
  fastify.decorate('bodyBudget', budget)
  fastify.exchangeServices.releaseBodyBytes = bytes => { budget.release(bytes) }

  fastify.removeAllContentTypeParsers()
  // Routes outside the route table's scopes (health, metrics, 405 answers) take no body: never read it.
  fastify.addContentTypeParser('*', (_request, _payload, done) => { done(null, undefined) })

  let open = 0
  fastify.server.on('connection', (socket: CountedSocket) => {
    open++
    if (open > maxConnections) socket[kOverCapacity] = true
    socket.once('close', () => { open-- })
  })

  fastify.addHook('onRequest', function admit (request: FastifyRequest, reply: FastifyReply, done) {
    if ((request.raw.socket as CountedSocket | null)?.[kOverCapacity] === true) {
      reply.header('connection', 'close').header('retry-after', String(BUSY_RETRY_AFTER_SECONDS))
      sendError(request, reply, 503, `the proxy has ${maxConnections} open connections, its limit; retry shortly`)
      return
    }
    if (request.is404) {
      sendError(request, reply, 404, `no route ${request.method} ${request.url.split('?')[0]}`)
      return
    }
    const expectation = request.headers.expect
    if (expectation !== undefined && expectation.toLowerCase() !== '100-continue') {
      reply.header('connection', 'close')
      sendError(request, reply, 417, 'Expect: only 100-continue is supported')
      return
    }
    // HTTP/1.1 requires Host (RFC 9112, 3.2); Node's own refusal (requireHostHeader, turned off in
    // src/app.ts) is an empty 400 that no hook sees, so no log line.
    if (request.raw.headers.host === undefined && request.raw.httpVersion === '1.1') {
      reply.header('connection', 'close')
      sendError(request, reply, 400, 'the request has no Host header, which HTTP/1.1 requires')
      return
    }
    // And exactly one (the same section); Node keeps the first silently, a front may read the last.
    if (repeatedHeader(request.raw.rawHeaders, 'host') !== undefined) {
      reply.header('connection', 'close')
      sendError(request, reply, 400, 'the request has more than one Host header; send one')
      return
    }
    done()
  })

  // Node answers `Expect: 100-continue` at once by default, inviting the upload before the key is
  // checked. Here the request goes through the hooks first; the invitation is sent only once the
  // request is admitted and its body is about to be read (preParsing).
  fastify.server.on('checkContinue', (request, response) => { fastify.server.emit('request', request, response) })
  // Node answers any other expectation with a bare 417 that no hook sees, and closes a CONNECT
  // without a word: both get a JSON answer and a log line instead (the 417 in the hook above).
  fastify.server.on('checkExpectation', (request, response) => { fastify.server.emit('request', request, response) })
  fastify.server.on('connect', (_request, socket: Socket) => { answerTunnelRequest(fastify.log, socket) })
  fastify.addHook('preParsing', function inviteBody (request, reply, payload, done) {
    if (request.headers.expect?.toLowerCase() === '100-continue' && !reply.raw.headersSent) reply.raw.writeContinue()
    done(null, payload)
  })

  fastify.addHook('onSend', function closeUnreadBodies (request, reply, payload, done) {
    const unread = unreadBody(request)
    if (unread === 'close') reply.header('connection', 'close')
    else if (unread === 'drain') limitDrain(request, bodyTimeoutMs)
    done(null, payload)
  })
}, { name: 'admission', fastify: '5.x', dependencies: ['config', 'errors', 'exchange'] })
