// Calendar days and months in an IANA time zone, with Intl only. A local date never goes
// backwards as time passes (a DST change at midnight moves midnight, it does not repeat a
// date), so the first instant of a date is found by a binary search over instants.

const DAY_MS = 86_400_000
/** Local midnight lies within this distance of the same wall time read as UTC (offsets span -12 h to +14 h). */
const SEARCH_SPAN_MS = 36 * 3_600_000
const DAY_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatterFor (timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone)
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', numberingSystem: 'latn' })
    formatters.set(timeZone, formatter)
  }
  return formatter
}

/**
 * Checks an IANA time zone name ("UTC", "Europe/Berlin"); returns it unchanged.
 * Throws RangeError `unknown time zone "<name>"` when Intl does not know it.
 */
export function checkTimeZone (timeZone: string): string {
  if (typeof timeZone !== 'string' || timeZone === '') throw new RangeError(`unknown time zone ${JSON.stringify(timeZone)}`)
  try {
    formatterFor(timeZone)
  } catch {
    throw new RangeError(`unknown time zone ${JSON.stringify(timeZone)}`)
  }
  return timeZone
}

/** The local date (YYYY-MM-DD) an instant (ms since the epoch) falls on in `timeZone`. */
export function dayOf (instant: number, timeZone: string): string {
  let year = ''
  let month = ''
  let day = ''
  for (const part of formatterFor(timeZone).formatToParts(instant)) {
    if (part.type === 'year') year = part.value.padStart(4, '0')
    else if (part.type === 'month') month = part.value
    else if (part.type === 'day') day = part.value
  }
  return `${year}-${month}-${day}`
}

/** True for a real calendar date written YYYY-MM-DD (2026-02-30 is not one). */
export function isDay (text: string): boolean {
  const match = DAY_PATTERN.exec(text)
  if (match === null) return false
  const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])))
  return date.getUTCFullYear() === Number(match[1]) && date.getUTCMonth() === Number(match[2]) - 1 && date.getUTCDate() === Number(match[3])
}

/** Days since 1970-01-01 of a YYYY-MM-DD date (the store's integer day). Throws RangeError for a non-date. */
export function dayNumber (day: string): number {
  if (!isDay(day)) throw new RangeError(`not a date (YYYY-MM-DD): ${JSON.stringify(day)}`)
  return Date.UTC(Number(day.slice(0, 4)), Number(day.slice(5, 7)) - 1, Number(day.slice(8, 10))) / DAY_MS
}

/** The YYYY-MM-DD date of a day number (days since 1970-01-01). */
export function dayFromNumber (number: number): string {
  return new Date(number * DAY_MS).toISOString().slice(0, 10)
}

/** The date `count` days after `day` (before it when negative). */
export function addDays (day: string, count: number): string {
  return dayFromNumber(dayNumber(day) + count)
}

/** The month (YYYY-MM) after a YYYY-MM month. */
export function nextMonth (month: string): string {
  const date = new Date(Date.UTC(Number(month.slice(0, 4)), Number(month.slice(5, 7)), 1))
  return date.toISOString().slice(0, 7)
}

/**
 * The first instant (ms since the epoch) whose local date in `timeZone` is `day` or later. On a
 * day whose midnight a DST change skips, that is the instant of the change (01:00 local).
 * Throws RangeError for a non-date.
 */
export function startOfDay (day: string, timeZone: string): number {
  const wall = dayNumber(day) * DAY_MS
  let low = wall - SEARCH_SPAN_MS // local date before `day`
  let high = wall + SEARCH_SPAN_MS // local date `day` or later
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2)
    if (dayOf(middle, timeZone) >= day) high = middle
    else low = middle
  }
  return high
}

/** The calendar windows an instant falls in; every end is the next window's first instant (exclusive). */
export interface CalendarWindows {
  /** local date, YYYY-MM-DD */
  day: string
  /** local month, YYYY-MM */
  month: string
  /** ms since the epoch */
  dayStart: number
  dayEnd: number
  monthStart: number
  monthEnd: number
}

/** The local day and month of `instant` (ms since the epoch) in `timeZone`, with their bounds. */
export function calendarWindows (instant: number, timeZone: string): CalendarWindows {
  const day = dayOf(instant, timeZone)
  const month = day.slice(0, 7)
  return {
    day,
    month,
    dayStart: startOfDay(day, timeZone),
    dayEnd: startOfDay(addDays(day, 1), timeZone),
    monthStart: startOfDay(`${month}-01`, timeZone),
    monthEnd: startOfDay(`${nextMonth(month)}-01`, timeZone)
  }
}

/** Whole seconds from `now` until `end` (both ms), rounded up, at least 1: a Retry-After value. */
export function secondsUntil (end: number, now: number): number {
  return Math.max(1, Math.ceil((end - now) / 1000))
}
