import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseGoDuration, readKeepAlive, type KeepAliveReading } from '../plugins/limits/keep-alive.js'

const NS = 1n
const US = 1000n
const MS = 1_000_000n
const S = 1_000_000_000n
const M = 60n * S
const H = 60n * M
const MAX = (1n << 63n) - 1n
const MIN = -(1n << 63n)

// What Go's time.ParseDuration returns (src/time/format.go), undefined for an error.
const durations: Array<[string, bigint | undefined]> = [
  ['0', 0n], ['+0', 0n], ['-0', 0n], ['5s', 5n * S], ['+5s', 5n * S], ['-5s', -5n * S], ['300s', 300n * S],
  ['5m', 5n * M], ['30m', 30n * M], ['1h30m', H + 30n * M], ['24h', 24n * H],
  ['5.5s', 5n * S + 500n * MS], ['5.s', 5n * S], ['.5m', 30n * S], ['1.004s', S + 4n * MS], ['100.00100s', 100n * S + MS],
  ['10ns', 10n * NS], ['11us', 11n * US], ['12\u00b5s', 12n * US], ['12\u03bcs', 12n * US], ['13ms', 13n * MS],
  ['10.5s4m', 4n * M + 10n * S + 500n * MS], ['-2m3.4s', -(2n * M + 3n * S + 400n * MS)], ['1h2m3s4ms5us6ns', H + 2n * M + 3n * S + 4n * MS + 5n * US + 6n],
  ['0.3333333333333333333h', 20n * M], ['9007199254740993ns', 9007199254740993n], ['0.830103483285477580700h', 49n * M + 48n * S + 372539827n],
  ['9223372036854775807ns', MAX], ['9223372036854775.807us', MAX], ['9223372036s854ms775us807ns', MAX],
  ['-9223372036854775808ns', MIN], ['-9223372036854775.808us', MIN], ['-2562047h47m16.854775808s', MIN],
  // Go's uint64 sum wraps at 2^64: two halves of it are 0.
  ['9223372036854775808ns9223372036854775808ns', 0n],
  // Errors: no unit, unknown unit, no digits, bad characters, overflow.
  ['', undefined], ['3', undefined], ['300', undefined], ['00', undefined], ['-', undefined], ['s', undefined], ['.', undefined],
  ['.s', undefined], ['+.s', undefined], ['1d', undefined], ['1e3s', undefined], [' 5m', undefined], ['5m ', undefined], ['5M', undefined],
  ['\ufffd', undefined], ['9223372036854775808ns', undefined], ['9223372036854775810ns', undefined], ['-9223372036854775809ns', undefined],
  ['9223372036854776us', undefined], ['3000000h', undefined], ['9223372036854775.808us', undefined], ['9223372036854ms775us808ns', undefined]
]

test('Go time.ParseDuration, as Ollama reads a keep_alive string', () => {
  for (const [text, expected] of durations) {
    assert.equal(parseGoDuration(text), expected, JSON.stringify(text))
  }
})

const duration = (nanoseconds: bigint): KeepAliveReading => ({ kind: 'duration', nanoseconds })

// api.Duration.UnmarshalJSON: numbers are seconds, strings ParseDuration, negative = forever.
const readings: Array<[string, unknown, KeepAliveReading]> = [
  ['absent', undefined, { kind: 'absent' }],
  ['300 (seconds)', 300, duration(300n * S)],
  ['1e3 (seconds)', 1e3, duration(1000n * S)],
  ['0.5 (seconds)', 0.5, duration(500n * MS)],
  ['1e-10 (truncates to 0 ns: unload)', 1e-10, duration(0n)],
  ['0', 0, duration(0n)],
  ['-0', -0, duration(0n)],
  ['-1', -1, { kind: 'forever' }],
  ['-1e-300', -1e-300, { kind: 'forever' }],
  ['9223372036 (seconds, fits)', 9223372036, duration(9223372036n * S)],
  ['1e10 (seconds, past int64 ns)', 1e10, { kind: 'out-of-range' }],
  ['1e400 (Go cannot decode it)', Infinity, { kind: 'invalid' }],
  ['-1e400 (Go cannot decode it)', -Infinity, { kind: 'invalid' }],
  ['"5m"', '5m', duration(5n * M)],
  ['"0"', '0', duration(0n)],
  ['"0s"', '0s', duration(0n)],
  ['"-0s"', '-0s', duration(0n)],
  ['"-1s"', '-1s', { kind: 'forever' }],
  ['"-1m"', '-1m', { kind: 'forever' }],
  ['"300" (no unit)', '300', { kind: 'invalid' }],
  ['"-1" (no unit)', '-1', { kind: 'invalid' }],
  ['"forever"', 'forever', { kind: 'invalid' }],
  ['true', true, { kind: 'invalid' }],
  ['{}', {}, { kind: 'invalid' }],
  ['[]', [], { kind: 'invalid' }]
]

test('keep_alive read as Ollama reads it (api.Duration)', () => {
  for (const [name, value, expected] of readings) {
    assert.deepEqual(readKeepAlive(value), expected, name)
  }
})
