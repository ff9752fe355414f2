import assert from 'node:assert/strict'
import { test } from 'node:test'
import { addDays, calendarWindows, checkTimeZone, dayFromNumber, dayNumber, isDay, nextMonth, secondsUntil, startOfDay } from '../plugins/usage/calendar.js'

const at = (iso: string) => Date.parse(iso)

// Expected values written from the zones' rules (checked against the system's tzdata with
// `TZ=<zone> date`), not from the code under test.
const WINDOWS: Array<{ why: string, zone: string, instant: string, day: string, month: string, dayStart: string, dayEnd: string, monthStart: string, monthEnd: string }> = [
  { why: 'UTC, last millisecond of a month', zone: 'UTC', instant: '2026-03-31T23:59:59.999Z', day: '2026-03-31', month: '2026-03', dayStart: '2026-03-31T00:00:00Z', dayEnd: '2026-04-01T00:00:00Z', monthStart: '2026-03-01T00:00:00Z', monthEnd: '2026-04-01T00:00:00Z' },
  { why: 'UTC, first instant of a month', zone: 'UTC', instant: '2026-04-01T00:00:00Z', day: '2026-04-01', month: '2026-04', dayStart: '2026-04-01T00:00:00Z', dayEnd: '2026-04-02T00:00:00Z', monthStart: '2026-04-01T00:00:00Z', monthEnd: '2026-05-01T00:00:00Z' },
  { why: 'Berlin, spring forward: a 23-hour day; the month starts in winter time and ends in summer time', zone: 'Europe/Berlin', instant: '2026-03-29T12:00:00Z', day: '2026-03-29', month: '2026-03', dayStart: '2026-03-28T23:00:00Z', dayEnd: '2026-03-29T22:00:00Z', monthStart: '2026-02-28T23:00:00Z', monthEnd: '2026-03-31T22:00:00Z' },
  { why: 'Berlin, fall back: a 25-hour day', zone: 'Europe/Berlin', instant: '2026-10-25T12:00:00Z', day: '2026-10-25', month: '2026-10', dayStart: '2026-10-24T22:00:00Z', dayEnd: '2026-10-25T23:00:00Z', monthStart: '2026-09-30T22:00:00Z', monthEnd: '2026-10-31T23:00:00Z' },
  { why: 'Berlin, New Year: UTC is still in the old year', zone: 'Europe/Berlin', instant: '2026-12-31T23:00:00Z', day: '2027-01-01', month: '2027-01', dayStart: '2026-12-31T23:00:00Z', dayEnd: '2027-01-01T23:00:00Z', monthStart: '2026-12-31T23:00:00Z', monthEnd: '2027-01-31T23:00:00Z' },
  { why: 'New York, an evening that is already the next month in UTC', zone: 'America/New_York', instant: '2026-02-01T04:30:00Z', day: '2026-01-31', month: '2026-01', dayStart: '2026-01-31T05:00:00Z', dayEnd: '2026-02-01T05:00:00Z', monthStart: '2026-01-01T05:00:00Z', monthEnd: '2026-02-01T05:00:00Z' },
  { why: 'Santiago, fall back at midnight: 24:00 becomes 23:00, a 25-hour Saturday', zone: 'America/Santiago', instant: '2026-04-04T12:00:00Z', day: '2026-04-04', month: '2026-04', dayStart: '2026-04-04T03:00:00Z', dayEnd: '2026-04-05T04:00:00Z', monthStart: '2026-04-01T03:00:00Z', monthEnd: '2026-05-01T04:00:00Z' },
  { why: 'Santiago, spring forward at midnight: the day starts at 01:00', zone: 'America/Santiago', instant: '2026-09-06T12:00:00Z', day: '2026-09-06', month: '2026-09', dayStart: '2026-09-06T04:00:00Z', dayEnd: '2026-09-07T03:00:00Z', monthStart: '2026-09-01T04:00:00Z', monthEnd: '2026-10-01T03:00:00Z' },
  { why: 'Lord Howe, a half-hour DST change', zone: 'Australia/Lord_Howe', instant: '2026-10-04T12:00:00Z', day: '2026-10-04', month: '2026-10', dayStart: '2026-10-03T13:30:00Z', dayEnd: '2026-10-04T13:00:00Z', monthStart: '2026-09-30T13:30:00Z', monthEnd: '2026-10-31T13:00:00Z' },
  { why: 'Kolkata, a half-hour offset, leap day in UTC is already March 1st', zone: 'Asia/Kolkata', instant: '2028-02-29T20:00:00Z', day: '2028-03-01', month: '2028-03', dayStart: '2028-02-29T18:30:00Z', dayEnd: '2028-03-01T18:30:00Z', monthStart: '2028-02-29T18:30:00Z', monthEnd: '2028-03-31T18:30:00Z' },
  { why: 'Apia skipped 2011-12-30: the 29th ends where the 31st begins', zone: 'Pacific/Apia', instant: '2011-12-29T12:00:00Z', day: '2011-12-29', month: '2011-12', dayStart: '2011-12-29T10:00:00Z', dayEnd: '2011-12-30T10:00:00Z', monthStart: '2011-12-01T10:00:00Z', monthEnd: '2011-12-31T10:00:00Z' }
]

for (const row of WINDOWS) {
  test(`calendarWindows: ${row.why}`, () => {
    const windows = calendarWindows(at(row.instant), row.zone)
    assert.deepEqual(windows, {
      day: row.day,
      month: row.month,
      dayStart: at(row.dayStart),
      dayEnd: at(row.dayEnd),
      monthStart: at(row.monthStart),
      monthEnd: at(row.monthEnd)
    })
    // Every bound is exact: the millisecond before an end is still in the window.
    assert.equal(calendarWindows(windows.dayEnd - 1, row.zone).day, row.day)
    assert.notEqual(calendarWindows(windows.dayEnd, row.zone).day, row.day)
    assert.notEqual(calendarWindows(windows.dayStart - 1, row.zone).day, row.day)
    assert.equal(calendarWindows(windows.monthEnd - 1, row.zone).month, row.month)
  })
}

test('startOfDay: a date whose midnight does not exist begins at the DST change', () => {
  assert.equal(startOfDay('2026-09-06', 'America/Santiago'), at('2026-09-06T04:00:00Z'))
  // A skipped date "begins" where the next one does.
  assert.equal(startOfDay('2011-12-30', 'Pacific/Apia'), startOfDay('2011-12-31', 'Pacific/Apia'))
})

test('checkTimeZone: IANA names pass, anything else is a RangeError naming it', () => {
  for (const zone of ['UTC', 'Europe/Berlin', 'America/Argentina/Buenos_Aires']) assert.equal(checkTimeZone(zone), zone)
  for (const zone of ['Mars/Olympus_Mons', '', 'Europe/Berlin ', 'not a zone']) {
    assert.throws(() => checkTimeZone(zone), (err: Error) => err instanceof RangeError && err.message === `unknown time zone ${JSON.stringify(zone)}`)
  }
})

test('day arithmetic: isDay, dayNumber, dayFromNumber, addDays, nextMonth', () => {
  const days: Array<[string, boolean]> = [['2026-02-28', true], ['2028-02-29', true], ['2026-02-29', false], ['2026-13-01', false], ['2026-1-01', false], ['7d', false], ['2026-04-31', false]]
  for (const [text, valid] of days) assert.equal(isDay(text), valid, text)
  assert.equal(dayNumber('1970-01-01'), 0)
  assert.equal(dayNumber('2026-01-01'), 20454)
  assert.equal(dayFromNumber(20454), '2026-01-01')
  assert.equal(addDays('2026-03-01', -1), '2026-02-28')
  assert.equal(addDays('2028-02-28', 1), '2028-02-29')
  assert.equal(addDays('2026-12-31', 1), '2027-01-01')
  assert.equal(nextMonth('2026-12'), '2027-01')
  assert.equal(nextMonth('2026-01'), '2026-02')
  assert.throws(() => dayNumber('2026-02-30'), RangeError)
})

test('secondsUntil: rounds up, never below 1 (a Retry-After of 0 invites a retry storm)', () => {
  const cases: Array<[number, number, number]> = [[10_000, 0, 10], [10_001, 0, 11], [10_000, 9_999, 1], [10_000, 10_000, 1], [10_000, 20_000, 1]]
  for (const [end, now, seconds] of cases) assert.equal(secondsUntil(end, now), seconds, `${end} - ${now}`)
})
