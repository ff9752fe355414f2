#!/usr/bin/env node
// Per-request cost of a proxy, measured in ways a busy machine does not distort much:
//   --mode cpu        utime+stime of the proxy per request over a fixed number of requests, split
//                     into user and system time, context switches, and CPU ms per thread
//   --mode callgrind  instructions (Ir) per request, counted by valgrind's callgrind over a
//                     fixed number of requests after a warm-up (counters zeroed in between)
//   --mode strace     system calls per request (strace -c on the proxy's threads) over a fixed count
//   --mode rss        resident size right after start (no request yet) and after the run
// Targets: product (dist/src/server.js), standin (../shared/bench), floor (bench/floor-proxy.ts).
// Upstream: the Go fake Ollama of ../shared/bench (built by its setup), pinned to CPU 1; the
// proxy is pinned to CPU 0. Only 127.0.0.1; every loop is bounded by a request count.
//
//   node bench/request-cost.mjs --mode callgrind --requests 2000 product standin floor
//   node bench/request-cost.mjs --mode cpu --requests 20000 --route chat product
//   node bench/request-cost.mjs --entry /elsewhere/dist/src/server.js product   (another build)
// Comparing builds under callgrind: add --node-flags=--no-concurrent-recompilation, or valgrind's
// starving of V8's background compiler decides how much unoptimised code runs in the window.
// --proxy-cpu 1 lets two callgrind runs go side by side (counts do not depend on the core).
import { spawn, execFileSync } from 'node:child_process'
import { openSync, mkdtempSync, readFileSync, writeFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import http from 'node:http'
import { parseArgs } from 'node:util'
import { benchBinaries, freePort, processCpu, shared, startPinned, statusKiB, waitReady } from './pinned-processes.mjs'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    mode: { type: 'string', default: 'cpu' },
    requests: { type: 'string', default: '5000' },
    warmup: { type: 'string', default: '2000' },
    connections: { type: 'string', default: '64' },
    route: { type: 'string', default: 'embeddings' },
    'node-flags': { type: 'string', default: '' },
    'cpu-prof': { type: 'string' },
    stdout: { type: 'string' },
    entry: { type: 'string', default: 'dist/src/server.js' },
    'log-level': { type: 'string', default: 'info' },
    // Callgrind counts do not depend on the core: parallel callgrind runs may spread over both.
    'proxy-cpu': { type: 'string', default: '0' }
  }
})
const binDir = benchBinaries()
const work = mkdtempSync(join(tmpdir(), 'request-cost-'))
const readyTimeoutMs = values.mode === 'callgrind' ? 600_000 : 60_000

const bodies = {
  embeddings: { path: '/api/embeddings', body: '{"model":"nomic-embed-text","prompt":"The sky is blue because of Rayleigh scattering."}' },
  chat: { path: '/api/chat', body: '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":20}}' }
}

/** Sends exactly `count` requests over `connections` keep-alive connections; resolves with failures. */
async function load (port, count, connections) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  const { path, body } = bodies[values.route]
  let sent = 0
  let failed = 0
  const one = () => new Promise(resolve => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { authorization: 'Bearer gen-token', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, res => {
      if (res.statusCode !== 200) failed++
      res.resume()
      res.on('end', resolve)
    })
    req.on('error', () => { failed++; resolve() })
    req.end(body)
  })
  await Promise.all(Array.from({ length: connections }, async () => {
    while (sent < count) { sent++; await one() }
  }))
  agent.destroy()
  return failed
}

/** CPU ms per thread name (summed over threads of one name), minus `since` when given. */
function threadCpu (pid, since = {}) {
  const out = {}
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8')
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
    const thread = `${name}:${task === String(pid) ? 'main' : task}`
    out[thread] = (out[thread] ?? 0) + (Number(fields[11]) + Number(fields[12])) * 10
  }
  for (const name of Object.keys(out)) out[name] -= since[name] ?? 0
  return out
}
/** Voluntary and involuntary context switches of every thread of the process. */
function contextSwitches (pid) {
  let total = 0
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8')
    for (const m of status.matchAll(/ctxt_switches:\s+(\d+)/g)) total += Number(m[1])
  }
  return total
}
function rssMiB (pid) {
  return statusKiB(pid, 'VmRSS') / 1024
}

const upstreamPort = await freePort()
startPinned(join(binDir, 'fake-ollama'), ['-addr', `127.0.0.1:${upstreamPort}`], { FAKE_DELAY_MS: '0' }, 1)
await waitReady(upstreamPort, readyTimeoutMs)
const config = join(work, 'config.yaml')
writeFileSync(config, `auth:\n  generate_tokens:\n    - "gen-token"\n  model_tokens:\n    - "model-token"\nservice:\n  base_url: "http://127.0.0.1:${upstreamPort}"\nlog:\n  level: ${values['log-level']}\n`)

const nodeFlags = values['node-flags'].split(' ').filter(Boolean)
if (values['cpu-prof'] !== undefined) nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`)
const targets = {
  product: port => ['node', [...nodeFlags, values.entry], { OLLAMA_PROXY_CONFIG: config, PORT: String(port), HOST: '127.0.0.1' }],
  standin: port => ['node', [...nodeFlags, join(shared, 'standin-node-proxy.mjs')], { BENCH_CONFIG: config, PORT: String(port), HOST: '127.0.0.1', OLLAMA_BASE_URL: `http://127.0.0.1:${upstreamPort}` }],
  floor: port => ['node', [...nodeFlags, '--import', 'tsx', 'bench/floor-proxy.ts', String(upstreamPort), String(port)], {}]
}

const results = []
for (const name of positionals.length > 0 ? positionals : ['product', 'standin', 'floor']) {
  const port = await freePort()
  let [command, args, env] = targets[name](port)
  const outFile = join(work, `callgrind.${name}`)
  if (values.mode === 'callgrind') {
    args = ['--tool=callgrind', `--callgrind-out-file=${outFile}`, '--dump-instr=no', '--collect-jumps=no', command, ...args]
    command = 'valgrind'
  }
  // --stdout keeps what the proxy prints (its log lines, --trace-gc output) for reading afterwards.
  const child = startPinned(command, args, env, Number(values['proxy-cpu']), values.stdout === undefined ? 'ignore' : openSync(`${values.stdout}.${name}`, 'w'))
  await waitReady(port, readyTimeoutMs)
  // taskset and valgrind both exec in place: the child's pid is the proxy's.
  const measuredPid = child.pid
  const idleRss = rssMiB(measuredPid)
  const count = Number(values.requests)
  await load(port, Number(values.warmup), Number(values.connections))
  const result = { target: name, requests: count, idleRssMiB: +idleRss.toFixed(1) }
  if (values.mode === 'callgrind') {
    // vgdb names its pipes after $HOST, which the proxy's environment sets: use the same.
    const control = (command) => execFileSync('callgrind_control', [command, String(child.pid)], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } })
    control('-z')
    result.failed = await load(port, count, Number(values.connections))
    control('-d')
    let dumps = []
    for (let i = 0; i < 600 && dumps.length === 0; i++) {
      await new Promise(resolve => setTimeout(resolve, 100))
      dumps = readdirSync(work).filter(f => f.startsWith(`callgrind.${name}.`)).sort()
    }
    if (dumps.length === 0) throw new Error(`no callgrind dump in ${work}: ${readdirSync(work).join(' ')}`)
    const last = readFileSync(join(work, dumps[dumps.length - 1]), 'utf8')
    const total = Number(/^(?:summary|totals): (\d+)/m.exec(last)[1])
    result.instructionsPerRequest = Math.round(total / count)
    result.dump = join(work, dumps[dumps.length - 1])
  } else if (values.mode === 'strace') {
    const out = join(work, `strace.${name}`)
    const tracer = spawn('strace', ['-c', '-f', '-p', String(measuredPid), '-o', out], { stdio: 'ignore' })
    await new Promise(resolve => setTimeout(resolve, 1000)) // attached to every thread
    result.failed = await load(port, count, Number(values.connections))
    tracer.kill('SIGINT')
    await new Promise(resolve => tracer.once('exit', resolve))
    result.syscallsPerRequest = {}
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/.exec(line)
      if (m !== null && Number(m[1]) >= count / 20) result.syscallsPerRequest[m[2]] = +(Number(m[1]) / count).toFixed(2)
    }
  } else {
    const before = processCpu(measuredPid)
    const switchesBefore = contextSwitches(measuredPid)
    const threadsBefore = threadCpu(measuredPid)
    const t0 = performance.now()
    result.failed = await load(port, count, Number(values.connections))
    result.seconds = +((performance.now() - t0) / 1000).toFixed(2)
    const after = processCpu(measuredPid)
    const cpu = after.user + after.system - before.user - before.system
    result.cpuMsPerRequest = +(cpu * 1000 / count).toFixed(4)
    result.userMsPerRequest = +((after.user - before.user) * 1000 / count).toFixed(4)
    result.systemMsPerRequest = +((after.system - before.system) * 1000 / count).toFixed(4)
    result.contextSwitchesPerRequest = +((contextSwitches(measuredPid) - switchesBefore) / count).toFixed(2)
    result.requestsPerCpuSecond = Math.round(count / cpu)
    result.threadCpuMs = threadCpu(measuredPid, threadsBefore)
  }
  result.rssAfterMiB = +rssMiB(measuredPid).toFixed(1)
  process.kill(-child.pid, 'SIGTERM')
  await new Promise(resolve => child.once('exit', resolve))
  results.push(result)
  console.log(JSON.stringify(result))
}
process.exit(0)
