import { EventEmitter } from 'node:events'
import { checkTimeZone, dayFromNumber, dayNumber, dayOf, type CalendarWindows } from './calendar.js'
import type { SpentTotals } from './budgets.js'
import { CurrentTotals } from './current-totals.js'
import type { SharedUsage, SharingFactory, UsageLogger } from './shared-usage.js'
import { closeDatabase, openDatabase, readMeta, UsageStoreError, writeMeta, type OpenedDatabase } from './usage-database.js'
import { buildReport, type UsageReportQuery, type UsageReportResult } from './usage-report.js'
import { UsageRows, type PendingRow } from './usage-rows.js'

export interface UsageStoreOptions {
  /** the SQLite database; created with its folder when absent */
  file: string
  /** IANA time zone where days and months begin (usage.timezone) */
  timezone: string
  /** whole days kept (usage.retention_days); older rows are deleted at open and daily */
  retentionDays: number
  /** the clock, ms since the epoch (tests inject one) */
  now?: () => number
  /** ms between flushes; 1000 unless given */
  flushIntervalMs?: number
  /** shares budgets and reports with the other replicas (redis.url): see redisSharing */
  sharing?: SharingFactory
  log?: UsageLogger
}

/** One answer's usage. Counts are whole numbers from 0 to 2^53. */
export interface UsageEntry {
  /** the key's name (auth.keys[].name), never the secret */
  key: string
  model: string
  /** the Ollama host that answered (its upstream name) */
  host: string
  promptTokens: number
  completionTokens: number
  /** 1 unless given (0 adds tokens to a request counted before) */
  requests?: number
  /** when it was used, ms since the epoch; now unless given */
  at?: number
}

export interface UsageStoreEvents {
  /** after each write of pending counts: how many key x day rows it changed */
  flush: [{ rows: number }]
  /** after each exchange with Redis: whether Redis answered, and how many rows it received */
  sync: [{ ok: boolean, rows: number }]
}

const ROWS_PER_SYNC = 500
/** Round trips one sync may make to empty the outbox; the rest waits for the next flush. */
const MAX_SYNC_ROUNDS = 20
const NO_LOG: UsageLogger = { info () {}, warn () {}, error () {} }

function checkCount (value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`usage ${field}: expected a whole number from 0 to 2^53, got ${value}`)
  return value
}

/**
 * What UsageStoreOptions.sharing needs to share budgets and reports through Redis (`redis.url`,
 * `redis.prefix`), or undefined without Redis. shared-usage.ts (and ioredis) is loaded only then:
 * a proxy without Redis never carries it.
 */
export async function redisSharing (redis: { url: string, prefix: string } | null | undefined, retentionDays: number): Promise<SharingFactory | undefined> {
  if (redis == null) return undefined
  const { sharingThrough } = await import('./shared-usage.js')
  return sharingThrough(redis, retentionDays)
}

/**
 * The durable usage store: per-day counts per key, model and host in SQLite (WAL), written off
 * the hot path. record() only adds to memory; a timer (unref'd) flushes about every second in one
 * transaction, and close() flushes the rest. A crash loses at most the last flush interval.
 * With Redis, each flush also sends the changed rows to Redis and reads the other replicas'
 * totals back, so budgets agree within about a second; while Redis is away the rows wait in a
 * durable outbox and each replica counts on its own.
 */
export class UsageStore extends EventEmitter<UsageStoreEvents> {
  readonly file: string
  readonly replicaId: string
  private readonly rows: UsageRows
  private readonly totals: CurrentTotals
  private readonly shared: SharedUsage | undefined
  private readonly now: () => number
  private readonly log: UsageLogger
  private pending = new Map<string, PendingRow>()
  private readonly timer: NodeJS.Timeout
  private generation: number
  private dayCache: { windows: CalendarWindows, day: number } | undefined
  private maintainedDay = ''
  private failing = false
  /** the last exchange with Redis, and whether it still runs */
  private syncDone: Promise<void> = Promise.resolve()
  private syncing = false
  private closing: Promise<void> | undefined
  private closed = false

  /**
   * Opens (creates) the store. Throws UsageStoreError naming the path and the reason (see
   * openDatabase; also damaged rows), or for a bad option (unknown time zone, retention not a
   * whole number >= 1).
   */
  static open (options: UsageStoreOptions): UsageStore {
    try {
      checkTimeZone(options.timezone)
    } catch (err) {
      throw new UsageStoreError(`usage.timezone: ${(err as Error).message}`)
    }
    if (!Number.isSafeInteger(options.retentionDays) || options.retentionDays < 1) {
      throw new UsageStoreError(`usage.retention_days: expected a whole number of days of at least 1, got ${options.retentionDays}`)
    }
    const opened = openDatabase(options.file)
    try {
      return new UsageStore(opened, options)
    } catch (err) {
      closeDatabase(opened)
      throw new UsageStoreError(`${opened.file}: cannot read the usage database: ${(err as Error).message}; it is left as it is`)
    }
  }

  private constructor (private readonly opened: OpenedDatabase, private readonly options: UsageStoreOptions) {
    super()
    this.file = opened.file
    this.replicaId = opened.replicaId
    this.now = options.now ?? Date.now
    this.log = options.log ?? NO_LOG
    this.rows = new UsageRows(opened)
    this.totals = new CurrentTotals(options.timezone, this.now)
    this.generation = this.rows.highestGeneration()
    this.maintain()
    const windows = this.totals.current()
    for (const row of this.rows.totals(dayNumber(`${windows.month}-01`), dayNumber(windows.day))) {
      this.totals.loadOwn(dayFromNumber(row.day), row.key, row.requests, row.promptTokens + row.completionTokens)
    }
    this.shared = options.sharing?.(this.replicaId, this.log)
    this.timer = setInterval(() => this.flush(), options.flushIntervalMs ?? 1000)
    this.timer.unref()
  }

  /** 'off' without Redis; 'redis' while budgets and reports are shared; 'local' while Redis is away. */
  get redisMode (): 'off' | 'redis' | 'local' {
    if (this.shared === undefined) return 'off'
    return this.shared.ready ? 'redis' : 'local'
  }

  /**
   * Adds one answer's usage in memory: O(1), no I/O. Throws RangeError for a count that is not a
   * whole number >= 0. Ignored once close() has begun: close after the server has drained.
   */
  record (entry: UsageEntry): void {
    if (this.closing !== undefined) return
    const requests = checkCount(entry.requests ?? 1, 'requests')
    const promptTokens = checkCount(entry.promptTokens, 'promptTokens')
    const completionTokens = checkCount(entry.completionTokens, 'completionTokens')
    const at = entry.at ?? this.now()
    const day = this.dayNumberOf(at)
    const id = `${day}\n${entry.key}`
    let row = this.pending.get(id)
    if (row === undefined) {
      row = { day, key: entry.key, lastUsedAt: at, cells: new Map() }
      this.pending.set(id, row)
    }
    row.lastUsedAt = Math.max(row.lastUsedAt, at)
    let byHost = row.cells.get(entry.model)
    if (byHost === undefined) row.cells.set(entry.model, byHost = new Map())
    const cell = byHost.get(entry.host)
    if (cell === undefined) byHost.set(entry.host, { requests, promptTokens, completionTokens })
    else {
      cell.requests += requests
      cell.promptTokens += promptTokens
      cell.completionTokens += completionTokens
    }
    this.totals.addOwn(entry.key, at, requests, promptTokens + completionTokens)
  }

  /** What `key` has spent in the current day and month on every replica: memory only, for checkBudgets(). */
  spent (key: string): SpentTotals {
    return this.totals.spent(key)
  }

  /**
   * Writes the pending counts in one transaction and starts a Redis exchange; returns how many
   * key x day rows changed. Never throws: when SQLite fails the counts stay pending (one error
   * line until it works again).
   */
  flush (): number {
    if (this.closed) return 0
    this.maintain()
    const rows = this.pending
    if (rows.size > 0) {
      this.pending = new Map()
      try {
        this.rows.apply(rows.values(), this.shared !== undefined ? ++this.generation : undefined)
        if (this.failing) this.log.info({ file: this.file }, 'usage database writable again: pending counts written')
        this.failing = false
      } catch (err) {
        this.pending = rows
        if (!this.failing) this.log.error({ file: this.file, reason: (err as Error).message }, 'cannot write usage: counts stay in memory until the database accepts them')
        this.failing = true
        return 0
      }
      this.emit('flush', { rows: rows.size })
    }
    if (this.shared !== undefined && !this.syncing) this.syncDone = this.sync()
    return rows.size
  }

  /**
   * The report of `query` (pending counts included). Throws RangeError for a bad query (see
   * checkReportQuery), Error after close().
   */
  async report (query: UsageReportQuery): Promise<UsageReportResult> {
    this.assertOpen()
    this.flush()
    return await buildReport(this.rows, this.shared, query)
  }

  /** When each key was last counted on any replica (ms since the epoch); Redis failing leaves this replica's. Error after close(). */
  async lastUsed (): Promise<Map<string, number>> {
    this.assertOpen()
    this.flush()
    const lastUsed = this.rows.lastUsed()
    for (const [key, at] of await this.shared?.othersLastUsed() ?? []) lastUsed.set(key, Math.max(lastUsed.get(key) ?? 0, at))
    return lastUsed
  }

  /** Flushes everything, hands the last rows to Redis when it is there, and closes. Never throws. */
  async close (): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer)
      this.flush()
      await this.syncDone
      // The rows of the last flush, unless that exchange already took them.
      if (this.shared?.ready === true) await this.sync()
      await this.shared?.close()
      this.closed = true
      closeDatabase(this.opened)
    })()
    await this.closing
  }

  private assertOpen (): void {
    if (this.closing !== undefined) throw new Error('the usage store is closed')
  }

  private dayNumberOf (at: number): number {
    const windows = this.totals.current()
    if (this.dayCache?.windows !== windows) this.dayCache = { windows, day: dayNumber(windows.day) }
    if (at >= windows.dayStart && at < windows.dayEnd) return this.dayCache.day
    return dayNumber(dayOf(at, this.options.timezone))
  }

  /** Once per local day: deletes the rows past the retention. */
  private maintain (): void {
    const today = this.totals.current().day
    if (today === this.maintainedDay) return
    try {
      const deleted = this.rows.deleteBefore(dayNumber(today) - this.options.retentionDays)
      this.maintainedDay = today
      if (deleted > 0) this.log.info({ file: this.file, rows: deleted }, 'usage past the retention deleted')
    } catch (err) {
      this.log.error({ file: this.file, reason: (err as Error).message }, 'cannot delete usage past the retention')
    }
  }

  /** Sends the outbox to Redis and reads the other replicas' totals back, until the outbox is empty. */
  private async sync (): Promise<void> {
    this.syncing = true
    let ok = false
    let sent = 0
    try {
      for (let round = 0; round < MAX_SYNC_ROUNDS && this.shared?.ready === true; round++) {
        const rows = this.rows.outbox(ROWS_PER_SYNC)
        const windows = this.totals.current()
        const answer = await this.shared.sync({ rows, day: windows.day, month: windows.month, monthEnd: windows.monthEnd, monthTotals: this.totals.ownMonthTotals() })
        if (answer === undefined) break
        ok = true
        this.totals.setOthers(windows.day, windows.month, answer.othersDay, answer.othersMonth)
        if (answer.epoch !== readMeta(this.opened.db, 'redis_epoch')) {
          // Redis started empty (or never had this database's rows): send them all again.
          this.opened.db.transaction(() => {
            this.rows.markAllForRedis(++this.generation)
            writeMeta(this.opened.db, 'redis_epoch', answer.epoch)
          }).immediate()
          continue
        }
        this.rows.clearOutbox(rows)
        sent += rows.length
        if (rows.length < ROWS_PER_SYNC) break
      }
    } catch (err) {
      this.log.error({ file: this.file, reason: (err as Error).message }, 'cannot read or clear the usage outbox')
    }
    this.syncing = false
    this.emit('sync', { ok, rows: sent })
  }
}
