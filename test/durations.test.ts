// Times in the config and on the command line: Go durations as Ollama reads keep_alive, spans, ISO 8601 expiries.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { keepAliveSeconds, parseGoDuration, parseSpan } from '../plugins/config/durations.js'
import { expiryFromIso, isoTime } from '../plugins/config/iso-times.js'

test('parseGoDuration reads what Go\'s time.ParseDuration reads, in seconds', () => {
  const cases: Array<[string, number | undefined]> = [
    ['300ms', 0.3], ['-1.5h', -5400], ['2h45m', 9900], ['1h30m', 5400], ['5m0s', 300], ['+5m', 300],
    ['0', 0], ['-0', 0], ['.5s', 0.5], ['5.s', 5], ['1us', 1e-6], ['1µs', 1e-6], ['1μs', 1e-6], ['1ns', 1e-9],
    ['9223372036s', 9223372036],
    ['', undefined], ['1', undefined], ['300', undefined], ['1d', undefined], ['.', undefined], ['.s', undefined],
    ['1h1', undefined], ['1.5.5s', undefined], ['1 h', undefined], [' 1h', undefined], ['9223372037s', undefined], ['forever', undefined]
  ]
  for (const [text, seconds] of cases) {
    const got = parseGoDuration(text)
    if (seconds === undefined) assert.equal(got, undefined, text)
    else assert.ok(got !== undefined && Math.abs(got - seconds) < 1e-9, `${text}: ${got}`)
  }
})

test('keepAliveSeconds reads keep_alive as Ollama\'s api.Duration: numbers are seconds, negative is forever', () => {
  const cases: Array<[unknown, number | undefined]> = [
    [30, 30], [1.5, 1.5], [0, 0], [-1, Infinity], ['5m', 300], ['0', 0], ['-1m', Infinity], ['24h', 86400],
    ['300', undefined], [true, undefined], [null, undefined], [{}, undefined], [[], undefined], ['forever', undefined]
  ]
  for (const [value, seconds] of cases) assert.equal(keepAliveSeconds(value), seconds, JSON.stringify(value))
})

test('parseSpan reads command-line spans with s, m, h, d and w units', () => {
  const cases: Array<[string, number | undefined]> = [
    ['30d', 30 * 86_400_000], ['24h', 86_400_000], ['1h30m', 5_400_000], ['2w', 14 * 86_400_000], ['90s', 90_000], [' 7d ', 7 * 86_400_000],
    ['0d', undefined], ['30', undefined], ['1.5h', undefined], ['-1d', undefined], ['d', undefined], ['', undefined], ['1y', undefined],
    // At most 100 years: further, now plus the span is no date (Date's range ends in 275760).
    ['36500d', 36_500 * 86_400_000], ['36501d', undefined], ['2500000000h', undefined], ['99999999999999999999s', undefined]
  ]
  for (const [text, ms] of cases) assert.equal(parseSpan(text), ms, text)
})

test('expiryFromIso: a date alone is valid through that day (UTC); a time ends then; anything else is refused', () => {
  const cases: Array<[string, number | undefined]> = [
    ['2027-06-30', Date.UTC(2027, 6, 1)],
    ['2024-02-29', Date.UTC(2024, 2, 1)],
    // "Never": the last moment ISO 8601 writes with four year digits.
    ['9999-12-31', Date.UTC(9999, 11, 31, 23, 59, 59, 999)],
    ['9999-12-31T23:30:00-05:00', Date.UTC(9999, 11, 31, 23, 59, 59, 999)],
    ['2027-12-31', Date.UTC(2028, 0, 1)],
    ['2027-06-30T18:00:00Z', Date.UTC(2027, 5, 30, 18)],
    ['2027-06-30T18:00Z', Date.UTC(2027, 5, 30, 18)],
    ['2027-06-30t18:00:00z', Date.UTC(2027, 5, 30, 18)],
    ['2027-06-30 18:00:00Z', Date.UTC(2027, 5, 30, 18)],
    ['2027-06-30T18:00:00.5Z', Date.UTC(2027, 5, 30, 18, 0, 0, 500)],
    ['2027-06-30T18:00:00+02:00', Date.UTC(2027, 5, 30, 16)],
    ['2027-06-30T18:00:00-0130', Date.UTC(2027, 5, 30, 19, 30)],
    ['2027-06-30T18:00:00', Date.UTC(2027, 5, 30, 18)],
    ['2027-02-29', undefined], ['2027-13-01', undefined], ['2027-06-31', undefined], ['2027-6-30', undefined],
    ['2027-06-30T24:00:00Z', undefined], ['2027-06-30T18:60Z', undefined], ['2027-06-30T18:00:00+25:00', undefined],
    ['30/06/2027', undefined], ['2027-06-30Z', undefined], ['tomorrow', undefined], ['', undefined], ['20270630', undefined]
  ]
  for (const [text, ms] of cases) assert.equal(expiryFromIso(text), ms, text)
  assert.equal(isoTime(Date.UTC(2027, 0, 2, 3, 4, 5)), '2027-01-02T03:04:05Z')
  assert.equal(isoTime(Date.UTC(2027, 0, 2, 3, 4, 5, 6)), '2027-01-02T03:04:05.006Z')
  assert.equal(isoTime(expiryFromIso('9999-12-31')!), '9999-12-31T23:59:59.999Z')
})
