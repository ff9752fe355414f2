// Linux /proc readers for the bench: CPU time, resident memory, children, CPU affinity.
// Every reader returns undefined (or []) when the process is gone instead of throwing.
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

function clockTicks (): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    return Number.isFinite(ticks) && ticks > 0 ? ticks : 100
  } catch {
    return 100
  }
}

const CLK_TCK = clockTicks()

function read (path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields (pid: number): string[] | undefined {
  const stat = read(`/proc/${pid}/stat`)
  if (stat === undefined) return undefined
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** User + system CPU seconds the process has used so far (all its threads). */
export function cpuSeconds (pid: number): number | undefined {
  const fields = statFields(pid)
  if (fields === undefined) return undefined
  // After the name: state(3) ppid(4) ... utime(14) stime(15); index = field number - 3.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

export function sumCpuSeconds (pids: readonly number[]): number {
  let total = 0
  for (const pid of pids) total += cpuSeconds(pid) ?? 0
  return total
}

function statusField (pid: number, name: string): string | undefined {
  const status = read(`/proc/${pid}/status`)
  if (status === undefined) return undefined
  const start = status.indexOf(`\n${name}:`)
  if (start < 0) return undefined
  const end = status.indexOf('\n', start + 1)
  return status.slice(start + name.length + 2, end < 0 ? undefined : end).trim()
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes (pid: number): number | undefined {
  const value = statusField(pid, 'VmRSS')
  if (value === undefined) return undefined
  return Number.parseInt(value, 10) * 1024
}

export function sumRssBytes (pids: readonly number[]): number {
  let total = 0
  for (const pid of pids) total += rssBytes(pid) ?? 0
  return total
}

/** The CPUs the process may run on, as Linux prints them ("0", "1", "0-1"). */
export function cpusAllowed (pid: number): string | undefined {
  return statusField(pid, 'Cpus_allowed_list')
}

/** Direct children of a process, found by scanning /proc (no CONFIG_PROC_CHILDREN needed). */
export function childPids (parent: number): number[] {
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    const code = entry.charCodeAt(0)
    if (code < 48 || code > 57) continue
    const fields = statFields(Number(entry))
    if (fields !== undefined && Number(fields[1]) === parent) children.push(Number(entry))
  }
  return children
}

/**
 * Samples the summed VmRSS of some processes every `intervalMs` (there is no resettable
 * high-water mark for a running process, so the peak is the largest sample).
 */
export class RssSampler {
  peak = 0
  last = 0
  samples = 0
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly pids: () => readonly number[], private readonly intervalMs = 50) {}

  start (): this {
    this.sample()
    this.timer = setInterval(() => this.sample(), this.intervalMs)
    return this
  }

  sample (): void {
    const pids = this.pids()
    if (pids.length === 0) return
    this.last = sumRssBytes(pids)
    this.samples++
    if (this.last > this.peak) this.peak = this.last
  }

  stop (): { peak: number, last: number, samples: number } {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    this.sample()
    return { peak: this.peak, last: this.last, samples: this.samples }
  }
}

/**
 * Busy CPU seconds of the whole machine so far (user + nice + system + steal; interrupt time is
 * left out, as no process is charged for it), in total and per CPU, from /proc/stat: the part our
 * processes do not explain is someone else's.
 */
export function machineBusySeconds (): { total: number, perCpu: number[] } {
  const stat = read('/proc/stat') ?? ''
  let total = 0
  const perCpu: number[] = []
  for (const line of stat.split('\n')) {
    if (!line.startsWith('cpu')) continue
    const [name, ...fields] = line.split(/\s+/)
    const [user, nice, system, , , , , steal] = fields.map(Number)
    const busy = (user + nice + system + (steal || 0)) / CLK_TCK
    if (name === 'cpu') total = busy
    else perCpu[Number(name.slice(3))] = busy
  }
  return { total, perCpu }
}
