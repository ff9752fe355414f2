/**
 * The view of a JSON body that Ollama's Go handler gets, so the proxy checks the same model and
 * flags Ollama will act on. Rules of Go's `encoding/json` (v1, used by gin's ShouldBindJSON and by
 * Ollama's middleware; Ollama builds with Go 1.26, where v1 is still the default), from
 * `encoding/json/decode.go` (`object`, `literalStore`, `indirect`) and `encode.go` (`typeFields`):
 * - an object key picks the field whose name equals it exactly, else the first field whose name
 *   equals it under Unicode simple case folding (`Model`, `MODEL`, `ſource` with U+017F, and
 *   `\u212a` KELVIN SIGN for `k` all match); keys matching no field are ignored;
 * - every matching key assigns in order, so the last one wins;
 * - `null` leaves a string/number/bool field unchanged, and sets a pointer, interface, slice or
 *   map field to nil (absent);
 * - a second object or array for a slice, map or struct-pointer field is merged into the first,
 *   which this module refuses to imitate (400 naming the field) rather than guess;
 * - a string is decoded with every lone surrogate escape (`\ud800`) replaced by U+FFFD;
 * - a top-level `null` leaves the whole struct at its zero value.
 */

/** How a Go struct field treats what a key assigns to it. */
export type GoKind =
  /** `string`: null keeps the previous value; any other non-string fails Go's decode (400). */
  | 'string'
  /** `int`: null keeps the previous value; a fraction or exponent fails Go's decode (400). */
  | 'int'
  /** Pointer to a scalar (`*bool`, `*int`) or `any`: null makes it absent; a new value replaces. */
  | 'value'
  /** Slice, map or pointer to struct: null makes it absent; a second value would merge (refused). */
  | 'merging'

/**
 * The fields of one of Ollama's request structs that the proxy acts on, by JSON name (the
 * struct tag), in the struct's field order. Names are ASCII, as every tag in Ollama's structs is.
 * Fields the proxy does not read are left out on purpose: the view holds only what is declared,
 * so nothing can read a field by JavaScript's rules by mistake.
 */
export type GoStruct = Readonly<Record<string, GoKind>>

export type GoViewResult = { ok: true, view: unknown } | { ok: false, field: string, message: string }

/** Builds a struct description; throws on a non-ASCII name, whose folding this module does not model. */
export function goStruct (fields: Record<string, GoKind>): GoStruct {
  for (const name of Object.keys(fields)) {
    if (!/^[\x20-\x7e]+$/.test(name)) throw new Error(`Go field name ${JSON.stringify(name)} is not printable ASCII`)
  }
  return Object.freeze({ ...fields })
}

/**
 * Ollama's view of a body: `text` is the whole body (valid JSON, UTF-8 decoded), `parsed` what
 * JSON.parse made of it. Returns a new object holding only `struct`'s fields that the body sets,
 * under their Go names, or a non-object body unchanged (Go fails to decode it; the route schema
 * answers 400). Fails with the field's name when Go's outcome would be a merge of two values.
 */
export function goView (text: string, parsed: unknown, struct: GoStruct): GoViewResult {
  if (parsed === null) return { ok: true, view: {} }
  if (typeof parsed !== 'object' || Array.isArray(parsed)) return { ok: true, view: parsed }
  const whole = parsed as Record<string, unknown>
  const entries = topLevelEntries(text)
  const lastOfKey = new Map<string, number>()
  entries.forEach((entry, index) => lastOfKey.set(entry.key, index))

  const view: Record<string, unknown> = {}
  const failed = new Set<string>()
  for (const [index, entry] of entries.entries()) {
    const field = fieldFor(wellFormed(entry.key), struct)
    if (field === undefined) continue
    // JSON.parse kept the last value of each exact key; earlier ones are parsed from their span.
    const value = lastOfKey.get(entry.key) === index ? whole[entry.key] : JSON.parse(text.slice(entry.valueStart, entry.valueEnd)) as unknown
    if (failed.has(field)) continue
    switch (struct[field]) {
      case 'string':
        if (value === null) break
        view[field] = typeof value === 'string' ? wellFormed(value) : value
        if (typeof value !== 'string') failed.add(field) // Go's decode fails whatever follows
        break
      case 'int':
        if (value === null) break
        if (typeof value === 'number' && isGoInt(text.slice(entry.valueStart, entry.valueEnd))) {
          view[field] = value
        } else {
          // Go fails the decode on `1.0`, `1e2` or 2^63; the literal as a string makes the schema say so.
          view[field] = typeof value === 'number' ? text.slice(entry.valueStart, entry.valueEnd) : value
          failed.add(field)
        }
        break
      case 'value':
        if (value === null) delete view[field]
        else view[field] = typeof value === 'string' ? wellFormed(value) : value
        break
      case 'merging':
        if (value === null) {
          delete view[field]
        } else if (Object.hasOwn(view, field)) {
          return { ok: false, field, message: `field "${field}" is given more than once; send it once` }
        } else {
          view[field] = value
        }
        break
    }
  }
  return { ok: true, view }
}

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

/** Go's `strconv.ParseInt(literal, 10, 64)` succeeds: no fraction, no exponent, within int64. */
function isGoInt (literal: string): boolean {
  if (!/^-?\d+$/.test(literal)) return false
  const value = BigInt(literal)
  return value >= INT64_MIN && value <= INT64_MAX
}

/** Go decodes a lone surrogate escape as U+FFFD; JSON.parse keeps it (String#toWellFormed, Node 20). */
function wellFormed (text: string): string {
  return (text as unknown as { toWellFormed: () => string }).toWellFormed()
}

/** The struct field a key assigns to: exact name first, else the first name equal under folding. */
export function fieldFor (key: string, struct: GoStruct): string | undefined {
  if (Object.hasOwn(struct, key)) return key
  const folded = foldKey(key)
  return Object.keys(struct).find(name => foldKey(name) === folded)
}

// Go compares `foldName` of both sides: ASCII letters upper-cased, other runes mapped to the
// smallest rune of their simple-fold orbit. Only two non-ASCII runes have an ASCII letter in
// their orbit; every other non-ASCII rune folds to a non-ASCII one and so never equals an
// ASCII name, which is all this module compares against.
const NON_ASCII_FOLDING_TO_ASCII = new Map([['\u017f', 'S'], ['\u212a', 'K']])

function foldKey (key: string): string {
  let folded = ''
  for (const char of key) {
    folded += char.length === 1 && char < '\x80' ? char.toUpperCase() : NON_ASCII_FOLDING_TO_ASCII.get(char) ?? char
  }
  return folded
}

interface Entry {
  /** The key as JSON.parse decodes it. */
  key: string
  valueStart: number
  valueEnd: number
}

/** Every key of the top-level object in order, duplicates included; `text` must be valid JSON. */
export function topLevelEntries (text: string): Entry[] {
  const entries: Entry[] = []
  let i = skipSpace(text, 0)
  if (text[i] !== '{') return entries
  i = skipSpace(text, i + 1)
  while (text[i] === '"') {
    const keyEnd = endOfString(text, i)
    const key = JSON.parse(text.slice(i, keyEnd + 1)) as string
    i = skipSpace(text, keyEnd + 1) + 1 // past ':'
    const valueStart = skipSpace(text, i)
    const valueEnd = endOfValue(text, valueStart)
    entries.push({ key, valueStart, valueEnd })
    i = skipSpace(text, valueEnd)
    if (text[i] === ',') i = skipSpace(text, i + 1)
  }
  return entries
}

function skipSpace (text: string, from: number): number {
  let i = from
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++
  return i
}

/** Index of the quote closing the string that opens at `start`. */
function endOfString (text: string, start: number): number {
  let position = start
  for (;;) {
    position = text.indexOf('"', position + 1)
    if (position < 0) return text.length
    let backslashes = 0
    for (let j = position - 1; j > start && text[j] === '\\'; j--) backslashes++
    if (backslashes % 2 === 0) return position
  }
}

/** Index just past the value that starts at `start`. */
function endOfValue (text: string, start: number): number {
  const first = text[start]
  if (first === '"') return endOfString(text, start) + 1
  if (first === '{' || first === '[') {
    let depth = 0
    for (let i = start; i < text.length; i++) {
      const char = text[i]
      if (char === '"') i = endOfString(text, i)
      else if (char === '{' || char === '[') depth++
      else if ((char === '}' || char === ']') && --depth === 0) return i + 1
    }
    return text.length
  }
  let i = start
  while (i < text.length && !',}] \t\n\r'.includes(text[i])) i++
  return i
}
