const NANOSECONDS_PER_UNIT: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3, // U+00B5 micro sign
  μs: 1e3, // U+03BC Greek mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9
}
// Go's time.Duration is an int64 of nanoseconds.
const MAX_NANOSECONDS = 2 ** 63 - 1

/**
 * Seconds in a Go duration string, read as Go's time.ParseDuration reads it (go/src/time/format.go):
 * an optional sign, then one or more decimal numbers each with a unit (ns, us, µs, μs, ms, s, m,
 * h), as in "300ms", "-1.5h", "2h45m"; "0" alone needs no unit. Undefined where Go returns an
 * error (no unit, an unknown unit, no digits, past the int64 nanoseconds Go can hold).
 */
export function parseGoDuration (text: string): number | undefined {
  let rest = text
  let negative = false
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-')
    rest = rest.slice(1)
  }
  if (rest === '0') return 0
  if (rest === '') return undefined
  let nanoseconds = 0
  while (rest !== '') {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest)
    const whole = number?.[1] ?? ''
    const fraction = number?.[2] ?? ''
    if (whole === '' && fraction === '') return undefined
    rest = rest.slice(number![0].length)
    const unitLength = rest.search(/[\d.]/)
    const unit = unitLength < 0 ? rest : rest.slice(0, unitLength)
    const scale = NANOSECONDS_PER_UNIT[unit]
    if (unit === '' || scale === undefined) return undefined
    rest = rest.slice(unit.length)
    nanoseconds += Number(`${whole || '0'}.${fraction || '0'}`) * scale
    if (nanoseconds > MAX_NANOSECONDS) return undefined
  }
  return (negative ? -nanoseconds : nanoseconds) / 1e9
}

/**
 * How long Ollama keeps a model loaded for a request's `keep_alive` value, in seconds, read as
 * api.Duration's UnmarshalJSON reads it (ollama api/types.go): a JSON number is seconds, a string
 * a Go duration (parseGoDuration); anything negative means forever, returned as Infinity; 0 means
 * unload now. Undefined for what Ollama refuses (another type, a string Go cannot parse). A JSON
 * `null` never reaches this reading in Ollama (the field stays unset): callers treat it as absent.
 */
export function keepAliveSeconds (value: unknown): number | undefined {
  let seconds: number | undefined
  if (typeof value === 'number') seconds = value
  else if (typeof value === 'string') seconds = parseGoDuration(value)
  if (seconds === undefined || Number.isNaN(seconds)) return undefined
  return seconds < 0 ? Infinity : seconds
}

const MS_PER_SPAN_UNIT: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
/** The longest span: now plus it stays a date the config file can hold (a four-digit year). */
export const MAX_SPAN_MS = 36_500 * 86_400_000

/**
 * Milliseconds in a span typed on the command line or sent to the key API: one or more whole
 * numbers each with a unit s, m, h, d (24 h) or w (7 d), as in "30d", "24h", "1h30m", at most
 * MAX_SPAN_MS (36500d). Undefined for anything else, zero included.
 */
export function parseSpan (text: string): number | undefined {
  const trimmed = text.trim()
  if (!/^(\d+[smhdw])+$/.test(trimmed)) return undefined
  let ms = 0
  for (const [, count, unit] of trimmed.matchAll(/(\d+)([smhdw])/g)) ms += Number(count) * MS_PER_SPAN_UNIT[unit]
  return ms > 0 && ms <= MAX_SPAN_MS ? ms : undefined
}
