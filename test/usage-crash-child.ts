// A proxy stand-in for usage-crash.test.ts: records usage in bursts, one burst after each
// flush, and says on stdout how many requests each flush wrote in total. The test kills it.
import { UsageStore } from '../plugins/usage/usage-store.js'

const [file, burstText] = process.argv.slice(2)
const burst = Number(burstText)
const store = UsageStore.open({ file, timezone: 'UTC', retentionDays: 30, flushIntervalMs: 20 })
let recorded = 0

function recordBurst (): void {
  for (let i = 0; i < burst; i++) {
    store.record({ key: `key-${i % 10}`, model: `model-${i % 7}`, host: `host-${i % 3}`, promptTokens: 3, completionTokens: 2 })
  }
  recorded += burst
}

store.on('flush', () => {
  process.stdout.write(`flushed ${recorded}\n`)
  recordBurst()
})
recordBurst()
// The store's timer is unref'd, as in the proxy: this keeps the process up until it is killed.
setInterval(() => {}, 60_000)
