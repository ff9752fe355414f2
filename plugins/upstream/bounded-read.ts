import type { IncomingHttpHeaders } from 'node:http'

/**
 * Model listings (/api/tags, /api/ps, /v1/models) the proxy reads whole to filter or merge. Ollama's
 * entries are about 500 bytes each, so 16 MiB holds tens of thousands of models.
 */
export const MAX_LISTING_BYTES = 16 * 1024 * 1024
/** Answers of model management read whole (copy, delete, stream:false pull/push/create) and error bodies. */
export const MAX_ANSWER_BYTES = 1024 * 1024
/** One NDJSON progress line of pull/push/create; Ollama's are under 300 bytes. */
export const MAX_LINE_BYTES = 1024 * 1024

/** An upstream answer the proxy must read but cannot: too large, compressed or malformed. */
export class UnreadableAnswer extends Error {
  override readonly name = 'UnreadableAnswer'
}

/** Readable streams as undici and Node hand them over: only what reading needs. */
interface ByteSource {
  on (event: 'data', listener: (chunk: Buffer) => void): unknown
  on (event: 'end', listener: () => void): unknown
  on (event: 'error', listener: (err: Error) => void): unknown
  destroy (err?: Error): unknown
}

/**
 * Content-Encoding of an answer the proxy reads. The proxy asks for `identity`; a front between
 * the proxy and Ollama may still compress, and a compressed listing must not pass unread.
 * Raises UnreadableAnswer for any coding other than identity.
 */
export function assertIdentityEncoding (headers: IncomingHttpHeaders, what: string): void {
  const coding = headers['content-encoding']
  if (coding === undefined) return
  const codings = String(coding).split(',').map(c => c.trim().toLowerCase()).filter(c => c !== '' && c !== 'identity')
  if (codings.length > 0) throw new UnreadableAnswer(`${what} came compressed (${codings.join(', ')})`)
}

/** Stops reading an answer and closes its connection; the abort that follows is expected, not an error. */
export function discard (body: ByteSource): void {
  body.on('error', ignoreError)
  body.destroy()
}

function ignoreError (): void {}

/**
 * Reads a whole answer body of at most `maxBytes` bytes. Past the cap the stream is destroyed
 * (the connection is not kept reading) and the promise rejects with UnreadableAnswer naming `what`
 * and the cap; a broken stream rejects with its own error.
 */
export async function readBounded (body: ByteSource, maxBytes: number, what: string): Promise<Buffer> {
  return await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let settled = false
    body.on('data', (chunk: Buffer) => {
      if (settled) return
      size += chunk.length
      if (size > maxBytes) {
        settled = true
        chunks.length = 0
        reject(new UnreadableAnswer(`${what} is larger than ${maxBytes} bytes`))
        body.destroy()
        return
      }
      chunks.push(chunk)
    })
    body.on('end', () => {
      if (settled) return
      settled = true
      resolve(Buffer.concat(chunks, size))
    })
    body.on('error', (err: Error) => {
      if (settled) return
      settled = true
      reject(err)
    })
  })
}

/**
 * Splits a byte stream into lines as it arrives: each chunk is scanned once for newlines and only
 * the unfinished tail is kept (as a list of pieces, joined once when its line ends), so the work is
 * linear in the bytes received. A line longer than `maxLineBytes` is refused.
 */
export class LineSplitter {
  private pieces: Buffer[] = []
  private pending = 0

  constructor (private readonly maxLineBytes: number) {}

  /** Complete lines in `chunk` (without '\n'); raises UnreadableAnswer when a line passes the cap. */
  push (chunk: Buffer): Buffer[] {
    const lines: Buffer[] = []
    let start = 0
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, newline)
      this.ensureRoom(piece.length)
      lines.push(this.pieces.length === 0 ? piece : Buffer.concat([...this.pieces, piece], this.pending + piece.length))
      this.pieces = []
      this.pending = 0
      start = newline + 1
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start)
      this.ensureRoom(rest.length)
      this.pieces.push(rest)
      this.pending += rest.length
    }
    return lines
  }

  /** The unfinished last line, if any, once the stream has ended. */
  finish (): Buffer | undefined {
    if (this.pending === 0) return undefined
    const last = Buffer.concat(this.pieces, this.pending)
    this.pieces = []
    this.pending = 0
    return last
  }

  private ensureRoom (bytes: number): void {
    if (this.pending + bytes > this.maxLineBytes) {
      this.pieces = []
      this.pending = 0
      throw new UnreadableAnswer(`a line is longer than ${this.maxLineBytes} bytes`)
    }
  }
}
