import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import Database from 'better-sqlite3'
import { checkBudgets } from '../plugins/usage/budgets.js'
import { FOLDED_NAME, MAX_NAME_LENGTH, MAX_NAMES } from '../plugins/usage/name-table.js'
import { UsageReader } from '../plugins/usage/usage-reader.js'
import type { ReportField, UsageReportRow } from '../plugins/usage/usage-report.js'
import { Clock, nextEvent, openStore, tempFolder } from './usage-helper.js'

interface Sent { day: string, key: string, model: string, host: string, prompt: number, completion: number }

/** A fixed pseudo-random sequence, so the traffic is the same on every run. */
function sequence (seed: number): () => number {
  let state = seed
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31
    return state / 2 ** 31
  }
}

/** The expected report, summed the plain way from the list of what was sent. */
function expectedRows (sent: Sent[], by: ReportField[], since: string, until: string): UsageReportRow[] {
  const groups = new Map<string, UsageReportRow>()
  for (const item of sent) {
    if (item.day < since || item.day > until) continue
    const id = JSON.stringify(by.map(field => item[field]))
    const fields = (['key', 'model', 'host', 'day'] as const).filter(field => by.includes(field))
    const row = groups.get(id) ?? Object.assign(Object.fromEntries(fields.map(field => [field, item[field]])), { requests: 0, prompt_tokens: 0, completion_tokens: 0 }) as UsageReportRow
    row.requests += 1
    row.prompt_tokens += item.prompt
    row.completion_tokens += item.completion
    groups.set(id, row)
  }
  return [...groups.values()]
}

const sortRows = (rows: UsageReportRow[]) => [...rows].sort((a, b) => JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)

test('UsageStore: the report equals the traffic recorded, for every grouping and range, flushed or not', async (t) => {
  const clock = new Clock(Date.parse('2026-03-01T00:00:00Z'))
  const { store } = openStore(t, { file: join(tempFolder(t), 'usage.sqlite'), timezone: 'Europe/Berlin', now: clock.now })
  const random = sequence(7)
  const sent: Sent[] = []
  const start = Date.parse('2026-03-25T00:00:00Z')
  for (let i = 0; i < 3000; i++) {
    // Ten days across the DST change of March 29th; Berlin days, not UTC days.
    const at = start + Math.floor(random() * 10 * 86_400_000)
    const day = new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Berlin' }).format(at)
    const item = { day, key: `key-${Math.floor(random() * 7)}`, model: ['llama3.2', 'qwen3:8b', 'nomic-embed-text'][Math.floor(random() * 3)], host: ['gpu-1', 'gpu-2'][Math.floor(random() * 2)], prompt: Math.floor(random() * 5000), completion: Math.floor(random() * 900) }
    sent.push(item)
    store.record({ key: item.key, model: item.model, host: item.host, promptTokens: item.prompt, completionTokens: item.completion, at })
    if (i === 1000 || i === 2000) store.flush()
  }
  const groupings: ReportField[][] = [[], ['key'], ['model'], ['host'], ['day'], ['key', 'model'], ['key', 'model', 'day'], ['day', 'key', 'model', 'host']]
  for (const by of groupings) {
    for (const [since, until] of [['2026-01-01', '2026-12-31'], ['2026-03-28', '2026-03-30'], ['2026-03-30', '2026-03-30'], ['2026-05-01', '2026-05-31']]) {
      const { report, redis } = await store.report({ since, until, by })
      assert.equal(redis, 'unused')
      assert.equal(report.since, since)
      assert.equal(report.until, until)
      assert.deepEqual(sortRows(report.rows), sortRows(expectedRows(sent, by, since, until)), `by ${by.join(',')} from ${since} to ${until}`)
      for (const row of report.rows) assert.deepEqual(Object.keys(row), [...['key', 'model', 'host', 'day'].filter(f => by.includes(f as ReportField)), 'requests', 'prompt_tokens', 'completion_tokens'])
    }
  }
  // Sorted by the fields in the order asked.
  const byDayKey = (await store.report({ since: '2026-01-01', until: '2026-12-31', by: ['day', 'key'] })).report.rows
  assert.deepEqual(byDayKey.map(r => `${r.day} ${r.key}`), byDayKey.map(r => `${r.day} ${r.key}`).sort())
  await assert.rejects(store.report({ since: '2026-03-02', until: '2026-03-01', by: [] }), /since \(2026-03-02\) is after until/)
  await assert.rejects(store.report({ since: '2026-03-01', until: '2026-03-31', by: ['team' as ReportField] }), /by: unknown field "team"/)
})

test('UsageStore: a restart keeps a spent budget', async (t) => {
  const file = join(tempFolder(t), 'usage.sqlite')
  const clock = new Clock(Date.parse('2026-06-15T10:00:00Z'))
  const budgets = { tokensPerDay: 1000, tokensPerMonth: null, requestsPerDay: null }
  const first = openStore(t, { file, now: clock.now }).store
  first.record({ key: 'student-17', model: 'llama3.2', host: 'gpu', promptTokens: 700, completionTokens: 300 })
  assert.equal(checkBudgets('student-17', budgets, first.spent('student-17'), clock.ms).allowed, false)
  await first.close()

  clock.set('2026-06-15T18:00:00Z')
  const second = openStore(t, { file, now: clock.now }).store
  const decision = checkBudgets('student-17', budgets, second.spent('student-17'), clock.ms)
  assert.ok(!decision.allowed)
  assert.equal(decision.refusal.message, 'daily token budget of student-17 is spent')
  assert.equal(decision.refusal.retryAfterSeconds, 6 * 3600)
  assert.deepEqual([second.spent('student-17').dayRequests, second.spent('student-17').monthTokens], [1, 1000])
})

test('UsageStore: day and month roll over with the clock, in memory and after a restart', async (t) => {
  const file = join(tempFolder(t), 'usage.sqlite')
  const clock = new Clock(Date.parse('2026-01-31T22:30:00Z')) // 23:30 on January 31st in Berlin
  const options = { file, timezone: 'Europe/Berlin', now: clock.now }
  const store = openStore(t, options).store
  store.record({ key: 'k', model: 'm', host: 'h', promptTokens: 100, completionTokens: 0 })
  assert.deepEqual([store.spent('k').day, store.spent('k').dayTokens, store.spent('k').monthTokens], ['2026-01-31', 100, 100])

  clock.set('2026-01-31T23:00:00Z') // midnight in Berlin: February
  assert.deepEqual([store.spent('k').day, store.spent('k').month, store.spent('k').dayTokens, store.spent('k').monthTokens], ['2026-02-01', '2026-02', 0, 0])
  store.record({ key: 'k', model: 'm', host: 'h', promptTokens: 10, completionTokens: 0 })
  clock.set('2026-02-01T23:30:00Z') // February 2nd
  store.record({ key: 'k', model: 'm', host: 'h', promptTokens: 1, completionTokens: 0 })
  assert.deepEqual([store.spent('k').dayTokens, store.spent('k').monthTokens], [1, 11])
  await store.close()

  const again = openStore(t, options).store
  assert.deepEqual([again.spent('k').day, again.spent('k').dayTokens, again.spent('k').monthTokens, again.spent('k').monthRequests], ['2026-02-02', 1, 11, 2])
  const { report } = await again.report({ since: '2026-01-01', until: '2026-02-28', by: ['day'] })
  assert.deepEqual(report.rows.map(r => [r.day, r.prompt_tokens]), [['2026-01-31', 100], ['2026-02-01', 10], ['2026-02-02', 1]])
})

test('UsageStore: counts reach the database at the timer flush and at close, not before', async (t) => {
  const file = join(tempFolder(t), 'usage.sqlite')
  const { store } = openStore(t, { file, flushIntervalMs: 50 })
  const reader = UsageReader.open({ file })
  t.after(async () => { await reader.close() })
  const total = async () => (await reader.report({ since: '2026-01-01', until: '2030-12-31', by: [] })).report.rows[0]?.requests ?? 0

  const flushed = nextEvent(store, 'flush')
  store.record({ key: 'a', model: 'm', host: 'h', promptTokens: 1, completionTokens: 1 })
  store.record({ key: 'b', model: 'm', host: 'h', promptTokens: 1, completionTokens: 1 })
  assert.equal(await total(), 0, 'record() writes nothing by itself')
  assert.deepEqual(await flushed, { rows: 2 })
  assert.equal(await total(), 2)

  store.record({ key: 'a', model: 'm', host: 'h', promptTokens: 1, completionTokens: 1, requests: 3 })
  await store.close()
  assert.equal(await total(), 5, 'a clean close loses nothing')
  store.record({ key: 'a', model: 'm', host: 'h', promptTokens: 1, completionTokens: 1 })
  assert.equal(store.spent('a').dayRequests, 4, 'a count after close() is dropped, not kept in memory')
  await store.close() // twice is fine
  await assert.rejects(store.report({ since: '2026-01-01', until: '2026-01-01', by: [] }), /closed/)
})

test('UsageStore: rows past the retention are deleted at open and once a day', async (t) => {
  const file = join(tempFolder(t), 'usage.sqlite')
  const clock = new Clock(Date.parse('2026-05-20T12:00:00Z'))
  const first = openStore(t, { file, now: clock.now, retentionDays: 400 }).store
  for (const day of ['2026-05-10', '2026-05-14', '2026-05-15', '2026-05-20']) {
    first.record({ key: 'k', model: 'm', host: 'h', promptTokens: 1, completionTokens: 0, at: Date.parse(`${day}T12:00:00Z`) })
  }
  await first.close()
  const days = async (store: typeof first) => (await store.report({ since: '2026-01-01', until: '2026-12-31', by: ['day'] })).report.rows.map(r => r.day)

  const { store, logs } = openStore(t, { file, now: clock.now, retentionDays: 5 })
  assert.deepEqual(await days(store), ['2026-05-15', '2026-05-20'], 'kept: today and the 5 days before')
  assert.ok(logs.entries().some(e => e.msg === 'usage past the retention deleted' && e.rows === 2))
  clock.set('2026-05-21T00:00:01Z')
  store.flush()
  assert.deepEqual(await days(store), ['2026-05-20'])
})

test('UsageStore: last used per key, and bad counts are refused without counting anything', async (t) => {
  const clock = new Clock(Date.parse('2026-05-20T12:00:00Z'))
  const { store } = openStore(t, { file: join(tempFolder(t), 'usage.sqlite'), now: clock.now })
  store.record({ key: 'a', model: 'm', host: 'h', promptTokens: 1, completionTokens: 0, at: clock.ms - 5000 })
  store.record({ key: 'a', model: 'm', host: 'h', promptTokens: 1, completionTokens: 0, at: clock.ms - 9000 })
  store.record({ key: 'b', model: 'm', host: 'h', promptTokens: 1, completionTokens: 0 })
  assert.deepEqual(await store.lastUsed(), new Map([['a', clock.ms - 5000], ['b', clock.ms]]))
  for (const [field, value] of [['promptTokens', -1], ['completionTokens', 1.5], ['promptTokens', Number.NaN], ['requests', 2 ** 53]] as const) {
    assert.throws(() => store.record({ key: 'a', model: 'm', host: 'h', promptTokens: 0, completionTokens: 0, [field]: value }), new RegExp(`usage ${field}: expected a whole number`))
  }
  assert.equal(store.spent('a').dayRequests, 2)
})

test('UsageStore: client-chosen names cannot grow the name tables without bound', async (t) => {
  const { store } = openStore(t, { file: join(tempFolder(t), 'usage.sqlite') })
  for (let i = 0; i < MAX_NAMES + 5; i++) store.record({ key: 'k', model: `model-${i}`, host: 'h', promptTokens: 1, completionTokens: 0 })
  store.record({ key: 'k', model: 'x'.repeat(MAX_NAME_LENGTH + 1), host: 'h', promptTokens: 1, completionTokens: 0 })
  const rows = (await store.report({ since: '2026-01-01', until: '2030-12-31', by: ['model'] })).report.rows
  assert.equal(rows.length, MAX_NAMES + 1)
  assert.equal(rows.find(r => r.model === FOLDED_NAME)?.requests, 6)
  assert.equal(rows.reduce((sum, r) => sum + r.requests, 0), MAX_NAMES + 6)
})

test('UsageStore: a failed write keeps the counts in memory, logs once, and writes them when it can', async (t) => {
  const file = join(tempFolder(t), 'usage.sqlite')
  const { store, logs } = openStore(t, { file })
  // A second writer holding the lock makes the store's transaction fail (busy).
  const blocker = new Database(file)
  t.after(() => blocker.close())
  blocker.exec('BEGIN IMMEDIATE')
  store.record({ key: 'k', model: 'm', host: 'h', promptTokens: 5, completionTokens: 5 })
  assert.equal(store.flush(), 0)
  store.record({ key: 'k', model: 'm', host: 'h', promptTokens: 5, completionTokens: 5 })
  assert.equal(store.flush(), 0)
  assert.equal(logs.entries().filter(e => e.level === 50).length, 1, 'one error line per failure streak')
  blocker.exec('ROLLBACK')
  assert.equal(store.flush(), 1)
  assert.ok(logs.entries().some(e => e.msg === 'usage database writable again: pending counts written'))
  const { report } = await store.report({ since: '2026-01-01', until: '2030-12-31', by: ['key'] })
  assert.deepEqual(report.rows, [{ key: 'k', requests: 2, prompt_tokens: 10, completion_tokens: 10 }])
})

test('usage database layout: one WITHOUT ROWID row per key and day, names as ids', async (t) => {
  const file = join(tempFolder(t), 'usage.sqlite')
  const { store } = openStore(t, { file })
  for (const model of ['a', 'b']) for (const host of ['h1', 'h2']) store.record({ key: 'k', model, host, promptTokens: 1, completionTokens: 1 })
  store.flush()
  const db = new Database(file, { readonly: true })
  t.after(() => db.close())
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
  assert.equal(db.prepare('SELECT count(*) FROM daily_usage').pluck().get(), 1)
  assert.match(String(db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'daily_usage'").pluck().get()), /WITHOUT ROWID/)
  assert.equal(db.prepare('SELECT count(*) FROM models').pluck().get(), 2)
})
