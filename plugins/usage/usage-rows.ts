import type Database from 'better-sqlite3'
import { addToCell, CELL_SPAN, decodeCells, encodeCells, forEachCell, type CellCounts, type NamedCell } from './packed-counts.js'
import type { NameTables, OpenedDatabase } from './usage-database.js'

/** Counts waiting in memory for one key on one day (day = days since 1970-01-01 of the local date). */
export interface PendingRow {
  day: number
  key: string
  /** the latest instant counted, ms since the epoch */
  lastUsedAt: number
  /** model -> host -> counts */
  cells: Map<string, Map<string, CellCounts>>
}

/** A row's sum over its models and hosts. */
export interface RowTotals extends CellCounts {
  day: number
  key: string
}

/** A row Redis has not received in its current state yet, with its cells by name. */
export interface OutboxRow {
  day: number
  keyId: number
  key: string
  generation: number
  cells: NamedCell[]
  totals: CellCounts
  lastUsedAt: number
}

/** The queries of the usage database, on ids and packed cells (usage-database.ts has the schema). */
export class UsageRows {
  private readonly db: Database.Database
  private readonly statements: Record<'cells' | 'upsert' | 'touchKey' | 'outbox' | 'range' | 'keysLastUsed', Database.Statement>

  constructor (private readonly opened: OpenedDatabase) {
    this.db = opened.db
    const prepare = (sql: string) => this.db.prepare(sql)
    this.statements = {
      cells: prepare('SELECT cells FROM daily_usage WHERE day = ? AND key_id = ?').pluck(),
      upsert: prepare('INSERT INTO daily_usage (day, key_id, cells) VALUES (?, ?, ?) ON CONFLICT (day, key_id) DO UPDATE SET cells = excluded.cells'),
      touchKey: prepare('UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?'),
      outbox: prepare('INSERT INTO redis_outbox (day, key_id, generation) VALUES (?, ?, ?) ON CONFLICT (day, key_id) DO UPDATE SET generation = excluded.generation'),
      range: prepare('SELECT day, key_id, cells FROM daily_usage WHERE day BETWEEN ? AND ?').raw(),
      keysLastUsed: prepare('SELECT name, last_used_at FROM api_keys WHERE last_used_at IS NOT NULL').raw()
    }
  }

  /**
   * Adds pending counts to their rows in one transaction; with `generation`, lists each row changed
   * in the Redis outbox. Throws (nothing written, name ids forgotten) when SQLite fails.
   */
  apply (rows: Iterable<PendingRow>, generation?: number): void {
    const { keys, models, hosts } = this.opened.names
    const marks = [keys.highestId, models.highestId, hosts.highestId]
    try {
      this.db.transaction(() => {
        for (const row of rows) {
          const keyId = keys.idOf(row.key)
          const stored = this.statements.cells.get(row.day, keyId) as Buffer | undefined
          const cells = stored === undefined ? new Map<number, CellCounts>() : decodeCells(stored)
          for (const [model, byHost] of row.cells) {
            const modelId = models.idOf(model)
            for (const [host, counts] of byHost) addToCell(cells, modelId * CELL_SPAN + hosts.idOf(host), counts)
          }
          this.statements.upsert.run(row.day, keyId, encodeCells(cells))
          this.statements.touchKey.run(row.lastUsedAt, keyId)
          if (generation !== undefined) this.statements.outbox.run(row.day, keyId, generation)
        }
      }).immediate()
    } catch (err) {
      keys.rollBackTo(marks[0])
      models.rollBackTo(marks[1])
      hosts.rollBackTo(marks[2])
      throw err
    }
  }

  /** Each key's sum per day from `fromDay` to `toDay` (day numbers, inclusive). */
  totals (fromDay: number, toDay: number): RowTotals[] {
    const totals: RowTotals[] = []
    for (const [day, keyId, blob] of this.statements.range.iterate(fromDay, toDay) as Iterable<[number, number, Buffer]>) {
      const sum = { day, key: this.opened.names.keys.nameOf(keyId), requests: 0, promptTokens: 0, completionTokens: 0 }
      forEachCell(blob, (_model, _host, requests, promptTokens, completionTokens) => {
        sum.requests += requests
        sum.promptTokens += promptTokens
        sum.completionTokens += completionTokens
      })
      totals.push(sum)
    }
    return totals
  }

  /** Calls `visit` for every row from `fromDay` to `toDay` (day numbers, inclusive) with its packed cells. */
  visitRows (fromDay: number, toDay: number, visit: (day: number, keyId: number, cells: Buffer) => void): void {
    for (const [day, keyId, cells] of this.statements.range.iterate(fromDay, toDay) as Iterable<[number, number, Buffer]>) visit(day, keyId, cells)
  }

  /** The name tables, to read the ids of visitRows. */
  get names (): NameTables {
    return this.opened.names
  }

  /** When each key was last counted (ms since the epoch). */
  lastUsed (): Map<string, number> {
    return new Map(this.statements.keysLastUsed.all() as Array<[string, number]>)
  }

  /** Deletes the rows (and their outbox entries) of days before `day` (a day number); returns how many rows went. */
  deleteBefore (day: number): number {
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM redis_outbox WHERE day < ?').run(day)
      return this.db.prepare('DELETE FROM daily_usage WHERE day < ?').run(day).changes
    }).immediate()
  }

  /** Up to `limit` rows of the Redis outbox, oldest day first, with their cells by name. */
  outbox (limit: number): OutboxRow[] {
    const { keys, models, hosts } = this.opened.names
    const rows = this.db.prepare(`
      SELECT o.day, o.key_id, o.generation, u.cells, k.last_used_at
      FROM redis_outbox o JOIN daily_usage u USING (day, key_id) JOIN api_keys k ON k.id = o.key_id
      ORDER BY o.day, o.key_id LIMIT ?`).raw().all(limit) as Array<[number, number, number, Buffer, number | null]>
    return rows.map(([day, keyId, generation, blob, lastUsedAt]) => {
      const cells: NamedCell[] = []
      const totals = { requests: 0, promptTokens: 0, completionTokens: 0 }
      forEachCell(blob, (model, host, requests, promptTokens, completionTokens) => {
        cells.push({ model: models.nameOf(model), host: hosts.nameOf(host), requests, promptTokens, completionTokens })
        totals.requests += requests
        totals.promptTokens += promptTokens
        totals.completionTokens += completionTokens
      })
      return { day, keyId, key: keys.nameOf(keyId), generation, cells, totals, lastUsedAt: lastUsedAt ?? 0 }
    })
  }

  /** Takes rows Redis now holds off the outbox, unless they changed again since they were read. */
  clearOutbox (rows: OutboxRow[]): void {
    const remove = this.db.prepare('DELETE FROM redis_outbox WHERE day = ? AND key_id = ? AND generation = ?')
    this.db.transaction(() => {
      for (const row of rows) remove.run(row.day, row.keyId, row.generation)
    }).immediate()
  }

  /** Lists every row in the outbox (Redis lost its copy, or never had it). */
  markAllForRedis (generation: number): void {
    this.db.prepare(`INSERT INTO redis_outbox (day, key_id, generation) SELECT day, key_id, ? FROM daily_usage WHERE true
      ON CONFLICT (day, key_id) DO UPDATE SET generation = excluded.generation`).run(generation)
  }

  /** The highest generation in the outbox (0 when empty), so a restart continues above it. */
  highestGeneration (): number {
    return (this.db.prepare('SELECT coalesce(max(generation), 0) FROM redis_outbox').pluck().get() as number)
  }
}
