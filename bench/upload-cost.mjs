#!/usr/bin/env node
// S3 of ../shared/bench (one 512 MiB blob upload) against product, standin and floor, pinned like
// the harness: proxy on CPU 0, loadgen and the Go fake Ollama on CPU 1. Each round starts every
// target afresh (in turn, so drift hits all alike), warms it with 32 MiB, then measures one upload:
// proxy CPU seconds (user and system), minor page faults, peak RSS (VmHWM after `clear_refs` 5),
// MB/s, and with --strace the proxy's system calls (strace -c -f; slows everything, so its CPU and
// MB/s are not comparable). The upstream's byte count is checked (`intact`).
//
//   node bench/upload-cost.mjs --rounds 3 product standin floor
//   node bench/upload-cost.mjs --strace product standin
//   node bench/upload-cost.mjs --node-flags=--max-semi-space-size=4 --cpu-prof /tmp/prof product
//   node bench/upload-cost.mjs --config-extra 'server:\n  upload_limit: 1000000000000' product
//   node bench/upload-cost.mjs --preload 8 --rounds 3 base:scratch/dist-base/src/server.js product standin
// (`name:entry` is the product built elsewhere, under its own name.)
// Only 127.0.0.1; every upload is bounded by loadgen's -timeout.
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import http from 'node:http'
import { parseArgs } from 'node:util'
import { benchBinaries, freePort, processCpu, shared, startPinned, statusKiB, waitReady } from './pinned-processes.mjs'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '1' },
    bytes: { type: 'string', default: String(512 * 2 ** 20) },
    strace: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
    'cpu-prof': { type: 'string' },
    entry: { type: 'string', default: 'dist/src/server.js' },
    'config-extra': { type: 'string', default: '' },
    'log-level': { type: 'string', default: 'info' },
    // Seconds of the harness's S1 (wrk, 64 connections) and then its S2 (200 streams) before the
    // warm-up, so the upload meets the heap those leave behind, as in a full ../shared/bench/run.
    preload: { type: 'string', default: '0' },
    // Seconds the target then sits idle before the upload (in the harness the other targets' turns).
    idle: { type: 'string', default: '0' },
    // Keeps what the proxy prints (its log lines, --trace-gc output) in <file>.<target>.<round>.
    stdout: { type: 'string' }
  }
})
const binDir = benchBinaries()
const work = mkdtempSync(join(tmpdir(), 'upload-cost-'))
function upstreamBlobBytes (port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/debug/stats' }, res => {
      let text = ''
      res.on('data', chunk => { text += chunk })
      res.on('end', () => resolve(JSON.parse(text).blob_bytes))
    }).on('error', reject)
  })
}

/**
 * The harness's S1 then S2 against the target, for `seconds` of S1 (bounded by wrk -d and loadgen
 * -timeout); returns S1's requests per proxy CPU-second.
 */
function preload (port, pid, seconds) {
  const before = processCpu(pid)
  const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', '-c64', `-d${seconds}s`, '--timeout', '5s', '-s', join(shared, 'wrk', 'embeddings.lua'), `http://127.0.0.1:${port}/api/embeddings`],
    { env: { ...process.env, BENCH_TOKEN: 'gen-token' }, encoding: 'utf8', timeout: (seconds + 30) * 1000 })
  const after = processCpu(pid)
  const requests = JSON.parse(out.slice(out.indexOf('BENCH_JSON ') + 11).split('\n')[0]).requests
  execFileSync('taskset', ['-c', '1', join(binDir, 'loadgen'), 'stream', '-url', `http://127.0.0.1:${port}/api/chat`, '-token', 'gen-token', '-n', '200', '-chunks', '200', '-timeout', '30s'],
    { stdio: 'ignore', timeout: 40_000 })
  return Math.round(requests / (after.user + after.system - before.user - before.system))
}

/** One loadgen upload pinned to CPU 1; resolves with its JSON line. */
function upload (port, bytes) {
  const digest = 'sha256:' + 'ab'.repeat(32)
  const out = execFileSync('taskset', ['-c', '1', join(binDir, 'loadgen'), 'upload', '-url', `http://127.0.0.1:${port}/api/blobs/${digest}`,
    '-token', 'model-token', '-bytes', String(bytes), '-timeout', '150s'], { encoding: 'utf8', timeout: 170_000 })
  return JSON.parse(out.trim().split('\n').pop())
}

const upstreamPort = await freePort()
startPinned(join(binDir, 'fake-ollama'), ['-addr', `127.0.0.1:${upstreamPort}`], { FAKE_DELAY_MS: '5', FAKE_CHUNKS: '200' }, 1)
await waitReady(upstreamPort)
const config = join(work, 'config.yaml')
writeFileSync(config, `auth:\n  generate_tokens:\n    - "gen-token"\n  model_tokens:\n    - "model-token"\nservice:\n  base_url: "http://127.0.0.1:${upstreamPort}"\nlog:\n  level: ${values['log-level']}\n${values['config-extra'].replaceAll('\\n', '\n')}\n`)

const nodeFlags = values['node-flags'].split(' ').filter(Boolean)
if (values['cpu-prof'] !== undefined) nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`)
const productAt = entry => port => ['node', [...nodeFlags, entry], { OLLAMA_PROXY_CONFIG: config, PORT: String(port), HOST: '127.0.0.1' }]
const targets = {
  product: productAt(values.entry),
  standin: port => ['node', [...nodeFlags, join(shared, 'standin-node-proxy.mjs')], { BENCH_CONFIG: config, PORT: String(port), HOST: '127.0.0.1', OLLAMA_BASE_URL: `http://127.0.0.1:${upstreamPort}` }],
  floor: port => ['node', [...nodeFlags, '--import', 'tsx', 'bench/floor-proxy.ts', String(upstreamPort), String(port)], {}]
}

const bytes = Number(values.bytes)
const names = (positionals.length > 0 ? positionals : ['product', 'standin', 'floor']).map(arg => {
  const [name, entry] = arg.split(':')
  if (entry !== undefined) targets[name] = productAt(entry)
  return name
})
const all = Object.fromEntries(names.map(name => [name, []]))
for (let round = 0; round < Number(values.rounds); round++) {
  for (const name of names) {
    const port = await freePort()
    const [command, args, env] = targets[name](port)
    const stdout = values.stdout === undefined ? 'ignore' : openSync(`${values.stdout}.${name}.${round}`, 'w')
    const child = startPinned(command, args, env, 0, stdout)
    await waitReady(port)
    const pid = child.pid // taskset execs in place
    const idleRss = statusKiB(pid, 'VmRSS') / 1024
    const s1PerCpuSecond = Number(values.preload) > 0 ? preload(port, pid, Number(values.preload)) : undefined
    await new Promise(resolve => setTimeout(resolve, Number(values.idle) * 1000))
    upload(port, 32 * 2 ** 20)
    await new Promise(resolve => setTimeout(resolve, 300))
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    const startRss = statusKiB(pid, 'VmRSS') / 1024
    const before = processCpu(pid)
    const arrivedBefore = await upstreamBlobBytes(upstreamPort)
    let tracer
    const straceOut = join(work, `strace.${name}.${round}`)
    if (values.strace) {
      tracer = spawn('strace', ['-c', '-f', '-p', String(pid), '-o', straceOut], { stdio: 'ignore' })
      await new Promise(resolve => setTimeout(resolve, 1000))
    }
    const u = upload(port, bytes)
    const after = processCpu(pid)
    const result = {
      target: name,
      round,
      status: u.status,
      intact: (await upstreamBlobBytes(upstreamPort)) - arrivedBefore === bytes,
      mbPerS: +u.mb_per_s.toFixed(0),
      cpuS: +(after.user + after.system - before.user - before.system).toFixed(2),
      userS: +(after.user - before.user).toFixed(2),
      sysS: +(after.system - before.system).toFixed(2),
      minorFaults: after.minorFaults - before.minorFaults,
      peakRssMiB: +(statusKiB(pid, 'VmHWM') / 1024).toFixed(1),
      // RSS right after start, and just before the measured upload (after the 32 MiB warm-up)
      idleRssMiB: +idleRss.toFixed(1),
      startRssMiB: +startRss.toFixed(1),
      endRssMiB: +(statusKiB(pid, 'VmRSS') / 1024).toFixed(1),
      s1PerCpuSecond
    }
    if (tracer !== undefined) {
      tracer.kill('SIGINT')
      await new Promise(resolve => tracer.once('exit', resolve))
      result.syscalls = {}
      for (const line of readFileSync(straceOut, 'utf8').split('\n')) {
        const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/.exec(line)
        if (m !== null && Number(m[1]) >= 20) result.syscalls[m[2]] = Number(m[1])
      }
    }
    process.kill(-child.pid, 'SIGTERM')
    await new Promise(resolve => child.once('exit', resolve))
    all[name].push(result)
    console.log(JSON.stringify(result))
  }
}
const median = list => { const s = [...list].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)] }
if (Number(values.rounds) > 1) {
  for (const name of names) {
    const runs = all[name]
    console.log(JSON.stringify({ target: name, median: true, mbPerS: median(runs.map(r => r.mbPerS)), cpuS: median(runs.map(r => r.cpuS)), peakRssMiB: median(runs.map(r => r.peakRssMiB)) }))
  }
}
process.exit(0)
