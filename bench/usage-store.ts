// The usage store's cost (issue 20): a busy year written through the store's own record() and
// flush() (100 keys x 20 models x 5 hosts x 365 days, every combination present), then its size
// on disk, the time of `usage --by key,model` over it, and the hot path's cost (record() per call,
// a flush per second of steady traffic on the full store). With --redis, the same year also goes through a throwaway
// redis-server: its memory, and a report read from Redis by another replica.
//
//   node --import tsx bench/usage-store.ts                    # typical counts
//   node --import tsx bench/usage-store.ts --counts heavy     # every count large
//   node --import tsx bench/usage-store.ts --redis            # needs redis-server
//
// Only 127.0.0.1; every loop is bounded by the year's size; the temp folder is removed at the end.
import { once } from 'node:events'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { UsageReader } from '../plugins/usage/usage-reader.js'
import { UsageStore, type UsageEntry } from '../plugins/usage/usage-store.js'
import { sharingThrough } from '../plugins/usage/shared-usage.js'
import { runUsageCommand } from '../src/usage-command.js'
import { startRedis } from '../test/redis-server.js'

const { values } = parseArgs({
  options: {
    counts: { type: 'string', default: 'typical' },
    redis: { type: 'boolean', default: false },
    days: { type: 'string', default: '365' },
    keys: { type: 'string', default: '100' },
    models: { type: 'string', default: '20' },
    hosts: { type: 'string', default: '5' }
  }
})
const DAYS = Number(values.days)
const KEYS = Number(values.keys)
const MODELS = Number(values.models)
const HOSTS = Number(values.hosts)
const heavy = values.counts === 'heavy'
const DAY_MS = 86_400_000
const START = Date.parse('2026-01-01T12:00:00Z')

let seed = 42
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31
  return seed / 2 ** 31
}
/**
 * One key's use of one model on one host in a day. Typical: 1 to 40 requests of 100 to 1600
 * prompt and 20 to 420 completion tokens each (the whole box: about 90 M tokens a day). Heavy:
 * 1 to 1000 requests of 500 to 2000 and 100 to 400 tokens (far past what one GPU box serves).
 */
function counts (): [number, number, number] {
  const requests = 1 + Math.floor(random() * (heavy ? 1000 : 40))
  const prompt = requests * (heavy ? 500 + Math.floor(random() * 1500) : 100 + Math.floor(random() * 1500))
  const completion = requests * (heavy ? 100 + Math.floor(random() * 300) : 20 + Math.floor(random() * 400))
  return [requests, prompt, completion]
}

const keyNames = Array.from({ length: KEYS }, (_, i) => `key-${i}`)
const modelNames = Array.from({ length: MODELS }, (_, i) => `model-${i}:latest`)
const hostNames = Array.from({ length: HOSTS }, (_, i) => `gpu-${i}`)
const median = (samples: number[]) => [...samples].sort((a, b) => a - b)[Math.floor(samples.length / 2)]
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`

const folder = mkdtempSync(join(tmpdir(), 'usage-bench-'))
const redisServer = values.redis ? await startRedis() : undefined
const shared = redisServer !== undefined ? { url: redisServer.url, prefix: 'bench:' } : null
try {
  const file = join(folder, 'usage.sqlite')
  let now = START
  const store = UsageStore.open({ file, timezone: 'UTC', retentionDays: 400, now: () => now, flushIntervalMs: 3_600_000, sharing: shared === null ? undefined : sharingThrough(shared, 400) })
  const connected = async (replica: UsageStore) => {
    for (let attempt = 0; attempt < 250 && replica.redisMode === 'local'; attempt++) await new Promise(resolve => setTimeout(resolve, 20))
  }

  // The year, one day at a time; each day is one flush, like a busy second holding a whole day.
  let recordNs = 0
  let records = 0
  const flushMs: number[] = []
  for (let day = 0; day < DAYS; day++) {
    now = START + day * DAY_MS
    const entries: UsageEntry[] = []
    for (let key = 0; key < KEYS; key++) {
      for (let model = 0; model < MODELS; model++) {
        for (let host = 0; host < HOSTS; host++) {
          const [requests, promptTokens, completionTokens] = counts()
          entries.push({ key: keyNames[key], model: modelNames[model], host: hostNames[host], promptTokens, completionTokens, requests })
        }
      }
    }
    const started = process.hrtime.bigint()
    for (const entry of entries) store.record(entry)
    recordNs += Number(process.hrtime.bigint() - started)
    records += entries.length
    const flushStarted = performance.now()
    store.flush()
    flushMs.push(performance.now() - flushStarted)
  }
  // Steady state on the full store: an hour of seconds, each with 50 answers from random keys.
  const secondMs: number[] = []
  for (let second = 0; second < 3600; second++) {
    now = START + (DAYS - 1) * DAY_MS + second * 1000
    for (let answer = 0; answer < 50; answer++) {
      const [, promptTokens, completionTokens] = counts()
      store.record({ key: keyNames[Math.floor(random() * KEYS)], model: modelNames[Math.floor(random() * MODELS)], host: hostNames[Math.floor(random() * HOSTS)], promptTokens, completionTokens })
    }
    const started = performance.now()
    store.flush()
    secondMs.push(performance.now() - started)
  }

  // With Redis: exchanges until the outbox is empty (each takes at most 10 000 rows).
  let pushMs = 0
  if (shared !== null) {
    // Connected only now: the year above holds the event loop far longer than a command's timeout.
    await connected(store)
    const pushStarted = performance.now()
    for (let round = 0; round < 100; round++) {
      const synced = once(store, 'sync')
      store.flush()
      const [{ ok, rows }] = await synced
      if (ok && rows === 0) break
      if (!ok) await new Promise(resolve => setTimeout(resolve, 100))
    }
    pushMs = performance.now() - pushStarted
  }
  await store.close()
  const size = statSync(file).size
  const walBytes = (() => { try { return statSync(`${file}-wal`).size } catch { return 0 } })()

  const query = { since: '2026-01-01', until: '2026-12-31', by: ['key', 'model'] as Array<'key' | 'model'> }
  const reader = UsageReader.open({ file })
  const reportMs: number[] = []
  let rows = 0
  for (let round = 0; round < 5; round++) {
    const started = performance.now()
    rows = (await reader.report(query)).report.rows.length
    reportMs.push(performance.now() - started)
  }
  const byDayStarted = performance.now()
  const dayRows = (await reader.report({ ...query, by: ['key', 'model', 'day'] })).report.rows.length
  const byDayMs = performance.now() - byDayStarted
  await reader.close()

  // The command itself, as a user runs it (in this process: no Node start-up in the figure).
  const config = join(folder, 'config.yaml')
  // The proxy's config as a user has it: the command validates the whole file, keys included.
  writeFileSync(config, `auth:\n  keys:\n    - name: bench\n      key: "sha256:${'0'.repeat(64)}"\n      scopes: [generate]\nusage:\n  database: "${file}"\n`)
  const commandStarted = performance.now()
  let output = ''
  const status = await runUsageCommand(['--since', '2026-01-01', '--until', '2026-12-31', '--by', 'key,model', '--format', 'json', '--config', config], { out: text => { output += text }, err: text => process.stderr.write(text), env: {}, now: () => START + 200 * DAY_MS })
  const commandMs = performance.now() - commandStarted

  console.log(`busy year: ${KEYS} keys x ${MODELS} models x ${HOSTS} hosts x ${DAYS} days = ${records} cells, ${heavy ? 'heavy' : 'typical'} counts`)
  console.log(`database: ${mb(size)} on disk (${size} bytes; write-ahead log after close: ${walBytes} bytes)`)
  console.log(`report --by key,model over the year: median ${median(reportMs).toFixed(0)} ms of 5 (${reportMs.map(ms => ms.toFixed(0)).join(', ')}), ${rows} rows`)
  console.log(`report --by key,model,day: ${byDayMs.toFixed(0)} ms, ${dayRows} rows`)
  console.log(`usage command --by key,model --format json: ${commandMs.toFixed(0)} ms, exit ${status}, ${output.length} bytes`)
  console.log(`record(): ${(recordNs / records).toFixed(0)} ns per call`)
  const sortedSeconds = [...secondMs].sort((a, b) => a - b)
  console.log(`flush of one busy second (50 answers) on the full store: median ${median(secondMs).toFixed(2)} ms, p99 ${sortedSeconds[Math.floor(sortedSeconds.length * 0.99)].toFixed(2)} ms, max ${Math.max(...secondMs).toFixed(1)} ms over 3600 flushes`)
  console.log(`flush of one day (${KEYS} rows of ${MODELS * HOSTS} cells): median ${median(flushMs).toFixed(1)} ms, max ${Math.max(...flushMs).toFixed(1)} ms`)

  if (redisServer !== undefined && shared !== null) {
    const raw = new Redis(redisServer.url)
    const memory = /used_memory:(\d+)/.exec(await raw.info('memory'))?.[1]
    raw.disconnect()
    // Another replica, with an empty database of its own: its report comes from Redis alone.
    const other = UsageStore.open({ file: join(folder, 'other.sqlite'), timezone: 'UTC', retentionDays: 400, now: () => now, sharing: sharingThrough(shared, 400) })
    await connected(other)
    const started = performance.now()
    const result = await other.report(query)
    console.log(`redis: sending the year took ${(pushMs / 1000).toFixed(1)} s; used_memory ${mb(Number(memory))}; another replica's report --by key,model from Redis: ${(performance.now() - started).toFixed(0)} ms, ${result.report.rows.length} rows (${result.redis})`)
    await other.close()
  }
} finally {
  await redisServer?.stop()
  rmSync(folder, { recursive: true, force: true })
}
