import assert from 'node:assert/strict'
import { test } from 'node:test'
import { budgetHeaders } from '../plugins/usage/budget-headers.js'
import { checkBudgets, type KeyBudgets, type SpentTotals } from '../plugins/usage/budgets.js'
import { CurrentTotals } from '../plugins/usage/current-totals.js'

const NOW = Date.parse('2026-06-15T12:00:00Z')
const DAY_END = Date.parse('2026-06-16T00:00:00Z') // 43200 s away
const MONTH_END = Date.parse('2026-07-01T00:00:00Z') // 1339200 s away

function spent (dayTokens: number, monthTokens: number, dayRequests: number): SpentTotals {
  return { day: '2026-06-15', month: '2026-06', dayTokens, dayRequests, monthTokens, monthRequests: dayRequests, dayEndsAt: DAY_END, monthEndsAt: MONTH_END }
}

const NONE: KeyBudgets = { tokensPerDay: null, tokensPerMonth: null, requestsPerDay: null }
const ALL: KeyBudgets = { tokensPerDay: 1000, tokensPerMonth: 5000, requestsPerDay: 10 }

const CASES: Array<{ why: string, budgets: KeyBudgets, spent: SpentTotals, refusal?: { budget: string, message: string, retryAfterSeconds: number } }> = [
  { why: 'no budgets: always allowed', budgets: NONE, spent: spent(10 ** 9, 10 ** 9, 10 ** 6) },
  { why: 'below every budget', budgets: ALL, spent: spent(999, 4999, 9) },
  { why: 'daily tokens reached exactly', budgets: ALL, spent: spent(1000, 1000, 1), refusal: { budget: 'tokens_per_day', message: 'daily token budget of student-17 is spent', retryAfterSeconds: 43200 } },
  { why: 'daily tokens overshot by a request that was running', budgets: ALL, spent: spent(1500, 1500, 1), refusal: { budget: 'tokens_per_day', message: 'daily token budget of student-17 is spent', retryAfterSeconds: 43200 } },
  { why: 'daily requests spent', budgets: ALL, spent: spent(0, 0, 10), refusal: { budget: 'requests_per_day', message: 'daily request budget of student-17 is spent', retryAfterSeconds: 43200 } },
  { why: 'monthly tokens spent', budgets: ALL, spent: spent(0, 5000, 0), refusal: { budget: 'tokens_per_month', message: 'monthly token budget of student-17 is spent', retryAfterSeconds: 1339200 } },
  { why: 'daily and monthly spent: the month decides when to retry', budgets: ALL, spent: spent(1000, 5000, 10), refusal: { budget: 'tokens_per_month', message: 'monthly token budget of student-17 is spent', retryAfterSeconds: 1339200 } },
  { why: 'a budget of 0 refuses from the start', budgets: { ...NONE, requestsPerDay: 0 }, spent: spent(0, 0, 0), refusal: { budget: 'requests_per_day', message: 'daily request budget of student-17 is spent', retryAfterSeconds: 43200 } },
  { why: 'only a monthly budget: daily totals do not matter', budgets: { ...NONE, tokensPerMonth: 5000 }, spent: spent(4000, 4000, 500) }
]

for (const row of CASES) {
  test(`checkBudgets: ${row.why}`, () => {
    const decision = checkBudgets('student-17', row.budgets, row.spent, NOW)
    if (row.refusal === undefined) {
      assert.equal(decision.allowed, true)
    } else {
      assert.equal(decision.allowed, false)
      assert.ok(!decision.allowed)
      assert.deepEqual(decision.refusal, row.refusal)
    }
  })
}

test('checkBudgets: remaining lists every configured budget with limit, remaining and reset, in both outcomes', () => {
  const allowed = checkBudgets('k', ALL, spent(400, 4800, 3), NOW)
  assert.deepEqual(allowed.remaining, [
    { budget: 'tokens_per_day', limit: 1000, remaining: 600, resetSeconds: 43200, resetsAt: DAY_END },
    { budget: 'tokens_per_month', limit: 5000, remaining: 200, resetSeconds: 1339200, resetsAt: MONTH_END },
    { budget: 'requests_per_day', limit: 10, remaining: 7, resetSeconds: 43200, resetsAt: DAY_END }
  ])
  const refused = checkBudgets('k', ALL, spent(1200, 4800, 3), NOW)
  assert.equal(refused.allowed, false)
  assert.equal(refused.remaining[0].remaining, 0, 'never below 0')
  assert.deepEqual(checkBudgets('k', NONE, spent(1, 1, 1), NOW), { allowed: true, remaining: [] })
  // A second before the end: Retry-After 1, not 0.
  const late = checkBudgets('k', ALL, spent(1000, 0, 0), DAY_END - 200)
  assert.ok(!late.allowed && late.refusal.retryAfterSeconds === 1)
})

test('CurrentTotals: own and other replicas add up; day and month roll over with the clock', () => {
  let now = Date.parse('2026-01-31T22:30:00Z') // 23:30 in Berlin, the last day of January
  const totals = new CurrentTotals('Europe/Berlin', () => now)
  totals.loadOwn('2026-01-31', 'a', 2, 200)
  totals.loadOwn('2026-01-10', 'a', 1, 100)
  totals.loadOwn('2025-12-31', 'a', 50, 5000) // another month: not loaded
  totals.addOwn('a', now, 1, 10)
  totals.addOwn('a', Date.parse('2026-01-30T12:00:00Z'), 1, 1) // earlier this month: month only
  totals.setOthers('2026-01-31', '2026-01', new Map([['a', { requests: 5, tokens: 500 }]]), new Map([['a', { requests: 7, tokens: 700 }]]))
  totals.setOthers('2026-01-30', '2025-12', new Map([['a', { requests: 99, tokens: 9999 }]]), new Map([['a', { requests: 99, tokens: 9999 }]])) // stale: ignored
  assert.deepEqual(totals.spent('a'), {
    day: '2026-01-31',
    month: '2026-01',
    dayTokens: 200 + 10 + 500,
    dayRequests: 2 + 1 + 5,
    monthTokens: 200 + 100 + 10 + 1 + 700,
    monthRequests: 2 + 1 + 1 + 1 + 7,
    dayEndsAt: Date.parse('2026-01-31T23:00:00Z'),
    monthEndsAt: Date.parse('2026-01-31T23:00:00Z')
  })
  assert.equal(totals.spent('nobody').monthTokens, 0)

  now = Date.parse('2026-01-31T23:00:00Z') // Berlin midnight: February 1st
  const february = totals.spent('a')
  assert.deepEqual([february.day, february.month, february.dayTokens, february.monthTokens, february.dayRequests], ['2026-02-01', '2026-02', 0, 0, 0])
  totals.addOwn('a', now, 1, 40)

  now = Date.parse('2026-02-01T23:00:00Z') // February 2nd: the day starts again, the month keeps counting
  totals.addOwn('a', now, 1, 2)
  const second = totals.spent('a')
  assert.deepEqual([second.day, second.dayTokens, second.monthTokens, second.monthRequests], ['2026-02-02', 2, 42, 2])

  now = Date.parse('2026-02-01T12:00:00Z') // the clock stepped back: the finished day is not opened again
  assert.equal(totals.spent('a').day, '2026-02-02')
})

test('budgetHeaders: RateLimit fields per budget; a quota past 15 digits is the largest structured field integer', () => {
  const budget = (name: 'tokens_per_day' | 'tokens_per_month', limit: number, remaining: number) => ({ budget: name, limit, remaining, resetSeconds: 60, resetsAt: 0 })
  assert.deepEqual(budgetHeaders([budget('tokens_per_day', 200000, 150000), budget('tokens_per_month', 9007199254740991, 9007199254740000)], 2_678_400), {
    'ratelimit-policy': '"tokens_per_day";q=200000;w=86400, "tokens_per_month";q=999999999999999;w=2678400',
    ratelimit: '"tokens_per_day";r=150000;t=60, "tokens_per_month";r=999999999999999;t=60'
  })
  assert.deepEqual(budgetHeaders([], 2_678_400), {})
})
