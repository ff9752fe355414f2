import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { UsageStore } from '../plugins/usage/usage-store.js'
import { tempFolder } from './usage-helper.js'

const child = fileURLToPath(new URL('./usage-crash-child.ts', import.meta.url))
const BURST = 1000

test('usage store: a crash (SIGKILL) loses at most the counts of one flush interval, and a restart sees the rest', async (t) => {
  const file = join(tempFolder(t), 'usage.sqlite')
  const proc = spawn(process.execPath, ['--import', 'tsx', child, file, String(BURST)], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => proc.kill('SIGKILL'))
  const exited = once(proc, 'exit')
  let flushed = 0
  let flushes = 0
  for await (const line of createInterface({ input: proc.stdout })) {
    const match = /^flushed (\d+)$/.exec(line)
    assert.ok(match !== null, `unexpected output: ${line}`)
    flushed = Number(match[1])
    // Killed right after a flush said it wrote; more bursts may be in memory or mid-transaction.
    if (++flushes === 5) proc.kill('SIGKILL')
  }
  const [, signal] = await exited
  assert.equal(signal, 'SIGKILL')

  const store = UsageStore.open({ file, timezone: 'UTC', retentionDays: 30 })
  t.after(async () => { await store.close() })
  const { report } = await store.report({ since: '2020-01-01', until: '2030-01-01', by: [] })
  const requests = report.rows[0]?.requests ?? 0
  assert.ok(requests >= flushed, `every flush that finished is kept: ${requests} >= ${flushed}`)
  // Each flush writes whole bursts in one transaction, and at most one burst waits in memory at a
  // time: whatever the kill interrupted, the loss is under one flush interval's counts.
  assert.equal(requests % BURST, 0, `a flush is all or nothing: ${requests}`)
  assert.equal(report.rows[0].prompt_tokens, requests * 3)
  // The budgets after the restart see the same counts.
  const spent = [...Array(10).keys()].reduce((sum, i) => sum + store.spent(`key-${i}`).dayRequests, 0)
  assert.equal(spent, requests)
})
