import { secondsUntil } from './calendar.js'

/** A key's budgets (auth.keys[].limits.tokens_per_day, .tokens_per_month, .requests_per_day); null = none. */
export interface KeyBudgets {
  tokensPerDay: number | null
  tokensPerMonth: number | null
  requestsPerDay: number | null
}

/** What a key has spent in the current local day and month, and when those end. */
export interface SpentTotals {
  /** local date YYYY-MM-DD and month YYYY-MM the totals belong to */
  day: string
  month: string
  /** tokens = prompt + completion */
  dayTokens: number
  dayRequests: number
  monthTokens: number
  monthRequests: number
  /** first instant of the next day / month, ms since the epoch */
  dayEndsAt: number
  monthEndsAt: number
}

export type BudgetName = 'tokens_per_day' | 'tokens_per_month' | 'requests_per_day'

/** How much of one budget is left, for the RateLimit headers and GET /proxy/me. */
export interface BudgetRemaining {
  budget: BudgetName
  limit: number
  /** limit minus spent, never below 0 */
  remaining: number
  /** whole seconds until the window ends and the budget is whole again */
  resetSeconds: number
  /** the instant the window ends, ms since the epoch */
  resetsAt: number
}

/** A spent budget: the request is refused up front (429 with Retry-After: retryAfterSeconds). */
export interface BudgetRefusal {
  budget: BudgetName
  /** e.g. "daily token budget of student-17 is spent" */
  message: string
  /** whole seconds until every spent budget is whole again (at least 1) */
  retryAfterSeconds: number
}

export type BudgetDecision =
  | { allowed: true, remaining: BudgetRemaining[] }
  | { allowed: false, refusal: BudgetRefusal, remaining: BudgetRemaining[] }

const WORDING: Record<BudgetName, string> = {
  tokens_per_day: 'daily token budget',
  tokens_per_month: 'monthly token budget',
  requests_per_day: 'daily request budget'
}

/**
 * Whether key `keyName` may start a request, given its budgets and what it has spent (`now` in
 * ms since the epoch). A budget is spent when its total has reached its limit (a limit of 0
 * refuses everything). When several are spent, the refusal names the one whose window ends last,
 * so Retry-After points at the moment a request can pass. `remaining` lists every configured
 * budget in either case (an empty list when the key has none). Pure: no I/O, no clock.
 */
export function checkBudgets (keyName: string, budgets: KeyBudgets, spent: SpentTotals, now: number): BudgetDecision {
  const windows: Array<[BudgetName, number | null, number, number]> = [
    ['tokens_per_day', budgets.tokensPerDay, spent.dayTokens, spent.dayEndsAt],
    ['tokens_per_month', budgets.tokensPerMonth, spent.monthTokens, spent.monthEndsAt],
    ['requests_per_day', budgets.requestsPerDay, spent.dayRequests, spent.dayEndsAt]
  ]
  const remaining: BudgetRemaining[] = []
  let refusal: BudgetRefusal | undefined
  for (const [budget, limit, used, endsAt] of windows) {
    if (limit === null) continue
    const resetSeconds = secondsUntil(endsAt, now)
    remaining.push({ budget, limit, remaining: Math.max(0, limit - used), resetSeconds, resetsAt: endsAt })
    if (used >= limit && (refusal === undefined || resetSeconds > refusal.retryAfterSeconds)) {
      refusal = { budget, message: `${WORDING[budget]} of ${keyName} is spent`, retryAfterSeconds: resetSeconds }
    }
  }
  return refusal === undefined ? { allowed: true, remaining } : { allowed: false, refusal, remaining }
}
