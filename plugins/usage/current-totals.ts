import { calendarWindows, type CalendarWindows } from './calendar.js'
import type { SpentTotals } from './budgets.js'

/** Requests and tokens (prompt + completion) of one key in one window. */
export interface Spending {
  requests: number
  tokens: number
}

const NOTHING: Spending = { requests: 0, tokens: 0 }

function add (map: Map<string, Spending>, key: string, requests: number, tokens: number): void {
  const spending = map.get(key)
  if (spending === undefined) map.set(key, { requests, tokens })
  else {
    spending.requests += requests
    spending.tokens += tokens
  }
}

/**
 * Every key's totals in the current local day and month, in memory, for budget checks on the
 * hot path: this replica's own counts (loaded from the database at open, then added as they are
 * recorded) plus the other replicas' (as Redis last reported them). The windows roll over by
 * themselves when the clock passes their end: the day's totals start again at 0, and the month's
 * too when the month changed.
 */
export class CurrentTotals {
  private windows: CalendarWindows
  private ownDay = new Map<string, Spending>()
  private ownMonth = new Map<string, Spending>()
  private othersDay = new Map<string, Spending>()
  private othersMonth = new Map<string, Spending>()

  constructor (private readonly timeZone: string, private readonly now: () => number) {
    this.windows = calendarWindows(now(), timeZone)
  }

  /**
   * The current day and month windows, rolled over first when the clock has passed their end. A
   * clock stepped back stays in the window it was in: a finished day is never opened again.
   */
  current (): CalendarWindows {
    const now = this.now()
    if (now >= this.windows.dayEnd) this.rollOver(now)
    return this.windows
  }

  /** Adds this replica's counts at instant `at` (ms) to the windows it falls in (none: only stored). */
  addOwn (key: string, at: number, requests: number, tokens: number): void {
    const windows = this.current()
    if (at < windows.monthStart || at >= windows.monthEnd) return
    add(this.ownMonth, key, requests, tokens)
    if (at >= windows.dayStart && at < windows.dayEnd) add(this.ownDay, key, requests, tokens)
  }

  /** Adds stored counts of this replica for local date `day` (YYYY-MM-DD), when it is in the current month. */
  loadOwn (day: string, key: string, requests: number, tokens: number): void {
    const windows = this.current()
    if (day.slice(0, 7) !== windows.month || day > windows.day) return
    add(this.ownMonth, key, requests, tokens)
    if (day === windows.day) add(this.ownDay, key, requests, tokens)
  }

  /** Replaces the other replicas' totals for `day`/`month` (ignored for windows that are no longer current). */
  setOthers (day: string, month: string, dayTotals: Map<string, Spending>, monthTotals: Map<string, Spending>): void {
    const windows = this.current()
    if (day === windows.day) this.othersDay = dayTotals
    if (month === windows.month) this.othersMonth = monthTotals
  }

  /** This replica's own totals of the current month, per key. */
  ownMonthTotals (): Map<string, Spending> {
    this.current()
    return this.ownMonth
  }

  /** What `key` has spent in the current day and month, on every replica. */
  spent (key: string): SpentTotals {
    const windows = this.current()
    const ownDay = this.ownDay.get(key) ?? NOTHING
    const ownMonth = this.ownMonth.get(key) ?? NOTHING
    const othersDay = this.othersDay.get(key) ?? NOTHING
    const othersMonth = this.othersMonth.get(key) ?? NOTHING
    return {
      day: windows.day,
      month: windows.month,
      dayTokens: ownDay.tokens + othersDay.tokens,
      dayRequests: ownDay.requests + othersDay.requests,
      monthTokens: ownMonth.tokens + othersMonth.tokens,
      monthRequests: ownMonth.requests + othersMonth.requests,
      dayEndsAt: windows.dayEnd,
      monthEndsAt: windows.monthEnd
    }
  }

  private rollOver (now: number): void {
    const next = calendarWindows(now, this.timeZone)
    if (next.month !== this.windows.month) {
      this.ownMonth = new Map()
      this.othersMonth = new Map()
    }
    this.ownDay = new Map()
    this.othersDay = new Map()
    this.windows = next
  }
}
