import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface FastifyRequest {
    /** The model the body names, for the log line and for allowlists. */
    model?: string
    /** Token counts read from Ollama's answer, when it reports them. */
    usage?: { promptTokens: number, completionTokens: number }
  }
}

/**
 * One line per request (Fastify's own two request lines are off): request id, route, status,
 * duration, key name (never the key), model, upstream status and time to first byte.
 */
export default fp(async function requestLogPlugin (fastify) {
  fastify.decorateRequest('model', undefined)
  fastify.decorateRequest('usage', undefined)

  function logLine (request: FastifyRequest, status: number, ms: number | undefined, aborted: boolean): void {
    const upstream = request.upstream
    const key = request.apiKey
    request.log.info({
      method: request.method,
      route: request.routeOptions.url ?? null,
      path: pathOf(request.url),
      status,
      ms: ms === undefined ? undefined : Math.round(ms * 10) / 10,
      key: key?.name,
      keyKind: key?.kind,
      model: request.model,
      upstream: upstream === undefined
        ? undefined
        : {
            status: upstream.status,
            firstByteMs: upstream.firstByteMs === undefined ? undefined : Math.round(upstream.firstByteMs * 10) / 10,
            host: upstream.host,
            error: upstream.error
          },
      usage: request.usage,
      aborted: aborted || undefined
    }, 'request')
  }

  // 'close' fires for every response, finished or not: a client that leaves early (before or
  // during the answer) never reaches onResponse, so the line is written here, once, as 499.
  fastify.addHook('onRequest', function logOnClose (request, reply, done) {
    reply.header('x-request-id', request.id)
    reply.raw.once('close', () => {
      const finished = reply.raw.writableFinished
      logLine(request, finished ? reply.statusCode : 499, reply.elapsedTime, !finished)
    })
    done()
  })
}, { name: 'request-log', fastify: '5.x' })

// The query string stays out of the log: it is the one place a careless client puts a secret.
function pathOf (url: string): string {
  const query = url.indexOf('?')
  return query < 0 ? url : url.slice(0, query)
}
