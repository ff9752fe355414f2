import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { redactUrlCredentials } from '../config/config-loader.js'
import { redisAddress } from '../limits/redis-windows.js'
import { dayFromNumber, dayNumber } from './calendar.js'
import type { Spending } from './current-totals.js'
import { encodeNamedCells } from './packed-counts.js'
import type { OutboxRow } from './usage-rows.js'

type LogFn = (obj: Record<string, unknown>, msg: string) => void

/** What the store logs through: pino's (Fastify's) logger fits. */
export interface UsageLogger {
  info: LogFn
  warn: LogFn
  error: LogFn
}

export interface SharedUsageOptions {
  /** redis:// or rediss:// URL */
  url: string
  /** put before every Redis key, e.g. "ollama-proxy:" */
  prefix: string
  /** this database's replica id: its fields in the shared hashes */
  replicaId: string
  retentionDays: number
  /** false for a one-off reader (the CLI): no reconnection, so it can exit */
  reconnect?: boolean
}

/** What a sync sends: rows in their current state and this replica's totals of the current month. */
export interface SyncRequest {
  rows: OutboxRow[]
  /** current local day YYYY-MM-DD and month YYYY-MM */
  day: string
  month: string
  /** first instant of the next month, ms: when the month's hash may go */
  monthEnd: number
  monthTotals: Map<string, Spending>
}

/** What a sync reads back: Redis's generation, and the other replicas' totals of the current day and month. */
export interface SyncAnswer {
  epoch: string
  othersDay: Map<string, Spending>
  othersMonth: Map<string, Spending>
}

export const SHARED_DOWN = 'redis unreachable: usage budgets are per replica until it returns; counts wait in the outbox'
export const SHARED_BACK = 'redis is back: usage budgets and reports are shared by all replicas again'

const DAY_SECONDS = 86_400
/** Days in one pipeline of a report: enough to fill a round trip, few enough to stay small. */
const DAYS_PER_ROUND_TRIP = 100
const ROWS_PER_ROUND_TRIP = 500
/** Pipelines of a report sent before the first answer is read. */
const PIPELINES_IN_FLIGHT = 4
const COOLDOWN_MS = 1000

/** An error's message for a log line, with any URL's user:password replaced. */
function messageOf (err: unknown): string {
  return redactUrlCredentials(err instanceof Error ? err.message : String(err))
}

/**
 * The usage every replica shares through Redis. Each replica writes its own rows and totals as
 * absolute values in fields named by its replica id, so sending a row twice, or again after
 * Redis lost it, is harmless; readers add the replicas up. Redis keys (under the prefix):
 * `usage-store:day:<day>:<key>` (replica -> packed cells), `usage-store:keys:<day>` and
 * `usage-store:month:<month>` (replica\nkey -> "requests prompt completion" / "requests tokens"),
 * `usage-store:last-used` (replica\nkey -> ms), `usage-store:days` (sorted set of the days held,
 * scored by day number), `usage-store:epoch` (a random id that changes
 * when Redis starts empty, telling replicas to send everything again). Day hashes expire after
 * the retention. No method throws or waits for a reconnection: while Redis is away, they answer
 * undefined (one warning per outage, one info line when it is back).
 */
export class SharedUsage {
  private readonly client: Redis
  private readonly base: string
  private readonly address: string
  private down = false
  private closing = false
  /** After a failed command on a connection that still looks fine (a hung server), stay away this long. */
  private retryAt = 0

  constructor (private readonly options: SharedUsageOptions, private readonly log: UsageLogger) {
    this.base = `${options.prefix}usage-store:`
    this.address = redisAddress(options.url)
    const reconnect = options.reconnect ?? true
    this.client = new Redis(options.url, {
      lazyConnect: !reconnect,
      enableOfflineQueue: !reconnect,
      maxRetriesPerRequest: 0,
      commandTimeout: 2000,
      connectTimeout: 2000,
      retryStrategy: () => reconnect ? 500 : null
    })
    this.client.on('ready', () => {
      this.retryAt = 0
      this.recovered()
    })
    // Without an 'error' listener ioredis prints every failed reconnection to stderr.
    this.client.on('error', (err: unknown) => this.fallBack(err))
    this.client.on('close', () => this.fallBack(new Error('connection closed')))
  }

  /** True while commands can go to Redis. */
  get ready (): boolean {
    return !this.closing && this.client.status === 'ready' && Date.now() >= this.retryAt
  }

  /** Connects a one-off reader; false (logged) when Redis does not answer. */
  async connect (): Promise<boolean> {
    try {
      if (this.client.status === 'wait') await this.client.connect()
      return this.ready
    } catch (err) {
      this.fallBack(err)
      return false
    }
  }

  /** Sends rows and month totals, reads the others' current totals back, in one round trip; undefined on failure. */
  async sync (request: SyncRequest): Promise<SyncAnswer | undefined> {
    if (!this.ready) return undefined
    const replica = this.options.replicaId
    const pipeline = this.client.pipeline()
    pipeline.set(`${this.base}epoch`, randomUUID(), 'NX')
    pipeline.get(`${this.base}epoch`)
    // The days Redis holds, so a report asks only for those; days past the retention leave it.
    const days = `${this.base}days`
    pipeline.zremrangebyscore(days, '-inf', `(${dayNumber(request.day) - this.options.retentionDays - 2}`)
    for (const row of request.rows) {
      const day = dayFromNumber(row.day)
      pipeline.zadd(days, row.day, day)
      const expiresAt = (row.day + 2 + this.options.retentionDays) * DAY_SECONDS
      const dayKey = `${this.base}day:${day}:${row.key}`
      const keysKey = `${this.base}keys:${day}`
      const { requests, promptTokens, completionTokens } = row.totals
      pipeline.hset(dayKey, replica, encodeNamedCells(row.cells)).expireat(dayKey, expiresAt)
      pipeline.hset(keysKey, `${replica}\n${row.key}`, `${requests} ${promptTokens} ${completionTokens}`).expireat(keysKey, expiresAt)
      pipeline.hset(`${this.base}last-used`, `${replica}\n${row.key}`, row.lastUsedAt)
    }
    const monthKey = `${this.base}month:${request.month}`
    for (const [key, spending] of request.monthTotals) pipeline.hset(monthKey, `${replica}\n${key}`, `${spending.requests} ${spending.tokens}`)
    if (request.monthTotals.size > 0) pipeline.expireat(monthKey, Math.ceil(request.monthEnd / 1000) + 2 * DAY_SECONDS)
    pipeline.hgetall(`${this.base}keys:${request.day}`)
    pipeline.hgetall(monthKey)
    try {
      const results = await this.exec(pipeline)
      const epoch = String(results[1])
      const othersDay = this.othersTotals(results[results.length - 2] as Record<string, string>, true)
      const othersMonth = this.othersTotals(results[results.length - 1] as Record<string, string>, false)
      this.recovered()
      return { epoch, othersDay, othersMonth }
    } catch (err) {
      this.failed(err)
      return undefined
    }
  }

  /**
   * Calls `visit` with the packed cells (packed-counts.ts, named) of every row the other replicas
   * hold from day `first` to day `last` (day numbers, inclusive); false when Redis failed.
   */
  async visitOthers (first: number, last: number, visit: (day: string, key: string, cells: Buffer) => void): Promise<boolean> {
    if (!this.ready) return false
    try {
      const days = await this.client.zrangebyscore(`${this.base}days`, first, last)
      // Which other replicas hold a row for each day and key, from the days' key hashes.
      const rows: Array<{ day: string, key: string, replicas: string[] }> = []
      await this.pipelined(days, DAYS_PER_ROUND_TRIP, (pipeline, day) => pipeline.hkeys(`${this.base}keys:${day}`), (day, fields) => {
        const byKey = new Map<string, string[]>()
        for (const field of fields as string[]) {
          const newline = field.indexOf('\n')
          const replica = field.slice(0, newline)
          if (newline <= 0 || replica === this.options.replicaId) continue
          const key = field.slice(newline + 1)
          byKey.set(key, [...byKey.get(key) ?? [], replica])
        }
        for (const [key, replicas] of byKey) rows.push({ day, key, replicas })
      })
      await this.pipelined(rows, ROWS_PER_ROUND_TRIP, (pipeline, row) => pipeline.hmgetBuffer(`${this.base}day:${row.day}:${row.key}`, ...row.replicas), (row, blobs) => {
        for (const blob of blobs as Array<Buffer | null>) {
          if (blob !== null) visit(row.day, row.key, blob)
        }
      })
      this.recovered()
      return true
    } catch (err) {
      this.failed(err)
      return false
    }
  }

  /** When each key was last counted by another replica (ms); undefined when Redis failed. */
  async othersLastUsed (): Promise<Map<string, number> | undefined> {
    if (!this.ready) return undefined
    try {
      const fields = await this.client.hgetall(`${this.base}last-used`)
      const lastUsed = new Map<string, number>()
      for (const [field, value] of Object.entries(fields)) {
        const newline = field.indexOf('\n')
        if (newline <= 0 || field.slice(0, newline) === this.options.replicaId) continue
        const key = field.slice(newline + 1)
        lastUsed.set(key, Math.max(lastUsed.get(key) ?? 0, Number(value)))
      }
      this.recovered()
      return lastUsed
    } catch (err) {
      this.failed(err)
      return undefined
    }
  }

  async close (): Promise<void> {
    this.closing = true
    if (this.client.status === 'ready') {
      try {
        await this.client.quit()
        return
      } catch {
        // fall through: drop the connection
      }
    }
    this.client.disconnect()
  }

  /**
   * One command per item, sent in pipelines of `size` with a few in flight at once, so round
   * trips overlap; `handle` gets each item's result in order. Throws the first error.
   */
  private async pipelined<T> (items: T[], size: number, command: (pipeline: ReturnType<Redis['pipeline']>, item: T) => unknown, handle: (item: T, result: unknown) => void): Promise<void> {
    const chunks: T[][] = []
    for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size))
    const inFlight: Array<Promise<unknown[]>> = []
    const send = (chunk: T[]) => {
      const pipeline = this.client.pipeline()
      for (const item of chunk) command(pipeline, item)
      const results = this.exec(pipeline)
      // Awaited in turn below; a failure before its turn must not count as unhandled.
      results.catch(() => {})
      inFlight.push(results)
    }
    chunks.slice(0, PIPELINES_IN_FLIGHT).forEach(send)
    for (let index = 0; index < chunks.length; index++) {
      const results = await inFlight.shift()!
      if (index + PIPELINES_IN_FLIGHT < chunks.length) send(chunks[index + PIPELINES_IN_FLIGHT])
      chunks[index].forEach((item, position) => handle(item, results[position]))
    }
  }

  /** A pipeline's results; throws the first command's error. */
  private async exec (pipeline: ReturnType<Redis['pipeline']>): Promise<unknown[]> {
    const results = await pipeline.exec()
    if (results === null) throw new Error('pipeline aborted')
    return results.map(([error, value]) => {
      if (error !== null) throw error
      return value
    })
  }

  /** Sums of "replica\nkey" fields per key, leaving this replica's out. */
  private othersTotals (fields: Record<string, string>, perDay: boolean): Map<string, Spending> {
    const totals = new Map<string, Spending>()
    for (const [field, value] of Object.entries(fields)) {
      const newline = field.indexOf('\n')
      if (newline <= 0 || field.slice(0, newline) === this.options.replicaId) continue
      const key = field.slice(newline + 1)
      const numbers = value.split(' ').map(Number)
      const tokens = perDay ? numbers[1] + numbers[2] : numbers[1]
      if (!numbers.every(Number.isFinite)) continue
      const spending = totals.get(key) ?? { requests: 0, tokens: 0 }
      spending.requests += numbers[0]
      spending.tokens += tokens
      totals.set(key, spending)
    }
    return totals
  }

  private failed (err: unknown): void {
    this.retryAt = Date.now() + COOLDOWN_MS
    this.fallBack(err)
  }

  private fallBack (err: unknown): void {
    if (this.closing || this.down) return
    this.down = true
    this.log.warn({ redis: this.address, reason: messageOf(err) }, SHARED_DOWN)
  }

  private recovered (): void {
    if (!this.down) return
    this.down = false
    this.log.info({ redis: this.address }, SHARED_BACK)
  }
}
