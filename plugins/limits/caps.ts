import { readKeepAlive } from './keep-alive.js'

/** What one request of a key may ask of the GPU (auth.keys[].caps); null = no cap. */
export interface RequestCaps {
  /** Largest options.num_ctx (tokens). */
  numCtx: number | null
  /** Longest keep_alive, seconds; a negative keep_alive (forever) is refused too. */
  keepAliveSeconds: number | null
  /** Whether keep_alive 0 (unload the model now or once the request ends) is allowed. */
  unload: boolean
}

export interface CapViolation {
  cap: 'num_ctx' | 'keep_alive' | 'unload'
  /** One line naming the field, the cap and the largest value allowed; safe to send to the client. */
  message: string
}

export type NumCtxReading =
  /** Not set (no options, or no exact `num_ctx` key, or null): the model's or server's default. */
  | { kind: 'absent' }
  /** Ollama refuses the request (options not an object, num_ctx not a number). */
  | { kind: 'invalid' }
  /** The context length Ollama takes: the number truncated toward zero. */
  | { kind: 'value', tokens: number }

/**
 * How Ollama reads options.num_ctx from a request's `options` (api/types.go): `options` is a
 * `map[string]any`, so its keys are exact (`NUM_CTX` is an unknown option, ignored with a log
 * line), a repeated key keeps the last value (as JSON.parse does), a null value is skipped, and
 * `Options.FromMap` truncates a number to int (`int64(t)`); any other type fails the request.
 * `options` itself must be a JSON object or null, else the body fails to decode (400).
 */
export function readNumCtx (options: unknown): NumCtxReading {
  if (options === undefined || options === null) return { kind: 'absent' }
  if (typeof options !== 'object' || Array.isArray(options)) return { kind: 'invalid' }
  if (!Object.hasOwn(options, 'num_ctx')) return { kind: 'absent' }
  const value = (options as Record<string, unknown>).num_ctx
  if (value === null) return { kind: 'absent' }
  if (typeof value !== 'number' || !Number.isFinite(value)) return { kind: 'invalid' }
  return { kind: 'value', tokens: Math.trunc(value) }
}

const NANOSECONDS_PER_SECOND = 1_000_000_000n

/**
 * The first cap a request breaks, or undefined. `view` is the Go view of the body for the route's
 * struct (plugins/http/go-json.ts goView with routes/schemas.ts `structs`): only the native chat,
 * generate, embed and embeddings structs hold `keep_alive` and `options`, the only requests Ollama
 * reads them from (the OpenAI and Anthropic middlewares set neither). An absent field is Ollama's
 * default, which the operator chose: allowed; a value Ollama refuses anyway (400) is allowed too.
 * keep_alive is checked before num_ctx. Units: numCtx tokens, keepAliveSeconds seconds.
 */
export function capViolation (view: unknown, caps: RequestCaps): CapViolation | undefined {
  if (typeof view !== 'object' || view === null) return undefined
  const body = view as { keep_alive?: unknown, options?: unknown }
  const keepAlive = readKeepAlive(body.keep_alive)
  const longest = caps.keepAliveSeconds
  const allowed = longest === null ? '' : `; the longest allowed is ${longest} s`
  switch (keepAlive.kind) {
    case 'forever':
      if (longest !== null) return { cap: 'keep_alive', message: `keep_alive ${shown(body.keep_alive)} keeps the model loaded forever, beyond this key's cap (caps.keep_alive)${allowed}` }
      break
    case 'out-of-range':
      if (longest !== null) return { cap: 'keep_alive', message: `keep_alive ${shown(body.keep_alive)} is beyond this key's cap (caps.keep_alive)${allowed}` }
      if (!caps.unload) return { cap: 'unload', message: `keep_alive ${shown(body.keep_alive)} is too large for Ollama's clock and may unload the model, which this key may not do (caps.unload)` }
      break
    case 'duration':
      if (keepAlive.nanoseconds === 0n && !caps.unload) {
        return { cap: 'unload', message: `keep_alive ${shown(body.keep_alive)} unloads the model, which this key may not do (caps.unload)${longest === null ? '' : `; keep_alive may be up to ${longest} s`}` }
      }
      if (longest !== null && keepAlive.nanoseconds > nanosecondsOf(longest)) {
        return { cap: 'keep_alive', message: `keep_alive ${shown(body.keep_alive)} is longer than this key's cap (caps.keep_alive)${allowed}` }
      }
      break
  }
  const numCtx = readNumCtx(body.options)
  if (caps.numCtx !== null && numCtx.kind === 'value' && numCtx.tokens > caps.numCtx) {
    return { cap: 'num_ctx', message: `options.num_ctx ${numCtx.tokens} is larger than this key's cap (caps.num_ctx); the largest allowed is ${caps.numCtx}` }
  }
  return undefined
}

function nanosecondsOf (seconds: number): bigint {
  return Number.isInteger(seconds) ? BigInt(seconds) * NANOSECONDS_PER_SECOND : BigInt(Math.floor(seconds * 1e9))
}

/** A client's value for a message: JSON, cut short. */
function shown (value: unknown): string {
  const text = JSON.stringify(value)
  return text.length > 40 ? `${text.slice(0, 37)}...` : text
}
