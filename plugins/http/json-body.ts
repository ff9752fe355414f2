import { isUtf8 } from 'node:buffer'

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

export type JsonParseResult = { ok: true, value: unknown } | { ok: false, message: string }

export function parseJsonBody (body: Buffer): JsonParseResult {
  if (!isUtf8(body)) return { ok: false, message: 'request body is not valid UTF-8' }
  const problem = jsonShapeProblem(body)
  if (problem !== null) return { ok: false, message: `invalid JSON body: ${problem}` }
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) }
  } catch (err) {
    return { ok: false, message: `invalid JSON body: ${(err as Error).message}` }
  }
}
