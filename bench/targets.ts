// Starting, pinning, watching and stopping the processes of a bench run: the fast upstream,
// nginx and ollama-proxy. Every child is registered so that an exit (normal, error, SIGINT)
// kills all of them.
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { childPids, cpusAllowed } from './procfs.js'

export type TargetName = 'direct' | 'nginx' | 'ours'

export interface Target {
  name: TargetName
  /** http://127.0.0.1:<port> */
  base: string
  /** The processes doing the proxying (ours: the node process; nginx: its workers); [] for direct. */
  proxyPids: () => number[]
}

export interface Tokens { generate: string, model: string }

// ---------------------------------------------------------------------------------------------
// Child registry and cleanup

const children = new Set<ChildProcess>()
/** Extra pids to SIGKILL on exit (nginx workers survive a SIGKILLed master). */
const extraPids = new Set<number>()

function track (child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

function killPid (pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return
  try {
    process.kill(pid, signal)
  } catch {}
}

/** Synchronous last resort (also used from process.on('exit')): SIGKILL every child we started. */
export function killAllChildren (): void {
  for (const child of children) killPid(child.pid, 'SIGKILL')
  for (const pid of extraPids) killPid(pid, 'SIGKILL')
  children.clear()
  extraPids.clear()
}

async function waitForExit (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  return await Promise.race([
    new Promise<boolean>(resolve => child.once('exit', () => resolve(true))),
    sleep(ms).then(() => false)
  ])
}

async function stopChild (child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  killPid(child.pid, signal)
  if (!(await waitForExit(child, graceMs))) {
    killPid(child.pid, 'SIGKILL')
    await waitForExit(child, 2000)
  }
  children.delete(child)
}

// ---------------------------------------------------------------------------------------------
// Helpers

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

let tasksetAvailable: boolean | undefined
function hasTaskset (): boolean {
  if (tasksetAvailable === undefined) {
    try {
      execFileSync('taskset', ['-V'], { stdio: 'ignore' })
      tasksetAvailable = true
    } catch {
      tasksetAvailable = false
    }
  }
  return tasksetAvailable
}

/** How children get pinned: `taskset -c <cpu>` in front of the command, or nothing. */
export class Pinning {
  readonly enabled: boolean
  readonly reason: string

  constructor (cpus: number, wanted: boolean) {
    if (!wanted) {
      this.enabled = false
      this.reason = 'disabled (--no-pin)'
    } else if (cpus < 2) {
      this.enabled = false
      this.reason = `only ${cpus} CPU available`
    } else if (!hasTaskset()) {
      this.enabled = false
      this.reason = 'taskset not found'
    } else {
      this.enabled = true
      this.reason = 'proxy on CPU 0; load generator + fast upstream on CPU 1'
    }
  }

  command (cpu: number, file: string, args: string[]): [string, string[]] {
    return this.enabled ? ['taskset', ['-c', String(cpu), file, ...args]] : [file, args]
  }

  /** Pins every thread of this (the load generator's) process; its later threads inherit it. */
  pinSelf (cpu: number): void {
    if (!this.enabled) return
    execFileSync('taskset', ['-a', '-cp', String(cpu), String(process.pid)], { stdio: 'ignore' })
  }
}

async function waitHealthy (url: string, child: ChildProcess, what: string, logFile: string | undefined, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  let lastError = ''
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before it was ready${logTail(logFile)}`)
    }
    try {
      const { statusCode, body } = await request(url, { signal: AbortSignal.timeout(1000) })
      await body.dump()
      if (statusCode === 200) return
      lastError = `status ${statusCode}`
    } catch (err) {
      lastError = (err as Error).message
    }
    await sleep(50)
  }
  throw new Error(`${what} not ready within ${ms} ms (${lastError})${logTail(logFile)}`)
}

function logTail (file: string | undefined): string {
  if (file === undefined || !existsSync(file)) return ''
  const text = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-15).join('\n')
  return text === '' ? '' : `\n--- ${file} (last lines) ---\n${text}`
}

// ---------------------------------------------------------------------------------------------
// Fast upstream

export interface UpstreamStats {
  requests: number
  embeddings: number
  chats: number
  open: number
  maxOpen: number
  aborted: Array<{ tag?: string, startedAt: number, closedAt: number }>
  uploads: Array<{ bytes: number, ms: number, aborted: boolean }>
  notFound: number
}

export class FastUpstream {
  private nextId = 1
  private readonly pending = new Map<number, (stats: UpstreamStats) => void>()

  private constructor (readonly child: ChildProcess, readonly port: number) {
    child.on('message', (message: { id?: number, stats?: UpstreamStats }) => {
      if (message.id === undefined || message.stats === undefined) return
      this.pending.get(message.id)?.(message.stats)
      this.pending.delete(message.id)
    })
  }

  get pid (): number { return this.child.pid as number }
  get base (): string { return `http://127.0.0.1:${this.port}` }

  static async start (pinning: Pinning, repoRoot: string, logFile: string): Promise<FastUpstream> {
    const log = openSync(logFile, 'a')
    const [file, args] = pinning.command(1, process.execPath, ['--import', 'tsx', join(repoRoot, 'bench', 'fast-upstream.ts')])
    const child = track(spawn(file, args, { cwd: repoRoot, stdio: ['ignore', log, log, 'ipc'] }))
    closeSync(log)
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fast upstream did not start within 15 s${logTail(logFile)}`)), 15_000)
      child.on('message', (message: { ready?: number }) => {
        if (message.ready !== undefined) {
          clearTimeout(timer)
          resolve(message.ready)
        }
      })
      child.once('exit', code => {
        clearTimeout(timer)
        reject(new Error(`fast upstream exited (${code})${logTail(logFile)}`))
      })
    })
    return new FastUpstream(child, port)
  }

  private async command (cmd: 'stats' | 'reset'): Promise<UpstreamStats> {
    const id = this.nextId++
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`fast upstream did not answer '${cmd}'`))
      }, 5000)
      this.pending.set(id, stats => {
        clearTimeout(timer)
        resolve(stats)
      })
      this.child.send({ id, cmd })
    })
  }

  async stats (): Promise<UpstreamStats> { return await this.command('stats') }
  async reset (): Promise<UpstreamStats> { return await this.command('reset') }

  async stop (): Promise<void> {
    await stopChild(this.child, 'SIGKILL', 2000)
  }
}

// ---------------------------------------------------------------------------------------------
// Proxies under test

export interface RunningProxy extends Target {
  child: ChildProcess
  /** Summed VmRSS right after it answered /healthz, before any load. */
  startedRss?: number
  cpus?: string
  stop: () => Promise<void>
}

/** ollama-proxy (dist/src/server.js) with a temp YAML config, pinned to CPU 0. */
export interface StartOptions {
  pinning: Pinning
  repoRoot: string
  /** temp directory for config, logs and nginx's prefix */
  dir: string
  upstreamPort: number
  tokens: Tokens
}

export async function startOurs (options: StartOptions & {
  /** Write a V8 CPU profile (.cpuprofile) into this directory when the proxy stops. */
  profileDir?: string
}): Promise<RunningProxy> {
  const { pinning, repoRoot, dir, upstreamPort, tokens, profileDir } = options
  const server = join(repoRoot, 'dist', 'src', 'server.js')
  if (!existsSync(server)) throw new Error(`${server} is missing: run \`npm run build\` first`)
  const port = await freePort()
  const config = join(dir, 'ours.yaml')
  writeFileSync(config, [
    'auth:',
    `  generate_tokens: ["${tokens.generate}"]`,
    `  model_tokens: ["${tokens.model}"]`,
    'service:',
    `  base_url: "http://127.0.0.1:${upstreamPort}"`,
    'server:',
    '  host: "127.0.0.1"',
    `  port: ${port}`,
    'log:',
    '  level: info',
    ''
  ].join('\n'), { mode: 0o600 })

  // The variables that would override the file.
  const env = { ...process.env }
  for (const name of ['OLLAMA_BASE_URL', 'HOST', 'PORT', 'LOG_LEVEL', 'OLLAMA_PROXY_CONFIG', 'NODE_OPTIONS']) delete env[name]
  const logFile = join(dir, 'ours.log')
  const log = openSync(logFile, 'w')
  const profile = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir]
  // OURS_NODE_FLAGS tries V8/Node flags on the proxy alone (e.g. --max-semi-space-size=4).
  const flags = (process.env.OURS_NODE_FLAGS ?? '').split(' ').filter(Boolean)
  const [file, args] = pinning.command(0, process.execPath, [...flags, ...profile, server, '--config', config])
  const child = track(spawn(file, args, { cwd: repoRoot, env, stdio: ['ignore', log, log] }))
  closeSync(log)
  const pid = child.pid as number
  const proxy: RunningProxy = {
    name: 'ours',
    base: `http://127.0.0.1:${port}`,
    child,
    proxyPids: () => [pid],
    // A profiled proxy must exit by itself to write its profile: SIGTERM (it drains, then exits).
    stop: async () => await stopChild(child, profileDir === undefined ? 'SIGKILL' : 'SIGTERM', 10_000)
  }
  try {
    await waitHealthy(`${proxy.base}/healthz`, child, 'ollama-proxy', logFile)
  } catch (err) {
    await proxy.stop()
    throw err
  }
  proxy.cpus = cpusAllowed(pid)
  return proxy
}

export function findNginx (): string | undefined {
  const candidates = [process.env.NGINX_BIN, '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx', '/usr/bin/nginx']
  for (const candidate of candidates) {
    if (candidate !== undefined && candidate !== '' && existsSync(candidate)) return candidate
  }
  try {
    const found = execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim()
    return found === '' ? undefined : found
  } catch {
    return undefined
  }
}

export function nginxVersion (bin: string): string | undefined {
  // nginx -v prints to stderr.
  const { stdout, stderr } = spawnSync(bin, ['-v'], { encoding: 'utf8' })
  const text = `${stdout ?? ''}${stderr ?? ''}`.trim()
  return text === '' ? undefined : text
}

/** nginx from bench/nginx.conf.template in its own temp prefix, pinned to CPU 0. */
export async function startNginx (options: StartOptions & { bin: string }): Promise<RunningProxy> {
  const { bin, pinning, repoRoot, dir, upstreamPort, tokens } = options
  const prefix = join(dir, 'nginx')
  mkdirSync(prefix, { recursive: true })
  const port = await freePort()
  const template = readFileSync(join(repoRoot, 'bench', 'nginx.conf.template'), 'utf8')
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  const conf = template
    .replaceAll('{{USER}}', isRoot ? 'user root;' : '')
    .replaceAll('{{PREFIX}}', prefix)
    .replaceAll('{{PORT}}', String(port))
    .replaceAll('{{UPSTREAM_PORT}}', String(upstreamPort))
    .replaceAll('{{GENERATE_TOKEN}}', tokens.generate)
    .replaceAll('{{MODEL_TOKEN}}', tokens.model)
  const confFile = join(prefix, 'nginx.conf')
  writeFileSync(confFile, conf)

  const logFile = join(prefix, 'error.log')
  const out = openSync(join(prefix, 'stderr.log'), 'w')
  const [file, args] = pinning.command(0, bin, ['-p', prefix, '-c', confFile, '-e', logFile])
  const child = track(spawn(file, args, { cwd: prefix, stdio: ['ignore', out, out] }))
  closeSync(out)
  const master = child.pid as number
  let workers: number[] = []
  const proxy: RunningProxy = {
    name: 'nginx',
    base: `http://127.0.0.1:${port}`,
    child,
    proxyPids: () => workers,
    stop: async () => {
      // TERM: fast shutdown, the master takes its workers down; KILL whatever is left.
      await stopChild(child, 'SIGTERM', 3000)
      for (const pid of workers) {
        killPid(pid, 'SIGKILL')
        extraPids.delete(pid)
      }
    }
  }
  try {
    await waitHealthy(`${proxy.base}/healthz`, child, 'nginx', join(prefix, 'stderr.log'))
    for (let i = 0; i < 100 && workers.length === 0; i++) {
      workers = childPids(master)
      if (workers.length === 0) await sleep(20)
    }
    if (workers.length === 0) throw new Error('nginx has no worker process')
    for (const pid of workers) extraPids.add(pid)
  } catch (err) {
    await proxy.stop()
    throw err
  }
  proxy.cpus = cpusAllowed(workers[0])
  return proxy
}
