import type { SharedUsage, UsageLogger } from './shared-usage.js'
import { openDatabase, type OpenedDatabase } from './usage-database.js'
import { buildReport, type UsageReportQuery, type UsageReportResult } from './usage-report.js'
import { UsageRows } from './usage-rows.js'

export interface UsageReaderOptions {
  /** the database the proxy writes */
  file: string
  /** the proxy's redis.url and redis.prefix: the other replicas' traffic comes from there */
  redis?: { url: string, prefix: string } | null
  log?: UsageLogger
}

const NO_LOG: UsageLogger = { info () {}, warn () {}, error () {} }

/**
 * Reads the usage store without changing it (the `usage` CLI): the database opened read-only,
 * which works while the proxy writes it, plus the other replicas' traffic from Redis.
 */
export class UsageReader {
  private readonly rows: UsageRows
  private shared: SharedUsage | undefined

  /** Throws UsageStoreError naming the path and the reason: no file, not SQLite, not a usage database. */
  static open (options: UsageReaderOptions): UsageReader {
    return new UsageReader(openDatabase(options.file, { readOnly: true }), options)
  }

  private constructor (private readonly opened: OpenedDatabase, private readonly options: UsageReaderOptions) {
    this.rows = new UsageRows(opened)
  }

  /** The report of `query`; throws RangeError for a bad query (see checkReportQuery). */
  async report (query: UsageReportQuery): Promise<UsageReportResult> {
    if (this.options.redis != null && this.shared === undefined) {
      // Loaded only when needed: a one-off command without Redis starts faster.
      const { SharedUsage } = await import('./shared-usage.js')
      this.shared = new SharedUsage({ ...this.options.redis, replicaId: this.opened.replicaId, retentionDays: 0, reconnect: false }, this.options.log ?? NO_LOG)
    }
    await this.shared?.connect()
    return await buildReport(this.rows, this.shared, query)
  }

  async close (): Promise<void> {
    await this.shared?.close()
    this.opened.db.close()
  }
}
