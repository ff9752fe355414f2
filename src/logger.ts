import pino, { type DestinationStream, type Logger } from 'pino'

/** Wherever a secret could sit in a logged object; the request log never includes headers at all. */
// No wildcards: a wildcard path walks every logged object, and these are checked on every line.
export const REDACTED_PATHS = [
  'req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers["proxy-authorization"]', 'req.headers.cookie',
  'headers.authorization', 'headers["x-api-key"]', 'headers.cookie'
]

/** The parts of pino's stdout streams (sonic-boom, or the pretty transport's thread-stream) used at exit. */
interface ProcessOutput extends DestinationStream {
  flush?: (callback?: (err?: Error) => void) => void
  flushSync?: () => void
}
const processOutputs = new WeakMap<Logger, ProcessOutput>()

/** Bytes of log lines gathered before a write to stdout. */
const LOG_BATCH_BYTES = 4096
/** The longest a log line waits for its write to stdout, ms. */
const LOG_FLUSH_MS = 250

/**
 * The process logger writes to stdout: pretty (pino-pretty, in a worker) when stdout is a
 * terminal, JSON lines otherwise, written in batches (at most LOG_FLUSH_MS late). With
 * `destination`, JSON lines go there instead (tests).
 */
export function createLogger (level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    base: { service: 'ollama-proxy' },
    serializers: { err: serializeError }
  }
  if (destination !== undefined) return pino(options, destination)
  const output: ProcessOutput = process.stdout.isTTY
    ? pino.transport({ target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', destination: 1 } })
    // Asynchronous writes keep logging off the request path. Lines are gathered up to 4 KiB, and
    // written at least every 250 ms: a write through the thread pool per line costs more than the
    // line itself. Flushed on shutdown and at exit.
    : pino.destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS })
  const logger = pino(options, output)
  processOutputs.set(logger, output)
  return logger
}

/**
 * Before the process exits: waits up to `timeoutMs` for queued log lines to reach stdout, then
 * lets go of stdout. pino flushes its stream synchronously on exit, and sonic-boom retries a
 * failed synchronous write forever: with stdout's reader gone (EPIPE) or stuck (a full pipe)
 * the process would never end. A logger made with a destination is left alone.
 */
export async function flushLogOutput (logger: Logger, timeoutMs: number): Promise<void> {
  const output = processOutputs.get(logger)
  if (output === undefined) return
  await new Promise<void>(resolve => {
    const timer = setTimeout(resolve, timeoutMs)
    const done = () => { clearTimeout(timer); resolve() }
    const boom = output as ProcessOutput & SonicBoomState
    if (typeof boom._writing === 'boolean') {
      // A write under way leaves what is below the batch size in the buffer when it ends: write
      // again until nothing is left (flush(cb) would call back with the rest still buffered).
      const writeTheRest = () => {
        if (!boom._writing && boom._len === 0) {
          done()
          return
        }
        boom.once('drain', writeTheRest)
        if (!boom._writing) boom.flush?.()
      }
      boom.once('error', done)
      writeTheRest()
      return
    }
    try {
      output.flush?.(done)
    } catch {
      done()
    }
  })
  releaseLogOutput(logger)
}

/** sonic-boom's own fields: a write under way, and bytes not yet written. */
interface SonicBoomState {
  _writing?: boolean
  _len?: number
  once: (event: string, listener: () => void) => void
}

/**
 * Starts the write of the lines still gathered (it goes on in the thread pool while the process
 * exits, as an unbatched line's would), then makes the exit-time synchronous flush of the
 * logger's stdout stream a no-op: sonic-boom's flushSync retries a failed write for ever (see
 * flushLogOutput).
 */
export function releaseLogOutput (logger: Logger): void {
  const output = processOutputs.get(logger) as (ProcessOutput & SonicBoomState) | undefined
  if (output === undefined) return
  if (output._writing === false && (output._len ?? 0) > 0) output.flush?.()
  output.flushSync = () => {}
}

/**
 * Network errors (a code like ECONNREFUSED or UND_ERR_ABORTED) are expected events: type,
 * message and code say it all. Anything else is a bug and keeps its stack.
 */
function serializeError (err: unknown): unknown {
  if (!(err instanceof Error)) return err
  const { code, errno, syscall } = err as Error & { code?: string | number, errno?: number, syscall?: string }
  if (code !== undefined && typeof code === 'string') return { type: err.name, message: err.message, code, errno, syscall }
  if (err.name === 'AbortError') return { type: err.name, message: err.message }
  return pino.stdSerializers.err(err)
}

/** The message @fastify/reply-from (index.js) logs a failed upstream call with. */
const REPLY_FROM_UPSTREAM_ERROR = 'response errored'

type Bindings = Record<string, unknown>
type LogArgs = [obj: unknown, msg?: string, ...args: unknown[]]

/**
 * Fastify gives every request a child logger (`reqId` bound). Building one costs more than the
 * rest of a small request's logging, and most requests only ever write the access line, which
 * the request-log plugin writes through the root logger with the id itself. So the child is made
 * on first use only.
 */
export class LazyRequestLogger {
  private made?: Logger
  constructor (private readonly parent: Logger, private readonly bindings: Bindings) {}

  private get logger (): Logger {
    this.made ??= this.parent.child(this.bindings)
    return this.made
  }

  get level (): string { return this.parent.level }
  set level (level: string) { this.logger.level = level }
  fatal (...args: LogArgs): void { this.logger.fatal(...(args as [unknown])) }
  error (...args: LogArgs): void { this.logger.error(...(args as [unknown])) }
  warn (...args: LogArgs): void {
    // @fastify/reply-from logs every failed upstream call (a client that left included) at warn,
    // whatever its options; the request's one line already has the outcome and the upstream error.
    if (args[1] === REPLY_FROM_UPSTREAM_ERROR) return
    this.logger.warn(...(args as [unknown]))
  }

  info (...args: LogArgs): void { this.logger.info(...(args as [unknown])) }
  debug (...args: LogArgs): void { if (this.parent.isLevelEnabled('debug')) this.logger.debug(...(args as [unknown])) }
  trace (...args: LogArgs): void { if (this.parent.isLevelEnabled('trace')) this.logger.trace(...(args as [unknown])) }
  silent (): void {}
  child (bindings: Bindings, options?: object): Logger { return this.logger.child(bindings, options) }
}

export function lazyChildLogger (logger: Logger, bindings: Bindings): LazyRequestLogger {
  return new LazyRequestLogger(logger, bindings)
}
