// Benchmark harness: ollama-proxy ("ours") against nginx and against no proxy at all ("direct"),
// all in front of the same fast fake Ollama (bench/fast-upstream.ts).
//
//   npm run bench                            build, then the full run (3 rounds, about 3 minutes)
//   node --import tsx bench/run.ts --quick   1 round, shorter runs (under a minute; needs dist/)
//   options: --rounds <n>  --only S1,S3  --no-pin  --no-nginx
//            --profile   ours runs with --cpu-prof; profiles land in bench/results/profiles/
//
// The proxy under test is pinned to CPU 0; this process (the load generator) and the fast
// upstream to CPU 1. For each round, for each scenario, direct, nginx and ours run in turn;
// the table shows medians over the rounds. Raw results go to bench/results/<timestamp>.json.
// See bench/README.md.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { cpuSeconds, cpusAllowed, machineBusySeconds, sumCpuSeconds, sumRssBytes } from './procfs.js'
import { S2_LINES, S4_STREAMS, S5_STREAMS, scenarios, type Metrics, type Scenario } from './scenarios.js'
import {
  FastUpstream, Pinning, findNginx, killAllChildren, nginxVersion, startNginx, startOurs,
  type RunningProxy, type Target, type TargetName, type Tokens
} from './targets.js'

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    'no-pin': { type: 'boolean', default: false },
    'no-nginx': { type: 'boolean', default: false },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false }
  },
  allowPositionals: false
})

const quick = args.quick === true
const rounds = args.rounds !== undefined ? Math.max(1, Number.parseInt(args.rounds, 10) || 1) : (quick ? 1 : 3)
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const TARGETS: readonly TargetName[] = ['direct', 'nginx', 'ours']
const only = args.only?.toUpperCase().split(',').map(id => id.trim()).filter(id => id !== '')
const selected = scenarios.filter(s => only === undefined || only.includes(s.id))
if (selected.length === 0) {
  console.error(`--only ${args.only}: no such scenario (S1 to S5)`)
  process.exit(2)
}
const profileDir = args.profile === true ? join(repoRoot, 'bench', 'results', 'profiles') : undefined

// ---------------------------------------------------------------------------------------------
// Cleanup: every child dies with us, whatever the way out.

const workDir = mkdtempSync(join(tmpdir(), 'ollama-proxy-bench-'))

function cleanupSync (): void {
  killAllChildren()
  try {
    rmSync(workDir, { recursive: true, force: true })
  } catch {}
}

process.on('exit', cleanupSync)
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping the upstream, nginx and the proxy`)
    cleanupSync()
    process.exit(code)
  })
}

// ---------------------------------------------------------------------------------------------
// Records

interface RunRecord {
  round: number
  scenario: Scenario['id']
  target: TargetName
  metrics: Metrics
  error?: string
}

const records: RunRecord[] = []
/** Runs replaced by a rerun because other processes were busy. */
const discarded: RunRecord[] = []
/** Seconds of reruns allowed, so that the whole run stays bounded. */
let retryBudget = quick ? 10 : 20

/** Other processes used more than a quarter of a CPU during the run. */
function noisy (record: RunRecord): boolean {
  return record.error === undefined && record.metrics.foreignCpu > 0.25 * record.metrics.wallS
}
const notes: string[] = []

function log (line: string): void {
  process.stdout.write(`${line}\n`)
}

/**
 * One scenario against one target, with the CPU seconds of everyone involved. `allProxyPids`
 * are the pids of every running proxy (the idle one included), so that what the machine spent
 * beyond our processes ("foreign", e.g. other jobs on a shared box) can be flagged.
 */
async function measure (scenario: Scenario, target: Target, upstream: FastUpstream, tokens: Tokens, round: number, allProxyPids: number[]): Promise<RunRecord> {
  await upstream.reset()
  await sleep(150)
  const pids = target.proxyPids()
  const upstreamBefore = cpuSeconds(upstream.pid) ?? 0
  const proxyBefore = sumCpuSeconds(pids)
  const allProxiesBefore = sumCpuSeconds(allProxyPids)
  const machineBefore = machineBusySeconds()
  const generatorBefore = process.cpuUsage()
  const started = performance.now()
  const record: RunRecord = { round, scenario: scenario.id, target: target.name, metrics: {} }
  try {
    record.metrics = await scenario.run({ target, upstream, tokens, quick, round })
  } catch (err) {
    record.error = (err as Error).message
  }
  const wall = (performance.now() - started) / 1000
  const generator = process.cpuUsage(generatorBefore)
  const machine = machineBusySeconds()
  const metrics = record.metrics
  metrics.wallS = wall
  metrics.upstreamCpu = (cpuSeconds(upstream.pid) ?? upstreamBefore) - upstreamBefore
  metrics.generatorCpu = (generator.user + generator.system) / 1e6
  metrics.cpu1Busy = (metrics.upstreamCpu + metrics.generatorCpu) / wall
  if (pids.length > 0) {
    metrics.proxyCpu = sumCpuSeconds(pids) - proxyBefore
    metrics.proxyBusy = metrics.proxyCpu / wall
  }
  const ours = metrics.upstreamCpu + metrics.generatorCpu + (sumCpuSeconds(allProxyPids) - allProxiesBefore)
  metrics.foreignCpu = Math.max(0, machine.total - machineBefore.total - ours)
  machine.perCpu.forEach((busy, cpu) => { metrics[`machineCpu${cpu}Busy`] = (busy - (machineBefore.perCpu[cpu] ?? 0)) / wall })
  return record
}

const fmt = {
  int: (v: number) => Math.round(v).toLocaleString('en-US'),
  ms: (v: number) => v.toFixed(Math.abs(v) < 10 ? 2 : 1),
  s: (v: number) => v.toFixed(2),
  pct: (v: number) => `${Math.round(v * 100)}%`,
  mib: (v: number) => (v / 1024 / 1024).toFixed(1),
  of: (total: number) => (v: number) => `${Math.round(v)}/${total}`
}

function summary (record: RunRecord): string {
  if (record.error !== undefined) return `ERROR ${record.error}`
  const m = record.metrics
  const parts: string[] = []
  const add = (key: string, label: string, format: (v: number) => string): void => {
    if (m[key] !== undefined) parts.push(`${label} ${format(m[key])}`)
  }
  add('rps', 'req/s', fmt.int)
  add('p99', 'p99 ms', fmt.ms)
  add('non2xx', 'non-2xx', fmt.int)
  add('ttfcP99', 'ttfc p99 ms', fmt.ms)
  add('worstGap', 'worst gap ms', fmt.ms)
  add('lines', 'lines', fmt.of(S2_LINES))
  add('mbps', 'MB/s', v => v.toFixed(0))
  add('closedWithin1s', 'closed', fmt.of(S4_STREAMS))
  add('idleRss', 'idle RSS MiB', fmt.mib)
  add('peakRss', 'peak RSS MiB', fmt.mib)
  add('proxyCpu', 'proxy CPU s', fmt.s)
  add('upstreamCpu', 'upstream CPU s', fmt.s)
  add('cpu1Busy', 'CPU1', fmt.pct)
  return parts.join('  ')
}

// ---------------------------------------------------------------------------------------------
// The table

interface Row {
  label: string
  scenario: Scenario['id']
  key: string
  format: (v: number) => string
  /** false for counts and differences, where a ratio means nothing */
  ratio: boolean
}

const rows: Row[] = [
  { label: 'S1 req/s (higher better)', scenario: 'S1', key: 'rps', format: fmt.int, ratio: true },
  { label: 'S1 latency p50 ms', scenario: 'S1', key: 'p50', format: fmt.ms, ratio: true },
  { label: 'S1 latency p99 ms', scenario: 'S1', key: 'p99', format: fmt.ms, ratio: true },
  { label: 'S1 non-2xx (must be 0)', scenario: 'S1', key: 'non2xx', format: fmt.int, ratio: false },
  { label: 'S1 proxy CPU busy', scenario: 'S1', key: 'proxyBusy', format: fmt.pct, ratio: false },
  { label: 'S1 CPU 1 busy (gen+upstream)', scenario: 'S1', key: 'cpu1Busy', format: fmt.pct, ratio: false },
  { label: 'S1 upstream CPU s', scenario: 'S1', key: 'upstreamCpu', format: fmt.s, ratio: false },
  { label: 'S2 first chunk p50 ms', scenario: 'S2', key: 'ttfcP50', format: fmt.ms, ratio: true },
  { label: 'S2 first chunk p99 ms', scenario: 'S2', key: 'ttfcP99', format: fmt.ms, ratio: true },
  { label: 'S2 added p99 vs direct ms', scenario: 'S2', key: 'addedTtfcP99', format: fmt.ms, ratio: false },
  { label: 'S2 worst gap between chunks ms', scenario: 'S2', key: 'worstGap', format: fmt.ms, ratio: true },
  { label: 'S2 chunks delivered', scenario: 'S2', key: 'lines', format: fmt.of(S2_LINES), ratio: false },
  { label: 'S2 proxy CPU s', scenario: 'S2', key: 'proxyCpu', format: fmt.s, ratio: true },
  { label: 'S2 proxy peak RSS MiB', scenario: 'S2', key: 'peakRss', format: fmt.mib, ratio: true },
  { label: 'S2 CPU 1 busy (gen+upstream)', scenario: 'S2', key: 'cpu1Busy', format: fmt.pct, ratio: false },
  { label: 'S2 upstream CPU s', scenario: 'S2', key: 'upstreamCpu', format: fmt.s, ratio: false },
  { label: 'S3 upload MB/s (higher better)', scenario: 'S3', key: 'mbps', format: v => v.toFixed(0), ratio: true },
  { label: 'S3 proxy CPU s', scenario: 'S3', key: 'proxyCpu', format: fmt.s, ratio: true },
  { label: 'S3 proxy peak RSS MiB', scenario: 'S3', key: 'peakRss', format: fmt.mib, ratio: true },
  { label: 'S3 upstream CPU s', scenario: 'S3', key: 'upstreamCpu', format: fmt.s, ratio: false },
  { label: 'S4 upstream saw close within 1 s', scenario: 'S4', key: 'closedWithin1s', format: fmt.of(S4_STREAMS), ratio: false },
  { label: 'S4 slowest close propagation ms', scenario: 'S4', key: 'worstCloseDelay', format: fmt.ms, ratio: false },
  { label: 'S4 upstream CPU s', scenario: 'S4', key: 'upstreamCpu', format: fmt.s, ratio: false },
  { label: 'S5 proxy RSS after start MiB', scenario: 'S5', key: 'startRss', format: fmt.mib, ratio: true },
  { label: `S5 proxy RSS, ${S5_STREAMS} idle streams MiB`, scenario: 'S5', key: 'idleRss', format: fmt.mib, ratio: true },
  { label: 'S5 idle streams open at upstream', scenario: 'S5', key: 'openAtUpstream', format: fmt.of(S5_STREAMS), ratio: false },
  { label: 'S5 upstream CPU s', scenario: 'S5', key: 'upstreamCpu', format: fmt.s, ratio: false }
]

function median (values: number[]): number | undefined {
  const sorted = values.filter(v => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return undefined
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

type Medians = Record<string, Partial<Record<TargetName, number>>>

function computeMedians (): Medians {
  const medians: Medians = {}
  for (const row of rows) {
    const byTarget: Partial<Record<TargetName, number>> = {}
    for (const target of TARGETS) {
      const values = records
        .filter(r => r.scenario === row.scenario && r.target === target && r.error === undefined && r.metrics[row.key] !== undefined)
        .map(r => r.metrics[row.key])
      const value = median(values)
      if (value !== undefined) byTarget[target] = value
    }
    medians[`${row.scenario}.${row.key}`] = byTarget
  }
  return medians
}

function ratio (a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || b === 0 || !Number.isFinite(a / b)) return '—'
  return `${(a / b).toFixed(2)}x`
}

function renderTable (medians: Medians): string {
  const header = ['metric (median)', 'direct', 'nginx', 'ours', 'ours/nginx', 'ours/direct']
  const lines = rows.filter(row => selected.some(s => s.id === row.scenario)).map(row => {
    const m = medians[`${row.scenario}.${row.key}`]
    const cell = (t: TargetName): string => m[t] === undefined ? '—' : row.format(m[t] as number)
    return [
      row.label, cell('direct'), cell('nginx'), cell('ours'),
      row.ratio ? ratio(m.ours, m.nginx) : '—',
      row.ratio ? ratio(m.ours, m.direct) : '—'
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map(l => l[i].length)))
  const pad = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  ')
  return [pad(header), widths.map(w => '-'.repeat(w)).join('  '), ...lines.map(pad)].join('\n')
}

/** Checks that make a result suspect, printed under the table. */
function warnings (): string[] {
  const out: string[] = []
  const busy = records.filter(noisy)
  if (busy.length > 0) {
    const worst = Math.max(...busy.map(r => r.metrics.foreignCpu / r.metrics.wallS))
    out.push(`other processes were busy during ${busy.length} of ${records.length} runs (up to ${fmt.pct(worst)} of a CPU;` +
      ` ${busy.map(r => `${r.round}/${r.scenario}/${r.target}`).join(' ')}): those numbers are noisy, rerun on a quiet machine`)
  }
  for (const r of records) {
    const where = `round ${r.round} ${r.scenario} ${r.target}`
    const m = r.metrics
    if (r.error !== undefined) { out.push(`${where}: failed: ${r.error}`); continue }
    if ((m.non2xx ?? 0) > 0) out.push(`${where}: ${m.non2xx} non-2xx answers`)
    if ((m.errors ?? 0) > 0) out.push(`${where}: ${m.errors} connection errors/timeouts`)
    if (m.lines !== undefined && m.lines !== S2_LINES) out.push(`${where}: ${m.lines}/${S2_LINES} chunks delivered`)
    if ((m.failed ?? 0) > 0) out.push(`${where}: ${m.failed} streams failed`)
    if (m.bytesOk === 0) out.push(`${where}: upload status ${m.status}, or the upstream did not receive every byte`)
    if (m.closedWithin1s !== undefined && m.closedWithin1s < S4_STREAMS) out.push(`${where}: only ${m.closedWithin1s}/${S4_STREAMS} closes reached the upstream within 1 s`)
    if (m.openAtUpstream !== undefined && m.openAtUpstream < S5_STREAMS) out.push(`${where}: only ${m.openAtUpstream}/${S5_STREAMS} idle streams reached the upstream`)
    if (r.target !== 'direct' && r.scenario !== 'S5' && (m.cpu1Busy ?? 0) > 0.9) {
      out.push(`${where}: CPU 1 (load generator + upstream) ${fmt.pct(m.cpu1Busy)} busy: the load side may be the limit`)
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Main

async function main (): Promise<void> {
  const tokens: Tokens = {
    generate: `bench-generate-${randomBytes(16).toString('hex')}`,
    model: `bench-model-${randomBytes(16).toString('hex')}`
  }
  const cpuCount = availableParallelism()
  const pinning = new Pinning(cpuCount, args['no-pin'] !== true)
  pinning.pinSelf(1)
  const nginxBin = args['no-nginx'] === true ? undefined : findNginx()
  const nginx = nginxBin === undefined ? undefined : nginxVersion(nginxBin)
  if (nginxBin === undefined) notes.push('nginx not found (or --no-nginx): nginx columns skipped')

  log(`ollama-proxy bench: ${quick ? 'quick, ' : ''}${rounds} round(s); node ${process.version}; ${nginx ?? 'no nginx'}`)
  log(`CPUs: ${cpuCount} x ${cpus()[0]?.model ?? '?'}; pinning: ${pinning.enabled ? pinning.reason : `off (${pinning.reason})`}`)

  const upstream = await FastUpstream.start(pinning, repoRoot, join(workDir, 'upstream.log'))
  const direct: Target = { name: 'direct', base: upstream.base, proxyPids: () => [] }
  const affinity: Record<string, string | undefined> = { generator: cpusAllowed(process.pid), upstream: cpusAllowed(upstream.pid) }

  const started = Date.now()
  for (let round = 1; round <= rounds; round++) {
    const dir = join(workDir, `round-${round}`)
    mkdirSync(dir, { recursive: true })
    const proxies: Partial<Record<TargetName, RunningProxy>> = {}
    // Fresh proxies each round; RSS "after start" is read before any request but /healthz.
    if (nginxBin !== undefined) {
      try {
        proxies.nginx = await startNginx({ bin: nginxBin, pinning, repoRoot, dir, upstreamPort: upstream.port, tokens })
        proxies.nginx.startedRss = sumRssBytes(proxies.nginx.proxyPids())
        affinity.nginx = proxies.nginx.cpus
      } catch (err) {
        notes.push(`round ${round}: nginx did not start: ${(err as Error).message}`)
      }
    }
    try {
      if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true })
      proxies.ours = await startOurs({ pinning, repoRoot, dir, upstreamPort: upstream.port, tokens, profileDir })
      proxies.ours.startedRss = sumRssBytes(proxies.ours.proxyPids())
      affinity.ours = proxies.ours.cpus
    } catch (err) {
      notes.push(`round ${round}: ollama-proxy did not start: ${(err as Error).message}`)
    }

    try {
      for (const scenario of selected) {
        log(`\n[round ${round}/${rounds}] ${scenario.id} ${scenario.title}`)
        for (const name of TARGETS) {
          const target = name === 'direct' ? direct : proxies[name]
          if (target === undefined || scenario.skip?.includes(name) === true) continue
          const allProxyPids = Object.values(proxies).flatMap(p => p.proxyPids())
          let record = await measure(scenario, target, upstream, tokens, round, allProxyPids)
          // Someone else was using the CPUs (a shared dev box): once, while the budget lasts, run again.
          if (noisy(record) && record.metrics.wallS <= retryBudget) {
            retryBudget -= record.metrics.wallS
            log(`  ${name.padEnd(6)}  machine busy (other processes: ${fmt.s(record.metrics.foreignCpu)} CPU s in ${fmt.s(record.metrics.wallS)} s), running again`)
            const again = await measure(scenario, target, upstream, tokens, round, allProxyPids)
            const [kept, dropped] = again.error === undefined && again.metrics.foreignCpu <= record.metrics.foreignCpu ? [again, record] : [record, again]
            discarded.push(dropped)
            record = kept
          }
          if (scenario.id === 'S5' && target.name !== 'direct') {
            const startRss = (target as RunningProxy).startedRss
            if (startRss !== undefined) record.metrics.startRss = startRss
          }
          records.push(record)
          log(`  ${name.padEnd(6)}  ${summary(record)}`)
        }
        if (scenario.id === 'S2') {
          const base = records.find(r => r.round === round && r.scenario === 'S2' && r.target === 'direct' && r.error === undefined)
          for (const r of records.filter(r => r.round === round && r.scenario === 'S2' && r.target !== 'direct' && r.error === undefined)) {
            if (base?.metrics.ttfcP99 !== undefined && r.metrics.ttfcP99 !== undefined) r.metrics.addedTtfcP99 = r.metrics.ttfcP99 - base.metrics.ttfcP99
          }
        }
      }
    } finally {
      await proxies.nginx?.stop()
      await proxies.ours?.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
  await upstream.stop()

  const medians = computeMedians()
  const problems = warnings()
  log(`\nResults: medians of ${rounds} round(s), ${((Date.now() - started) / 1000).toFixed(0)} s`)
  log(renderTable(medians))
  if (profileDir !== undefined) notes.push(`CPU profiles of ours: ${relative(process.cwd(), profileDir)}/*.cpuprofile (Chrome DevTools or speedscope)`)
  for (const note of notes) log(`note: ${note}`)
  for (const problem of problems) log(`warning: ${problem}`)

  const resultsDir = join(repoRoot, 'bench', 'results')
  mkdirSync(resultsDir, { recursive: true })
  const file = join(resultsDir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, `${JSON.stringify({
    date: new Date().toISOString(),
    options: { quick, rounds, only: only ?? null, profile: profileDir !== undefined },
    environment: {
      node: process.version,
      nginx: nginx ?? null,
      cpus: cpuCount,
      cpuModel: cpus()[0]?.model,
      pinning: { enabled: pinning.enabled, reason: pinning.reason, cpusAllowed: affinity }
    },
    units: { rss: 'bytes', cpu: 'seconds', latency: 'ms', mbps: '1e6 bytes/s' },
    medians,
    notes,
    warnings: problems,
    runs: records,
    discardedRuns: discarded
  }, null, 2)}\n`)
  log(`\nraw results: ${relative(process.cwd(), file)}`)
  if (records.some(r => r.error !== undefined) || notes.some(n => n.includes('did not start'))) process.exitCode = 1
}

main().catch((err: unknown) => {
  console.error('bench failed:', err)
  cleanupSync()
  process.exit(1)
})
