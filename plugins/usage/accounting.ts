import fp from 'fastify-plugin'
import type { ApiKey } from '../auth/keys.js'
import { displayModelName, normaliseModel } from '../auth/model-names.js'
import type { Exchange } from '../http/exchange.js'
import { checkBudgets, type BudgetDecision, type KeyBudgets, type SpentTotals } from './budgets.js'
import { calendarWindows, dayOf } from './calendar.js'
import { parseReportQuery, type ReportQueryText, type UsageReport } from './usage-report.js'
import { redisSharing, UsageStore } from './usage-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Durable usage: budgets, reports, each key's day and month (see UsageAccounts). */
    usage: UsageAccounts
  }
}

/** What one key used in the current day and month (tokens: prompt + completion), on every replica. */
export interface KeyUsage {
  day: { tokens: number, requests: number }
  month: { tokens: number, requests: number }
}

const NO_BUDGETS: KeyBudgets = { tokensPerDay: null, tokensPerMonth: null, requestsPerDay: null }

/**
 * Each key's usage over time, on the durable store (usage-store.ts): the budgets a request is
 * checked against (spent so far on every replica, plus the requests of the key still running
 * here, so concurrent requests cannot overrun `requests_per_day`), and what it used.
 */
export class UsageAccounts {
  /** Requests admitted but not yet recorded, per key: counted against requests_per_day meanwhile. */
  private readonly running = new Map<string, number>()
  private month: { endsAt: number, seconds: number } = { endsAt: 0, seconds: 0 }

  constructor (readonly store: UsageStore, private readonly clock: () => number, private readonly timezone: string) {}

  /**
   * The key's budgets that apply to this work and where they stand, or undefined when it has
   * none: token budgets only bind work that runs a model; requests_per_day binds every request.
   */
  decide (key: ApiKey, runsModel: boolean, now: number): BudgetDecision | undefined {
    const { tokensPerDay, tokensPerMonth, requestsPerDay } = key.limits
    if (requestsPerDay === null && (!runsModel || (tokensPerDay === null && tokensPerMonth === null))) return undefined
    const budgets: KeyBudgets = runsModel ? { tokensPerDay, tokensPerMonth, requestsPerDay } : { ...NO_BUDGETS, requestsPerDay }
    return checkBudgets(key.name, budgets, this.spentWithRunning(key.name), now)
  }

  /** The exchange's request counts from now on (its key's daily requests include it while it runs). */
  admit (exchange: Exchange): void {
    const name = exchange.key!.name
    this.running.set(name, (this.running.get(name) ?? 0) + 1)
    exchange.countsUsage = true
  }

  /**
   * Records an admitted exchange's request and tokens when it ends, its model only when it was
   * answered below 400; see the account stage below.
   */
  settle (exchange: Exchange): void {
    if (!exchange.countsUsage) return
    exchange.countsUsage = false
    const name = exchange.key!.name
    const left = (this.running.get(name) ?? 1) - 1
    if (left <= 0) this.running.delete(name)
    else this.running.set(name, left)
    const usage = exchange.usage
    // The model is named only when it was answered: the names of models that do not exist (404)
    // are the client's to choose, and would fill the store's table of names for good.
    const response = exchange.reply.raw
    const answered = response.headersSent && response.statusCode < 400
    this.store.record({
      key: name,
      model: exchange.model === undefined || !answered ? '' : displayModelName(exchange.model),
      host: exchange.upstream?.host ?? '',
      promptTokens: usage?.promptTokens ?? 0,
      completionTokens: usage?.completionTokens ?? 0
    })
  }

  /** The key's day and month so far (this replica's running requests included). */
  spentWithRunning (name: string): SpentTotals {
    const spent = this.store.spent(name)
    const running = this.running.get(name) ?? 0
    return running === 0 ? spent : { ...spent, dayRequests: spent.dayRequests + running, monthRequests: spent.monthRequests + running }
  }

  /** Seconds of the calendar month `now` (ms) falls in, in the usage time zone. */
  monthSeconds (now: number): number {
    if (now >= this.month.endsAt) {
      const windows = calendarWindows(now, this.timezone)
      this.month = { endsAt: windows.monthEnd, seconds: Math.round((windows.monthEnd - windows.monthStart) / 1000) }
    }
    return this.month.seconds
  }

  /** What `name` used today and this month, every replica together. */
  keyUsage (name: string): KeyUsage {
    const spent = this.store.spent(name)
    return { day: { tokens: spent.dayTokens, requests: spent.dayRequests }, month: { tokens: spent.monthTokens, requests: spent.monthRequests } }
  }

  /**
   * The report for `GET /proxy/usage` and the `usage` command: `since`/`until` (YYYY-MM-DD or
   * `7d`), `by` (comma-separated key, model, host, day). Rejects with RangeError naming the field.
   */
  async report (text: ReportQueryText): Promise<UsageReport> {
    const query = parseReportQuery(text, dayOf(this.clock(), this.timezone))
    return (await this.store.report(query)).report
  }
}

/**
 * Stage 8, account: when an exchange ends, the tokens its answer cost (Ollama's counts, or the
 * estimate of usage-meter.ts, marked `estimated`) go on the exchange (and so on its log line),
 * into the key's minute token window, the token metrics, Redis's shared usage counters and the
 * durable usage store (budgets and reports). Every successful inference answer is charged once,
 * whether it completed or the client left; error answers cost nothing.
 * Opening the store fails the start with a UsageStoreError naming the path or field.
 */
export default fp(async function accountingPlugin (fastify) {
  const settings = fastify.config.usage
  const sharing = await redisSharing(fastify.config.redis, settings.retentionDays)
  const store = UsageStore.open({ file: settings.database, timezone: settings.timezone, retentionDays: settings.retentionDays, now: fastify.clock, sharing, log: fastify.log })
  const accounts = new UsageAccounts(store, fastify.clock, settings.timezone)
  fastify.decorate('usage', accounts)
  fastify.addHook('onClose', async () => { await store.close() })

  fastify.exchangeServices.account = function account (exchange: Exchange) {
    const meter = exchange.meter
    if (meter !== undefined) {
      exchange.meter = undefined
      const usage = meter.usage(exchange.outcome === 'finished')
      exchange.usage = usage
      const key = exchange.key
      const total = usage.promptTokens + usage.completionTokens
      if (key !== undefined && key.limits.tokensPerMinute !== null && total > 0) fastify.chargeTokens(key.name, total)
      const model = exchange.model === undefined ? 'other' : normaliseModel(exchange.model)
      fastify.metrics.recordTokens(key?.name ?? 'none', model, usage)
      fastify.limitWindows.recordUsage?.(key?.name ?? 'none', model, usage.promptTokens, usage.completionTokens)
    }
    accounts.settle(exchange)
  }
}, { name: 'usage', fastify: '5.x', dependencies: ['exchange', 'config'] })
