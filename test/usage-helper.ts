import { once, type EventEmitter } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { createLogger } from '../src/logger.js'
import { UsageStore, type UsageStoreEvents, type UsageStoreOptions } from '../plugins/usage/usage-store.js'
import { sharingThrough } from '../plugins/usage/shared-usage.js'
import { LogCapture } from './helper.js'

/** A fresh folder, removed after the test. */
export function tempFolder (t: TestContext, name = 'usage-'): string {
  const folder = mkdtempSync(join(tmpdir(), name))
  t.after(() => rmSync(folder, { recursive: true, force: true }))
  return folder
}

/** A settable clock for a store. */
export class Clock {
  constructor (public ms: number) {}
  readonly now = (): number => this.ms
  set (iso: string): void {
    this.ms = Date.parse(iso)
  }
}

/**
 * A store closed after the test; its timer flush is an hour away unless the options say
 * otherwise, so the test decides when counts are written.
 */
export function openStore (t: TestContext, options: Partial<UsageStoreOptions> & { file: string, redis?: { url: string, prefix: string } }, logs = new LogCapture()): { store: UsageStore, logs: LogCapture } {
  const { redis, ...rest } = options
  const retentionDays = options.retentionDays ?? 400
  const sharing = redis === undefined ? undefined : sharingThrough(redis, retentionDays)
  const store = UsageStore.open({ timezone: 'UTC', retentionDays, flushIntervalMs: 3_600_000, log: createLogger('info', logs), sharing, ...rest })
  t.after(async () => { await store.close() })
  return { store, logs }
}

/**
 * Resolves at the store's next event of that name. The store's flush timer is unref'd, so a
 * ref'd handle keeps the process up meanwhile (it only keeps it alive, it synchronises nothing).
 */
export async function nextEvent<K extends keyof UsageStoreEvents> (store: UsageStore, name: K): Promise<UsageStoreEvents[K][0]> {
  const alive = setInterval(() => {}, 60_000)
  try {
    const [value] = await once(store as EventEmitter, name) as UsageStoreEvents[K]
    return value
  } finally {
    clearInterval(alive)
  }
}
