import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { RedisLink, type RedisLogger } from '../redis/redis-link.js'
import { dayFromNumber, dayNumber } from './calendar.js'
import type { Spending } from './current-totals.js'
import { encodeNamedCells } from './packed-counts.js'
import type { OutboxRow } from './usage-rows.js'

/** The last instant a JavaScript Date holds (ms since the epoch). */
const MAX_DATE_MS = 8.64e15

/** What the store logs through: pino's (Fastify's) logger fits. */
export type UsageLogger = RedisLogger

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

/** Makes the SharedUsage of one store, given the replica id its database holds. */
export type SharingFactory = (replicaId: string, log: UsageLogger) => SharedUsage

/** The SharingFactory for Redis at `redis.url` under `redis.prefix`, keeping `retentionDays` days. */
export function sharingThrough (redis: { url: string, prefix: string }, retentionDays: number): SharingFactory {
  return (replicaId, log) => new SharedUsage({ ...redis, replicaId, retentionDays }, log)
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
  private readonly link: RedisLink
  private readonly client: Redis
  private readonly base: string

  constructor (private readonly options: SharedUsageOptions, log: UsageLogger) {
    this.base = `${options.prefix}usage-store:`
    this.link = new RedisLink({
      url: options.url,
      commandTimeoutMs: 2000,
      reconnect: options.reconnect ?? true,
      messages: { down: SHARED_DOWN, back: SHARED_BACK }
    }, log)
    this.client = this.link.client
  }

  /** True while commands can go to Redis. */
  get ready (): boolean {
    return this.link.usable()
  }

  /** Connects a one-off reader; false (logged) when Redis does not answer. */
  async connect (): Promise<boolean> {
    return await this.link.connect()
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
      this.link.succeeded()
      return { epoch, othersDay, othersMonth }
    } catch (err) {
      this.link.failed(err)
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
      this.link.succeeded()
      return true
    } catch (err) {
      this.link.failed(err)
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
        const at = Number(value)
        // Another process's writing: a value no clock gives is skipped, not shown as a date.
        if (!Number.isSafeInteger(at) || at < 0 || at > MAX_DATE_MS) continue
        lastUsed.set(key, Math.max(lastUsed.get(key) ?? 0, at))
      }
      this.link.succeeded()
      return lastUsed
    } catch (err) {
      this.link.failed(err)
      return undefined
    }
  }

  async close (): Promise<void> {
    await this.link.close()
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
}
