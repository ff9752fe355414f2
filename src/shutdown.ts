import type { FastifyInstance } from 'fastify'

export interface ShutdownOptions {
  drainTimeoutMs: number
  exit?: (code: number) => void
}

/**
 * First SIGTERM/SIGINT: stop accepting, answer new requests on open sockets with 503, let
 * streams in flight finish for up to the drain period, then cut what is left and exit 0.
 * A second signal exits at once.
 */
export function handleShutdownSignals (app: FastifyInstance, { drainTimeoutMs, exit = code => process.exit(code) }: ShutdownOptions): void {
  let closing = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      app.log.warn({ signal }, 'second signal: exiting now')
      flushLog(app)
      exit(1)
      return
    }
    closing = true
    app.log.info({ signal, drainMs: drainTimeoutMs }, 'shutting down: draining requests in flight')
    const deadline = setTimeout(() => {
      app.log.warn('drain period over: closing remaining connections')
      app.server.closeAllConnections()
    }, drainTimeoutMs)
    deadline.unref()
    app.close().then(() => {
      clearTimeout(deadline)
      app.log.info('shut down cleanly')
      flushLog(app)
      exit(0)
    }, (err: unknown) => {
      app.log.error({ err }, 'error while shutting down')
      flushLog(app)
      exit(1)
    })
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}

function flushLog (app: FastifyInstance): void {
  (app.log as { flush?: () => void }).flush?.()
}
