import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { delimiter, join } from 'node:path'

export interface RedisServer {
  /** redis://127.0.0.1:<port> */
  url: string
  port: number
  /** Kills the server (SIGKILL: no goodbye to clients, nothing kept). */
  stop (): Promise<void>
  /** Starts it again on the same port, empty. */
  start (): Promise<void>
  /** Stops the process where it is (SIGSTOP): connections stay open and commands get no answer. */
  pause (): void
  /** Lets a paused server go on (SIGCONT): the commands sent meanwhile are answered. */
  resume (): void
}

/** The redis-server binary: /usr/bin/redis-server or the first one on PATH; undefined when absent. */
export function redisServerPath (): string | undefined {
  const candidates = ['/usr/bin/redis-server', ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map(dir => join(dir, 'redis-server'))]
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // next
    }
  }
  return undefined
}

export function redisAvailable (): boolean {
  return redisServerPath() !== undefined
}

/** A loopback port that was free a moment ago (bound, then released). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** One PING; true when the server answers +PONG. */
async function ping (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = createConnection({ host: '127.0.0.1', port })
    let answer = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString()
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'))
    })
  })
}

const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** A throwaway redis-server on a free loopback port, without persistence. */
export async function startRedis (): Promise<RedisServer> {
  const binary = redisServerPath()
  if (binary === undefined) throw new Error('redis-server is not installed')
  const port = await freePort()
  let child: ChildProcess | undefined

  async function start (): Promise<void> {
    if (child !== undefined) throw new Error('redis-server is already running')
    const proc = spawn(binary!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    running.add(proc)
    // Its own log (stdout) says why it would not start, e.g. the port was taken meanwhile.
    let output = ''
    let exited = false
    const keep = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-2000) }
    proc.stdout?.on('data', keep)
    proc.stderr?.on('data', keep)
    proc.once('exit', () => {
      exited = true
      running.delete(proc)
    })
    const deadline = Date.now() + 5000
    while (Date.now() < deadline) {
      if (exited) break
      if (await ping(port)) return
      await new Promise(resolve => setTimeout(resolve, 25))
    }
    proc.kill('SIGKILL')
    child = undefined
    throw new Error(`redis-server did not answer on 127.0.0.1:${port}${output !== '' ? `: ${output.trim()}` : ''}`)
  }

  async function stop (): Promise<void> {
    const proc = child
    child = undefined
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise(resolve => proc.once('exit', resolve))
    proc.kill('SIGKILL')
    await exited
  }

  await start()
  const signal = (name: NodeJS.Signals) => { child?.kill(name) }
  return { url: `redis://127.0.0.1:${port}`, port, stop, start, pause: () => signal('SIGSTOP'), resume: () => signal('SIGCONT') }
}
