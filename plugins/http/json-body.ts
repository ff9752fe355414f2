import { isUtf8 } from 'node:buffer'
import { goView, type GoStruct } from './go-json.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The fields of the Go struct Ollama decodes this route's JSON body into (see go-json.ts). */
    goStruct?: GoStruct
  }
}

const NO_FIELDS: GoStruct = Object.freeze({})

/** Deeper than any real Ollama body (Go's encoding/json stops at 10,000). */
export const MAX_JSON_DEPTH = 512
/** Objects and arrays per body; base64 images and long chats are strings, not containers. */
export const MAX_JSON_CONTAINERS = 1_000_000

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACE = 0x7b
const OPEN_BRACKET = 0x5b
const CLOSE_BRACE = 0x7d
const CLOSE_BRACKET = 0x5d

/**
 * Rejects bodies that would cost far more to parse than their size suggests (deep nesting,
 * millions of tiny containers) before JSON.parse builds them. Returns a message, or null when fine.
 */
export function jsonShapeProblem (body: Buffer): string | null {
  let depth = 0
  let containers = 0
  for (let i = 0; i < body.length; i++) {
    const byte = body[i]
    if (byte === QUOTE) {
      i = endOfString(body, i)
      if (i < 0) return null // unterminated string: JSON.parse reports it
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      depth++
      containers++
      if (depth > MAX_JSON_DEPTH) return `JSON nested deeper than ${MAX_JSON_DEPTH} levels`
      if (containers > MAX_JSON_CONTAINERS) return `JSON has more than ${MAX_JSON_CONTAINERS} objects and arrays`
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      depth--
    }
  }
  return null
}

function endOfString (body: Buffer, start: number): number {
  let position = start
  for (;;) {
    position = body.indexOf(QUOTE, position + 1)
    if (position < 0) return -1
    let backslashes = 0
    for (let j = position - 1; j > start && body[j] === BACKSLASH; j--) backslashes++
    if (backslashes % 2 === 0) return position
  }
}

/**
 * On routes behind Ollama's cloud passthrough (server/cloud_proxy.go extractModelField, the /v1
 * inference routes), the value of the exact key `model` as that middleware reads it (a Go map:
 * exact case, last wins, as JSON.parse): a cloud model there goes to ollama.com before the route's
 * struct, with its case-folded keys, is decoded. Kept on the view under this symbol so the
 * allowlist checks it too; absent when that key is missing or not a string.
 */
export const PASSTHROUGH_MODEL = Symbol('passthrough model')

export type JsonParseResult = { ok: true, value: unknown } | { ok: false, message: string }

/**
 * Reads a JSON body the way Ollama's handler will: `value` is the Go view of the body for
 * `struct` (only its fields, under their Go names; see go-json.ts), while the caller keeps the
 * original bytes for forwarding. A route without a struct gets an empty view of an object body.
 * Fails (the caller answers 400) on invalid UTF-8, on a body too deep or too large in containers,
 * on invalid JSON, and where Go would merge two values of one field. With `passthrough` (routes
 * behind Ollama's cloud passthrough) the view also holds `PASSTHROUGH_MODEL`.
 */
export function parseJsonBody (body: Buffer, struct: GoStruct = NO_FIELDS, passthrough = false): JsonParseResult {
  if (!isUtf8(body)) return { ok: false, message: 'request body is not valid UTF-8' }
  const problem = jsonShapeProblem(body)
  if (problem !== null) return { ok: false, message: `invalid JSON body: ${problem}` }
  const text = body.toString('utf8')
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    return { ok: false, message: `invalid JSON body: ${(err as Error).message}` }
  }
  let read: ReturnType<typeof goView>
  try {
    read = goView(text, parsed, struct)
  } catch {
    // Not expected for valid JSON; if it happens the proxy cannot say what Ollama reads: deny.
    return { ok: false, message: 'invalid JSON body: it cannot be read the way Ollama reads it' }
  }
  if (!read.ok) return { ok: false, message: `invalid JSON body: ${read.message}` }
  const exact = passthrough && typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && Object.hasOwn(parsed, 'model')
    ? (parsed as Record<string, unknown>).model
    : undefined
  if (typeof exact === 'string' && typeof read.view === 'object' && read.view !== null) {
    (read.view as Record<symbol, unknown>)[PASSTHROUGH_MODEL] = (exact as unknown as { toWellFormed: () => string }).toWellFormed()
  }
  return { ok: true, value: read.view }
}

const SMALL_STRING = 1024

/**
 * The scalar fields of a body view (strings up to 1 KiB): what is read of a body once the
 * checks have run (fan-out's `stream`). The rest (a prompt, a chat history) is let go while the
 * answer streams: the forwarded bytes are then the only copy kept, which
 * `server.max_body_bytes_in_flight` accounts for.
 */
export function smallFieldsOf (view: Record<string, unknown>): Record<string, unknown> {
  const small: Record<string, unknown> = {}
  for (const field of Object.keys(view)) {
    const value = view[field]
    if (value === null || typeof value === 'boolean' || typeof value === 'number' || (typeof value === 'string' && value.length <= SMALL_STRING)) small[field] = value
  }
  return small
}
