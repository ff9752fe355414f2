import type { BudgetRemaining } from './budgets.js'

/** The window (seconds) a budget's quota covers, for RateLimit-Policy `w`: a day, or the calendar month it is in. */
function windowSeconds (budget: BudgetRemaining, monthSeconds: number): number {
  return budget.budget === 'tokens_per_month' ? monthSeconds : 86_400
}

/** A structured field integer has at most 15 digits (RFC 8941 3.3.1); a larger budget is shown as that. */
const MAX_SF_INTEGER = 999_999_999_999_999
const sfInteger = (n: number): number => Math.min(n, MAX_SF_INTEGER)

/**
 * The RateLimit fields of the IETF draft (draft-ietf-httpapi-ratelimit-headers, structured field
 * lists) for a key's budgets: `RateLimit-Policy` names each budget with its quota `q` and window
 * `w` (seconds), `RateLimit` what remains of it `r` and the seconds until it is whole again `t`:
 *   RateLimit-Policy: "tokens_per_day";q=200000;w=86400
 *   RateLimit: "tokens_per_day";r=150000;t=3600
 * The minute limits keep their RateLimit-Limit/-Remaining/-Reset fields. `monthSeconds` is the
 * length of the current month window; quotas past 15 digits are shown as 999999999999999 (RFC
 * 8941 integers). Empty when there is no budget.
 */
export function budgetHeaders (remaining: readonly BudgetRemaining[], monthSeconds: number): Record<string, string> {
  if (remaining.length === 0) return {}
  return {
    'ratelimit-policy': remaining.map(b => `"${b.budget}";q=${sfInteger(b.limit)};w=${windowSeconds(b, monthSeconds)}`).join(', '),
    ratelimit: remaining.map(b => `"${b.budget}";r=${sfInteger(b.remaining)};t=${b.resetSeconds}`).join(', ')
  }
}
