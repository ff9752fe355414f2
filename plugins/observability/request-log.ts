import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { onResponseClose, routeConfigOf } from '../http/per-request.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The model the body names, for the log line and for allowlists. */
    model?: string
    /** Token counts read from Ollama's answer, when it reports them. */
    usage?: TokenUsage
  }
  interface FastifyInstance {
    /** Called with each finished request's record (metrics listen here). */
    onRequestDone (listener: (request: FastifyRequest, record: RequestRecord) => void): void
  }
}

/** Ollama's own timings of an answer, in milliseconds. */
export interface OllamaDurations { totalMs?: number, loadMs?: number, promptEvalMs?: number, evalMs?: number }

/** `estimated`: Ollama printed no (or not all) counts; see FrameCounter in usage.ts. */
export interface TokenUsage { promptTokens: number, completionTokens: number, estimated?: boolean, ollama?: OllamaDurations }

export interface RequestRecord {
  route: string | null
  status: number
  ms: number
  aborted: boolean
}

const round = (value: number) => Math.round(value * 10) / 10

// The query string stays out of the log: it is the one place a careless client puts a secret.
function pathOf (url: string): string {
  const query = url.indexOf('?')
  return query < 0 ? url : url.slice(0, query)
}

/**
 * One line per request (Fastify's own two request lines are off): request id, route, status,
 * duration, key name (never the key), model, token usage, upstream status and time to first byte.
 */
export default fp(async function requestLogPlugin (fastify) {
  fastify.decorateRequest('model', undefined)
  fastify.decorateRequest('usage', undefined)
  const listeners: Array<(request: FastifyRequest, record: RequestRecord) => void> = []
  fastify.decorate('onRequestDone', (listener: (request: FastifyRequest, record: RequestRecord) => void) => { listeners.push(listener) })

  function finish (request: FastifyRequest, record: RequestRecord): void {
    const upstream = request.upstream
    const key = request.apiKey
    // The root logger with the id spelled out: no per-request child logger is needed for this line.
    fastify.log.info({
      reqId: request.id,
      method: request.method,
      route: record.route,
      path: pathOf(request.url),
      status: record.status,
      ms: round(record.ms),
      key: key?.name,
      keyKind: key?.kind,
      model: request.model,
      usage: request.usage,
      upstream: upstream === undefined
        ? undefined
        : {
            status: upstream.status,
            firstByteMs: upstream.firstByteMs === undefined ? undefined : round(upstream.firstByteMs),
            host: upstream.host,
            error: upstream.error
          },
      aborted: record.aborted || undefined
    }, 'request')
    for (const listener of listeners) listener(request, record)
  }

  // 'close' fires for every response, finished or not: a client that leaves early (before or
  // during the answer) never reaches onResponse, so the line is written here, once, as 499.
  fastify.addHook('onRequest', function logOnClose (request, reply, done) {
    reply.header('x-request-id', request.id)
    onResponseClose(reply, () => {
      const finished = reply.raw.writableFinished
      finish(request, {
        route: routeConfigOf(request).url ?? null,
        status: finished ? reply.statusCode : 499,
        ms: reply.elapsedTime,
        aborted: !finished
      })
    })
    done()
  })
}, { name: 'request-log', fastify: '5.x' })
