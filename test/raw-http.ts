import { connect, type Socket } from 'node:net'

/** One HTTP/1.1 answer read off a raw socket. */
export interface RawAnswer {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * A raw client socket: the test decides exactly which bytes go out and when, so it can show that
 * the proxy answered before a body was sent.
 */
export class RawClient {
  private buffered = Buffer.alloc(0)
  private waiters: Array<() => void> = []
  /** Resolves when the proxy closes (or ends) the connection. */
  readonly closed: Promise<void>
  private isClosed = false

  private constructor (readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => { this.buffered = Buffer.concat([this.buffered, chunk]); this.wake() })
    this.closed = new Promise(resolve => {
      const done = () => { this.isClosed = true; this.wake(); resolve() }
      socket.once('end', done)
      socket.once('close', done)
    })
    // A reset after the proxy closed on an unread body is expected here.
    socket.on('error', () => {})
  }

  static async open (url: string): Promise<RawClient> {
    const { hostname, port } = new URL(url)
    const socket = connect(Number(port), hostname)
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    return new RawClient(socket)
  }

  /** Writes a request head (and optionally the first body bytes). */
  send (method: string, path: string, headers: Record<string, string | number>, body?: Buffer | string): void {
    const lines = [`${method} ${path} HTTP/1.1`, 'host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)]
    this.socket.write(lines.join('\r\n') + '\r\n\r\n')
    if (body !== undefined) this.socket.write(body)
  }

  private wake (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const waiter of waiters) waiter()
  }

  private async more (): Promise<void> {
    if (this.isClosed) throw new Error('connection closed before a whole answer arrived')
    await new Promise<void>(resolve => this.waiters.push(resolve))
  }

  /** Reads the next whole answer (Content-Length or chunked body). */
  async answer (): Promise<RawAnswer> {
    let end: number
    while ((end = this.buffered.indexOf('\r\n\r\n')) < 0) await this.more()
    const [statusLine, ...lines] = this.buffered.subarray(0, end).toString('latin1').split('\r\n')
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    this.buffered = this.buffered.subarray(end + 4)
    let body: Buffer
    if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = []
      for (;;) {
        let lineEnd: number
        while ((lineEnd = this.buffered.indexOf('\r\n')) < 0) await this.more()
        const size = parseInt(this.buffered.subarray(0, lineEnd).toString(), 16)
        while (this.buffered.length < lineEnd + 2 + size + 2) await this.more()
        parts.push(this.buffered.subarray(lineEnd + 2, lineEnd + 2 + size))
        this.buffered = this.buffered.subarray(lineEnd + 2 + size + 2)
        if (size === 0) break
      }
      body = Buffer.concat(parts)
    } else {
      const length = Number(headers['content-length'] ?? 0)
      while (this.buffered.length < length) await this.more()
      body = this.buffered.subarray(0, length)
      this.buffered = this.buffered.subarray(length)
    }
    return { status: Number(statusLine.split(' ')[1]), headers, body: body.toString('utf8') }
  }

  destroy (): void {
    this.socket.destroy()
  }
}

/** Resolves once `condition` holds, checking after each turn of the event loop (no timers). */
export async function until (condition: () => boolean, what: string, maxTurns = 1_000_000): Promise<void> {
  for (let turn = 0; turn < maxTurns; turn++) {
    if (condition()) return
    await new Promise(resolve => setImmediate(resolve))
  }
  throw new Error(`never happened: ${what}`)
}
