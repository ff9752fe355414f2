import fp from 'fastify-plugin'
import pino from 'pino'
import type { Exchange } from '../http/exchange.js'
import { accessLine, LineTime, statusOf } from './access-line.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Called with each finished exchange, after its log line (metrics listen here). */
    onExchangeDone (listener: (exchange: Exchange, status: number, ms: number) => void): void
  }
}

interface LineSink { write: (line: string) => unknown }

/**
 * Stage 9, log: one line per request (Fastify's own two request lines are off), written when its
 * exchange ends, however it ends: request id, route, status, duration, client address, key name
 * (never the key), model, token usage, queue wait, the upstream call's status, host and time to
 * first byte, the limit that refused it, and whether the client left (499, `aborted`) or Ollama
 * broke off an answer it had started (502, `upstream.error`).
 *
 * The line is built here (access-line.ts) and written to the logger's own destination, in pino's
 * format (level, time, bindings, fields, msg): pino's generic serialisation of a nested object
 * was the largest single cost of a small request, and this line's fields are known.
 */
export default fp(async function requestLogPlugin (fastify) {
  const logger = fastify.log as unknown as pino.Logger
  const sink = (logger as unknown as Record<symbol, LineSink>)[pino.symbols.streamSym]
  // The logger's bindings as pino writes them (`,"service":"ollama-proxy"`).
  const bindings = (logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym]
  const trustProxy = fastify.config.server.trustProxy !== false
  const time = new LineTime()
  const listeners: Array<(exchange: Exchange, status: number, ms: number) => void> = []
  fastify.decorate('onExchangeDone', (listener: (exchange: Exchange, status: number, ms: number) => void) => { listeners.push(listener) })

  fastify.exchangeServices.record = function record (exchange: Exchange) {
    const ms = exchange.reply.elapsedTime
    const status = statusOf(exchange)
    if (logger.isLevelEnabled('info')) {
      // Behind a trusted load balancer the client is the X-Forwarded-For address (Fastify's request.ip).
      const address = trustProxy ? exchange.request.ip : exchange.request.raw.socket?.remoteAddress
      sink.write(accessLine(exchange, status, ms, address, bindings, time))
    }
    for (const listener of listeners) listener(exchange, status, ms)
  }
}, { name: 'request-log', fastify: '5.x', dependencies: ['config', 'exchange'] })
