const DAY_MS = 86_400_000
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/

// ISO 8601 writes a later moment with six year digits (+010000-01-01), which many parsers refuse.
const LAST_FOUR_DIGIT_MOMENT = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

function calendarDay (year: number, month: number, day: number): number | undefined {
  const ms = Date.UTC(year, month - 1, day)
  const date = new Date(ms)
  // Date.UTC rolls 2027-02-30 over into March: a date that does not exist is refused.
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined
  return ms
}

/**
 * The moment an expiry written in ISO 8601 takes effect, in ms since the epoch: a date alone
 * ("2027-06-30") is valid through that day in UTC, so it ends at the next day's 00:00 UTC; a date
 * and time ends then ("2027-06-30T18:00:00Z", an offset "+02:00", or no offset: UTC). Undefined
 * for anything that is not a real calendar date and time in those forms. A moment past year 9999
 * (9999-12-31 through that day) is 9999-12-31T23:59:59.999Z: what "never" reads as everywhere.
 */
export function expiryFromIso (text: string): number | undefined {
  const trimmed = text.trim()
  const date = DATE.exec(trimmed)
  if (date !== null) {
    const day = calendarDay(Number(date[1]), Number(date[2]), Number(date[3]))
    return day === undefined ? undefined : Math.min(day + DAY_MS, LAST_FOUR_DIGIT_MOMENT)
  }
  const parts = DATE_TIME.exec(trimmed)
  if (parts === null) return undefined
  const [, year, month, day, hour, minute, second = '0', fraction = '', , sign, offsetHours, offsetMinutes] = parts
  const start = calendarDay(Number(year), Number(month), Number(day))
  if (start === undefined || Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) return undefined
  if (offsetHours !== undefined && (Number(offsetHours) > 23 || Number(offsetMinutes) > 59)) return undefined
  const offset = sign === undefined ? 0 : (sign === '-' ? -1 : 1) * (Number(offsetHours) * 60 + Number(offsetMinutes)) * 60_000
  const ms = Number(`0.${fraction || '0'}`) * 1000
  return Math.min(start + ((Number(hour) * 60 + Number(minute)) * 60 + Number(second)) * 1000 + Math.floor(ms) - offset, LAST_FOUR_DIGIT_MOMENT)
}

/** A moment as the config writes it: "2027-06-30T18:00:00Z" (milliseconds only when not zero). */
export function isoTime (ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z')
}
