#!/usr/bin/env node
// What the fair slot scheduler (plugins/scheduling) costs in one process, without HTTP, as built
// (tsx's keepNames helpers would add a property write per closure):
//   npm run build && node --expose-gc bench/scheduler-cost.mjs [--requests 10000]
// - memory: heap held by N queued requests (each with its own AbortController, as the proxy
//   gives every request one), measured after a full GC, for 1, 100 and N waiting keys;
// - dispatch: time per grant (release() of the slot up to the next waiter's grant) while N
//   requests wait, for 1, 100 and N keys: O(log k) in the waiting keys k (best of 5 rounds);
// - the uncontended path (a free slot: acquire + release) per request, one host and three.
// Every loop is bounded by --requests; nothing touches the network.
import { parseArgs } from 'node:util'
import { SlotScheduler } from '../dist/plugins/scheduling/slot-scheduler.js'

const { values } = parseArgs({ options: { requests: { type: 'string', default: '10000' } } })
const requests = Number(values.requests)
const gc = globalThis.gc
if (gc === undefined) throw new Error('run with node --expose-gc')

const host = () => ({ name: 'gpu', maxConcurrent: 1, healthy: true, models: new Set(), loaded: new Set(), inFlight: 0 })
const settings = { queueSize: requests, queueTimeoutMs: 600_000 }
const MiB = 2 ** 20

function heapAfterGc () {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

async function memory (keys, signals) {
  const scheduler = new SlotScheduler([host()], settings)
  const holder = await scheduler.acquire({ key: 'holder' })
  const before = heapAfterGc()
  const pending = []
  const controllers = []
  for (let i = 0; i < requests; i++) {
    const controller = signals ? new AbortController() : undefined
    if (controller !== undefined) controllers.push(controller)
    pending.push(scheduler.acquire({ key: `key-${i % keys}`, signal: controller?.signal }))
  }
  const after = heapAfterGc()
  if (scheduler.waiting !== requests) throw new Error(`expected ${requests} waiting, got ${scheduler.waiting}`)
  scheduler.close()
  await Promise.allSettled(pending)
  holder.release()
  return (after - before) / MiB
}

/** Best of 5 rounds (the first ones run before the JIT has compiled the scheduler). */
async function bestDispatch (keys) {
  let best = { perGrantUs: Infinity, enqueueUs: Infinity }
  for (let round = 0; round < 5; round++) {
    const { perGrantUs, enqueueUs } = await dispatch(keys)
    best = { perGrantUs: Math.min(best.perGrantUs, perGrantUs), enqueueUs: Math.min(best.enqueueUs, enqueueUs) }
  }
  return best
}

async function dispatch (keys) {
  const scheduler = new SlotScheduler([host()], settings)
  let current = await scheduler.acquire({ key: 'holder' })
  const granted = []
  const enqueueStart = process.hrtime.bigint()
  for (let i = 0; i < requests; i++) {
    scheduler.acquire({ key: `key-${i % keys}` }).then(grant => { granted.push(grant) }, () => {})
  }
  const enqueueNs = Number(process.hrtime.bigint() - enqueueStart)
  let spent = 0n
  for (let served = 0; served < requests; served++) {
    const start = process.hrtime.bigint()
    current.release()
    spent += process.hrtime.bigint() - start
    while (granted.length === 0) await Promise.resolve()
    current = granted.pop()
  }
  current.release()
  return { perGrantUs: Number(spent) / requests / 1000, enqueueUs: enqueueNs / requests / 1000 }
}

/** µs per acquire + release with a slot free, the model named, on `hostCount` hosts; best of 5 runs. */
async function uncontended (hostCount) {
  const hosts = Array.from({ length: hostCount }, (_, i) => ({ ...host(), name: `gpu${i}`, maxConcurrent: 64 }))
  const scheduler = new SlotScheduler(hosts, settings)
  let best = Infinity
  for (let run = 0; run < 5; run++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < requests; i++) (await scheduler.acquire({ key: `key-${i % 8}`, model: 'llama3.2' })).release()
    best = Math.min(best, Number(process.hrtime.bigint() - start) / requests / 1000)
  }
  return best
}

const rows = []
for (const keys of [1, 100, requests]) {
  const withSignals = await memory(keys, true)
  const bare = await memory(keys, false)
  const { perGrantUs, enqueueUs } = await bestDispatch(keys)
  rows.push(`| ${keys} | ${withSignals.toFixed(1)} | ${bare.toFixed(1)} | ${enqueueUs.toFixed(2)} | ${perGrantUs.toFixed(2)} |`)
}
console.log(`${requests} queued requests on one host (max_concurrent 1), Node ${process.version}\n`)
console.log('| waiting keys | heap MiB (with AbortController each) | heap MiB (scheduler only) | enqueue µs/request | dispatch µs/grant |')
console.log('|---|---|---|---|---|')
for (const row of rows) console.log(row)
for (const hostCount of [1, 3]) {
  console.log(`\nuncontended acquire + release (free slot, model named), ${hostCount} host(s): ${(await uncontended(hostCount)).toFixed(2)} µs/request`)
}
