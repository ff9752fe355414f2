import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { flushLogOutput, releaseLogOutput } from './logger.js'

export interface ShutdownOptions {
  /** ms streams in flight get to finish before their connections are cut */
  drainTimeoutMs: number
  /** the process logger (createLogger without a destination): its stdout is let go before exit */
  logger: Logger
}

/** After the drain period, app.close() gets this long (ms) before the process exits 1 anyway. */
export const CLOSE_MARGIN_MS = 5000
/** ms queued log lines get to reach stdout before the process exits without them. */
export const LOG_FLUSH_MS = 1000

/**
 * First SIGTERM/SIGINT (or an uncaught error): stop accepting, answer new requests on open
 * sockets with 503, let streams in flight finish for up to the drain period, then cut what is
 * left and exit 0 (1 after an uncaught error). A second signal exits 1 at once; so does a close
 * that is still not done `CLOSE_MARGIN_MS` after the drain. Exiting never waits on stdout for
 * more than `LOG_FLUSH_MS`, whatever became of its reader. SIGHUP is left to live reload.
 */
export function handleShutdownSignals (app: FastifyInstance, { drainTimeoutMs, logger }: ShutdownOptions): void {
  closeWithGrace({
    delay: drainTimeoutMs + CLOSE_MARGIN_MS,
    // SIGHUP is live reload. Node's docs: a JS listener on SIGSEGV, SIGBUS, SIGFPE or SIGILL may
    // leave the process unresponsive; with one on SIGSEGV, Node 20's abort at exit on a vanished
    // terminal (nodejs/node#51519) loops at 100 % CPU instead of ending.
    skip: ['SIGHUP', 'SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL'],
    logger: false,
    onSecondSignal: signal => {
      logger.warn({ signal }, 'second signal: exiting now')
      releaseLogOutput(logger)
    },
    onSecondError: err => {
      logger.error({ err }, 'another uncaught error while shutting down: exiting now')
      releaseLogOutput(logger)
    },
    onTimeout: delay => {
      logger.error({ delayMs: delay }, 'shutdown did not finish in time: exiting now')
      releaseLogOutput(logger)
    }
  }, async ({ signal, err }) => {
    if (err !== undefined) logger.error({ err }, 'uncaught error: shutting down')
    else logger.info({ signal, drainMs: drainTimeoutMs }, 'shutting down: draining requests in flight')
    const deadline = setTimeout(() => {
      logger.warn('drain period over: closing remaining connections')
      app.server.closeAllConnections()
    }, drainTimeoutMs)
    try {
      await app.close()
      logger.info('shut down cleanly')
    } catch (closeError) {
      logger.error({ err: closeError }, 'error while shutting down')
      throw closeError
    } finally {
      clearTimeout(deadline)
      await flushLogOutput(logger, LOG_FLUSH_MS)
    }
  })
}
