/**
 * How Ollama reads a request's `keep_alive` (api/types.go, `Duration.UnmarshalJSON`): a JSON
 * number is seconds (fractions allowed, `time.Duration(t * float64(time.Second))`, truncated to
 * whole nanoseconds), a string is Go's `time.ParseDuration` (`"5m"`, `"1h30m"`, `"0"`; a bare
 * number string such as `"300"` has no unit and is an error), and a negative value of either
 * kind means forever. Anything else (true, an object, an unparsable string, a number too large
 * for float64) fails the decode: Ollama answers 400 and nothing is loaded. A duration of 0 unloads
 * the model (server/sched.go: a runner with sessionDuration <= 0 is expired when idle; the
 * chat and generate handlers unload at once when there is nothing to run).
 */
export type KeepAliveReading =
  /** Not in the body (or null): the server's OLLAMA_KEEP_ALIVE applies. */
  | { kind: 'absent' }
  /** Ollama refuses the request. */
  | { kind: 'invalid' }
  /** Negative: the model stays loaded until the server stops. */
  | { kind: 'forever' }
  /** A duration in nanoseconds, 0 to 2^63 - 1; 0 unloads. */
  | { kind: 'duration', nanoseconds: bigint }
  /**
   * A number of seconds whose nanoseconds do not fit int64: Go's float-to-int conversion is
   * then platform-defined (forever on arm64, a negative duration, that is an unload, on amd64).
   */
  | { kind: 'out-of-range' }

const SECOND = 1_000_000_000n
const TWO_TO_63 = 1n << 63n
const UINT64_MASK = (1n << 64n) - 1n

/** Nanoseconds per unit of Go's time.ParseDuration (`µs` is U+00B5, `μs` U+03BC). */
const UNITS = new Map<string, bigint>([
  ['ns', 1n], ['us', 1000n], ['\u00b5s', 1000n], ['\u03bcs', 1000n], ['ms', 1_000_000n], ['s', SECOND], ['m', 60n * SECOND], ['h', 3600n * SECOND]
])

/** Ollama's reading of a keep_alive value as the Go view of the body holds it (undefined = absent). */
export function readKeepAlive (value: unknown): KeepAliveReading {
  if (value === undefined || value === null) return { kind: 'absent' }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return { kind: 'invalid' }
    if (value < 0) return { kind: 'forever' }
    const nanoseconds = Math.trunc(value * 1e9)
    return nanoseconds >= 2 ** 63 ? { kind: 'out-of-range' } : { kind: 'duration', nanoseconds: BigInt(nanoseconds) }
  }
  if (typeof value === 'string') {
    const duration = parseGoDuration(value)
    if (duration === undefined) return { kind: 'invalid' }
    return duration < 0n ? { kind: 'forever' } : { kind: 'duration', nanoseconds: duration }
  }
  return { kind: 'invalid' }
}

/**
 * Go's `time.ParseDuration` (src/time/format.go): nanoseconds as int64, or undefined where Go
 * returns an error. `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or "0" alone; the uint64 arithmetic of
 * Go's code is reproduced, wrap-around included.
 */
export function parseGoDuration (text: string): bigint | undefined {
  let rest = text
  let negative = false
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest[0] === '-'
    rest = rest.slice(1)
  }
  if (rest === '0') return 0n
  if (rest === '') return undefined
  let total = 0n
  while (rest !== '') {
    if (!(rest[0] === '.' || isDigit(rest[0]))) return undefined
    const whole = leadingInt(rest)
    if (whole === undefined) return undefined
    const hadWhole = whole.rest.length !== rest.length
    rest = whole.rest
    let fraction = 0n
    let scale = 1
    let hadFraction = false
    if (rest.startsWith('.')) {
      rest = rest.slice(1)
      const part = leadingFraction(rest)
      hadFraction = part.rest.length !== rest.length
      ;({ fraction, scale } = part)
      rest = part.rest
    }
    if (!hadWhole && !hadFraction) return undefined
    let end = 0
    while (end < rest.length && rest[end] !== '.' && !isDigit(rest[end])) end++
    if (end === 0) return undefined
    const unit = UNITS.get(rest.slice(0, end))
    rest = rest.slice(end)
    if (unit === undefined) return undefined
    if (whole.value > TWO_TO_63 / unit) return undefined
    let value = whole.value * unit
    if (fraction > 0n) {
      value += BigInt(Math.trunc(Number(fraction) * (Number(unit) / scale)))
      if (value > TWO_TO_63) return undefined
    }
    total = (total + value) & UINT64_MASK
    if (total > TWO_TO_63) return undefined
  }
  if (negative) return BigInt.asIntN(64, -total)
  return total > TWO_TO_63 - 1n ? undefined : total
}

function isDigit (char: string): boolean {
  return char >= '0' && char <= '9'
}

/** Go's leadingInt: the leading digits as uint64; undefined past 2^63. */
function leadingInt (text: string): { value: bigint, rest: string } | undefined {
  let value = 0n
  let i = 0
  for (; i < text.length && isDigit(text[i]); i++) {
    if (value > TWO_TO_63 / 10n) return undefined
    value = value * 10n + BigInt(text.charCodeAt(i) - 48)
    if (value > TWO_TO_63) return undefined
  }
  return { value, rest: text.slice(i) }
}

/** Go's leadingFraction: digits kept while they fit, the rest consumed without precision. */
function leadingFraction (text: string): { fraction: bigint, scale: number, rest: string } {
  let fraction = 0n
  let scale = 1
  let overflow = false
  let i = 0
  for (; i < text.length && isDigit(text[i]); i++) {
    if (overflow) continue
    if (fraction > (TWO_TO_63 - 1n) / 10n) {
      overflow = true
      continue
    }
    const next = fraction * 10n + BigInt(text.charCodeAt(i) - 48)
    if (next > TWO_TO_63) {
      overflow = true
      continue
    }
    fraction = next
    scale *= 10
  }
  return { fraction, scale, rest: text.slice(i) }
}
