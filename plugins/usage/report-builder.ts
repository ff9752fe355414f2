import { dayFromNumber } from './calendar.js'

/** What a report may group by. */
export const REPORT_FIELDS = ['key', 'model', 'host', 'day'] as const
export type ReportField = typeof REPORT_FIELDS[number]

/** One group: only the `by` fields are present. The JSON shape of GET /proxy/usage and `usage --format json`. */
export interface UsageReportRow {
  key?: string
  model?: string
  host?: string
  day?: string
  requests: number
  prompt_tokens: number
  completion_tokens: number
}

/** Indexes of names and days are below this; two of them make one map key. */
const SPAN = 2 ** 20

/** Names of one field and their indexes in this report. */
class Names {
  private readonly indexes = new Map<string, number>()
  readonly list: string[] = []

  index (name: string): number {
    let index = this.indexes.get(name)
    if (index === undefined) {
      if (this.list.length >= SPAN) throw new RangeError('too many distinct names for one report')
      index = this.list.length
      this.list.push(name)
      this.indexes.set(name, index)
    }
    return index
  }

  /** Each index's place in the names sorted by UTF-16 code units (the same in every locale). */
  ranks (): number[] {
    const ranks: number[] = []
    this.list.map((name, index) => [name, index] as const)
      .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
      .forEach(([, index], rank) => { ranks[index] = rank })
    return ranks
  }
}

/** The sums of one (day, key) group, by (model, host) group. */
export type RowGroup = Map<number, number[]>

/**
 * Sums cells into the groups of a report with numbers only: names become indexes once, and a
 * group is a map key made of two of them, because a long report visits millions of cells.
 */
export class ReportBuilder {
  private readonly names = { key: new Names(), model: new Names(), host: new Names() }
  private readonly groups = new Map<number, RowGroup>()
  private readonly uses: Record<ReportField, boolean>

  constructor (private readonly by: ReportField[]) {
    this.uses = { key: by.includes('key'), model: by.includes('model'), host: by.includes('host'), day: by.includes('day') }
  }

  /** The index of a key, model or host name in this report. */
  index (field: 'key' | 'model' | 'host', name: string): number {
    return this.names[field].index(name)
  }

  /** The group for `day` (days since 1970-01-01) and a key index; add its cells with addCell. */
  row (day: number, key: number): RowGroup {
    const id = (this.uses.day ? day : 0) * SPAN + (this.uses.key ? key : 0)
    let group = this.groups.get(id)
    if (group === undefined) this.groups.set(id, group = new Map())
    return group
  }

  addCell (group: RowGroup, model: number, host: number, requests: number, promptTokens: number, completionTokens: number): void {
    const id = (this.uses.model ? model : 0) * SPAN + (this.uses.host ? host : 0)
    const sums = group.get(id)
    if (sums === undefined) {
      group.set(id, [requests, promptTokens, completionTokens])
      return
    }
    sums[0] += requests
    sums[1] += promptTokens
    sums[2] += completionTokens
  }

  /** The groups with only the `by` fields, sorted by those fields in the order given. */
  rows (): UsageReportRow[] {
    const ranks = { key: this.names.key.ranks(), model: this.names.model.ranks(), host: this.names.host.ranks() }
    const sorted: Array<{ order: number[], row: UsageReportRow }> = []
    for (const [outer, group] of this.groups) {
      const day = Math.floor(outer / SPAN)
      const key = outer % SPAN
      for (const [inner, [requests, promptTokens, completionTokens]] of group) {
        const model = Math.floor(inner / SPAN)
        const host = inner % SPAN
        const row = {} as UsageReportRow
        if (this.uses.key) row.key = this.names.key.list[key]
        if (this.uses.model) row.model = this.names.model.list[model]
        if (this.uses.host) row.host = this.names.host.list[host]
        if (this.uses.day) row.day = dayFromNumber(day)
        row.requests = requests
        row.prompt_tokens = promptTokens
        row.completion_tokens = completionTokens
        const place = { key: ranks.key[key], model: ranks.model[model], host: ranks.host[host], day }
        sorted.push({ order: this.by.map(field => place[field]), row })
      }
    }
    sorted.sort((a, b) => {
      for (let i = 0; i < a.order.length; i++) {
        if (a.order[i] !== b.order[i]) return a.order[i] - b.order[i]
      }
      return 0
    })
    return sorted.map(entry => entry.row)
  }
}
