// What bench/request-cost.mjs and bench/upload-cost.mjs share: the Go tools of ../shared/bench,
// processes pinned to a CPU (killed with their group when the script exits), readiness, free
// ports and /proc readings. Only 127.0.0.1.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import http from 'node:http'

export const root = resolve(import.meta.dirname, '..')
export const shared = resolve(root, '../shared/bench')

/** The folder with ../shared/bench's fake-ollama and loadgen (built by its setup); throws if none. */
export function benchBinaries () {
  const dir = [join(shared, '.bin'), join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'ollama-proxy-bench')]
    .find(candidate => existsSync(join(candidate, 'fake-ollama')) && existsSync(join(candidate, 'loadgen')))
  if (dir === undefined) throw new Error('run ../shared/bench/setup first')
  return dir
}

const children = []
process.on('exit', () => { for (const child of children) { try { process.kill(-child.pid, 'SIGKILL') } catch {} } })

/** Starts `command` pinned to `cpu` in its own process group, in the project root; stdout as given (default ignored). */
export function startPinned (command, args, env, cpu, stdout = 'ignore') {
  const child = spawn('taskset', ['-c', String(cpu), command, ...args], { env: { ...process.env, ...env }, detached: true, stdio: ['ignore', stdout, 'inherit'], cwd: root })
  children.push(child)
  return child
}

/** Resolves once anything answers HTTP on 127.0.0.1:`port`; throws after `timeoutMs`. */
export async function waitReady (port, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const ok = await new Promise(resolve => {
      http.get({ host: '127.0.0.1', port, path: '/' }, res => { res.resume(); resolve(true) }).on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  throw new Error(`nothing listening on ${port}`)
}

/** A port nothing listens on right now (127.0.0.1). */
export async function freePort () {
  const server = http.createServer().listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  const { port } = server.address()
  await new Promise(resolve => server.close(resolve))
  return port
}

/** User and system CPU seconds and minor page faults of the process so far (all its threads). */
export function processCpu (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100, minorFaults: Number(fields[7]) }
}

/** A kB field of /proc/<pid>/status (VmRSS, VmHWM), in KiB. */
export function statusKiB (pid, name) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find(l => l.startsWith(name + ':'))
  return Number(line.split(/\s+/)[1])
}
