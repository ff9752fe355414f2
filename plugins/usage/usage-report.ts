import { dayFromNumber, dayNumber, isDay } from './calendar.js'
import { forEachCell, forEachNamedCell } from './packed-counts.js'
import { REPORT_FIELDS, ReportBuilder, type ReportField, type UsageReportRow } from './report-builder.js'
import type { SharedUsage } from './shared-usage.js'
import type { UsageRows } from './usage-rows.js'

export { REPORT_FIELDS, type ReportField, type UsageReportRow }

/** A report's days (local dates YYYY-MM-DD, both included) and grouping (an empty `by` sums everything). */
export interface UsageReportQuery {
  since: string
  until: string
  by: ReportField[]
}

export interface UsageReport {
  since: string
  until: string
  rows: UsageReportRow[]
}

/**
 * A report and where its counts come from: 'unused' (no Redis configured: this store holds all
 * the traffic), 'included' (the other replicas' traffic came from Redis) or 'unreachable'
 * (Redis is configured but failed: the rows hold this replica's traffic only).
 */
export interface UsageReportResult {
  report: UsageReport
  redis: 'unused' | 'included' | 'unreachable'
}

/** Checks a query: real dates, since <= until, known and distinct `by` fields. Throws RangeError naming the field. */
export function checkReportQuery (query: UsageReportQuery): void {
  if (!isDay(query.since)) throw new RangeError(`since: expected a date YYYY-MM-DD, got ${JSON.stringify(query.since)}`)
  if (!isDay(query.until)) throw new RangeError(`until: expected a date YYYY-MM-DD, got ${JSON.stringify(query.until)}`)
  if (query.since > query.until) throw new RangeError(`since (${query.since}) is after until (${query.until})`)
  for (const field of query.by) {
    if (!(REPORT_FIELDS as readonly string[]).includes(field)) throw new RangeError(`by: unknown field ${JSON.stringify(field)}; use ${REPORT_FIELDS.join(', ')}`)
  }
  if (new Set(query.by).size !== query.by.length) throw new RangeError('by: a field is named twice')
}

/**
 * The report of `query` (checked with checkReportQuery): this database's rows, plus the other
 * replicas' from Redis when `shared` is given. Redis failing is not an error: the result says so.
 */
export async function buildReport (rows: UsageRows, shared: SharedUsage | undefined, query: UsageReportQuery): Promise<UsageReportResult> {
  checkReportQuery(query)
  const builder = new ReportBuilder(query.by)
  const first = dayNumber(query.since)
  const last = dayNumber(query.until)
  // The database's ids to the report's indexes, each name looked up once.
  const { keys, models, hosts } = rows.names
  const keyIndex: number[] = []
  const modelIndex: number[] = []
  const hostIndex: number[] = []
  rows.visitRows(first, last, (day, keyId, cells) => {
    const group = builder.row(day, keyIndex[keyId] ??= builder.index('key', keys.nameOf(keyId)))
    forEachCell(cells, (model, host, requests, promptTokens, completionTokens) => {
      builder.addCell(group, modelIndex[model] ??= builder.index('model', models.nameOf(model)), hostIndex[host] ??= builder.index('host', hosts.nameOf(host)), requests, promptTokens, completionTokens)
    })
  })
  let redis: UsageReportResult['redis'] = 'unused'
  if (shared !== undefined) {
    const ok = await shared.visitOthers(first, last, (day, key, cells) => {
      const group = builder.row(dayNumber(day), builder.index('key', key))
      forEachNamedCell(cells, (modelNames, hostNames) => {
        const models = modelNames.map(name => builder.index('model', name))
        const hosts = hostNames.map(name => builder.index('host', name))
        return (model, host, requests, promptTokens, completionTokens) => builder.addCell(group, models[model], hosts[host], requests, promptTokens, completionTokens)
      })
    })
    redis = ok ? 'included' : 'unreachable'
    // Rows visited before a failure would make a partial mix: start again from this database alone.
    if (!ok) return await buildReport(rows, undefined, query).then(result => ({ ...result, redis }))
  }
  return { report: { since: query.since, until: query.until, rows: builder.rows() }, redis }
}

/** A report query as text: the CLI's flags, or the query string of GET /proxy/usage. */
export interface ReportQueryText {
  /** YYYY-MM-DD, or Nd: the N days ending today (7d = today and the 6 days before) */
  since?: string
  until?: string
  /** comma-separated fields; "" sums everything in one row */
  by?: string
}

export const DEFAULT_SINCE = '7d'
export const DEFAULT_BY: ReportField[] = ['key', 'model']

function parseDay (text: string, today: string, field: string): string {
  const days = /^([1-9]\d{0,4})d$/.exec(text)
  if (days !== null) return dayFromNumber(dayNumber(today) - Number(days[1]) + 1)
  if (isDay(text)) return text
  throw new RangeError(`${field}: expected a date YYYY-MM-DD or a number of days such as 7d, got ${JSON.stringify(text)}`)
}

/**
 * A query from text, `today` being the local date (YYYY-MM-DD) in the store's time zone.
 * Defaults: since 7d, until today, by key,model. Throws RangeError naming the field.
 */
export function parseReportQuery (text: ReportQueryText, today: string): UsageReportQuery {
  const by = text.by === undefined ? DEFAULT_BY : text.by.split(',').map(field => field.trim()).filter(Boolean) as ReportField[]
  const query = { since: parseDay(text.since ?? DEFAULT_SINCE, today, 'since'), until: parseDay(text.until ?? today, today, 'until'), by }
  checkReportQuery(query)
  return query
}
