import pino, { type DestinationStream, type Logger } from 'pino'

/** Wherever a secret could sit in a logged object; the request log never includes headers at all. */
// No wildcards: a wildcard path walks every logged object, and these are checked on every line.
export const REDACTED_PATHS = [
  'req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers["proxy-authorization"]', 'req.headers.cookie',
  'headers.authorization', 'headers["x-api-key"]', 'headers.cookie'
]

export function createLogger (level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    base: { service: 'ollama-proxy' },
    serializers: { err: serializeError }
  }
  if (destination !== undefined) return pino(options, destination)
  if (process.stdout.isTTY) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } })
  }
  // Asynchronous writes keep logging off the request path; flushed on shutdown.
  return pino(options, pino.destination({ dest: 1, sync: false }))
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
