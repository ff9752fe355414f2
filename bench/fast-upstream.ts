// A fast fake Ollama for the bench: node:http only, one process, as little work per request
// as possible, so that it is never what limits a run (bench/run.ts reports its CPU seconds).
//
//   POST /api/embeddings      drains the body, answers a small fixed JSON
//   POST /api/chat            NDJSON stream: body field fake.chunks lines fake.delay_ms apart, then
//                             a final done line; fake.first_byte_delay_ms waits before the headers;
//                             fake.tag names the stream in the abort records
//   POST /api/blobs/:digest   counts the body bytes (no hashing), answers 201
//   GET  /__stats             the counters below as JSON (also over IPC: {id, cmd: 'stats' | 'reset'})
//
// Started by run.ts with an IPC channel: it listens on 127.0.0.1:<port or 0> and sends
// {ready: port}. Standalone: `node --import tsx bench/fast-upstream.ts [port]` prints the port.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
const now = (): number => performance.timeOrigin + performance.now()

interface Aborted { tag: string | undefined, startedAt: number, closedAt: number }
interface Upload { bytes: number, ms: number, aborted: boolean }

const stats = {
  requests: 0,
  embeddings: 0,
  chats: 0,
  /** chat streams currently between request and close */
  open: 0,
  maxOpen: 0,
  /** chat streams whose connection closed before the last line was written */
  aborted: [] as Aborted[],
  uploads: [] as Upload[],
  notFound: 0
}

function resetStats (): void {
  stats.requests = 0
  stats.embeddings = 0
  stats.chats = 0
  stats.maxOpen = stats.open
  stats.aborted = []
  stats.uploads = []
  stats.notFound = 0
}

const EMBEDDING = Buffer.from(JSON.stringify({ embedding: [0.0123, -0.0456, 0.0789, 0.1011, -0.1213, 0.1415, -0.1617, 0.1819] }))
const EMBEDDING_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'content-length': EMBEDDING.length }
const CHUNK = Buffer.from('{"model":"llama3.2","created_at":"2025-01-01T00:00:00.000000Z","message":{"role":"assistant","content":"lorem "},"done":false}\n')
const STREAM_HEADERS = { 'content-type': 'application/x-ndjson' }

function doneLine (chunks: number): Buffer {
  return Buffer.from(`{"model":"llama3.2","created_at":"2025-01-01T00:00:00.000000Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":1000000,"load_duration":1000,"prompt_eval_count":8,"prompt_eval_duration":1000,"eval_count":${chunks},"eval_duration":1000000}\n`)
}

interface Fake { chunks: number, delayMs: number, firstByteDelayMs: number, tag: string | undefined }

function positive (value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : fallback
}

/** Reads the `fake` object of a (small) chat body; skips JSON.parse when there is none. */
function parseFake (body: string): Fake {
  let fake: Record<string, unknown> = {}
  if (body.includes('"fake"')) {
    try {
      const parsed = JSON.parse(body) as { fake?: Record<string, unknown> }
      if (parsed.fake !== null && typeof parsed.fake === 'object') fake = parsed.fake
    } catch {}
  }
  return {
    chunks: Math.floor(positive(fake.chunks, 10)),
    delayMs: positive(fake.delay_ms, 0),
    firstByteDelayMs: positive(fake.first_byte_delay_ms, 0),
    tag: typeof fake.tag === 'string' ? fake.tag : undefined
  }
}

function embeddings (req: IncomingMessage, res: ServerResponse): void {
  stats.embeddings++
  req.on('end', () => {
    res.writeHead(200, EMBEDDING_HEADERS)
    res.end(EMBEDDING)
  })
  req.resume()
}

function chat (req: IncomingMessage, res: ServerResponse): void {
  stats.chats++
  stats.open++
  if (stats.open > stats.maxOpen) stats.maxOpen = stats.open
  const startedAt = now()
  let tag: string | undefined
  let timer: NodeJS.Timeout | undefined
  res.once('close', () => {
    stats.open--
    if (timer !== undefined) clearTimeout(timer)
    if (!res.writableFinished) stats.aborted.push({ tag, startedAt, closedAt: now() })
  })

  let body = ''
  req.setEncoding('utf8')
  req.on('data', (text: string) => { body += text })
  req.on('end', () => {
    const fake = parseFake(body)
    tag = fake.tag
    const start = (): void => {
      timer = undefined
      if (res.destroyed) return
      res.writeHead(200, STREAM_HEADERS)
      stream(res, fake)
    }
    if (fake.firstByteDelayMs > 0) timer = setTimeout(start, fake.firstByteDelayMs)
    else start()
  })

  function stream (res: ServerResponse, fake: Fake): void {
    let sent = 0
    const tick = (): void => {
      timer = undefined
      if (res.destroyed) return
      if (sent < fake.chunks) {
        res.write(CHUNK)
        sent++
        if (fake.delayMs > 0) {
          timer = setTimeout(tick, fake.delayMs)
        } else {
          tick()
        }
        return
      }
      res.end(doneLine(fake.chunks))
    }
    tick()
  }
}

function upload (req: IncomingMessage, res: ServerResponse): void {
  const started = now()
  let bytes = 0
  req.on('data', (chunk: Buffer) => { bytes += chunk.length })
  req.on('end', () => {
    stats.uploads.push({ bytes, ms: now() - started, aborted: false })
    res.writeHead(201, { 'content-length': 0 })
    res.end()
  })
  req.on('aborted', () => {
    stats.uploads.push({ bytes, ms: now() - started, aborted: true })
  })
}

function sendStats (res: ServerResponse): void {
  const body = JSON.stringify(stats)
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

const server = createServer({ keepAliveTimeout: 120_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
  stats.requests++
  const url = req.url ?? ''
  if (req.method === 'POST') {
    if (url === '/api/embeddings') return embeddings(req, res)
    if (url === '/api/chat') return chat(req, res)
    if (url.startsWith('/api/blobs/')) return upload(req, res)
  } else if (url === '/__stats') {
    return sendStats(res)
  } else if (url === '/api/version') {
    res.writeHead(200, { 'content-type': 'application/json' })
    return res.end('{"version":"0.0.0-bench"}')
  }
  stats.notFound++
  req.resume()
  res.writeHead(404, { 'content-type': 'application/json' })
  res.end('{"error":"not found"}')
})
// A proxy keeps its idle upstream connections: never drop them first.
server.keepAliveTimeout = 120_000

interface Command { id: number, cmd: 'stats' | 'reset' }

process.on('message', (message: Command) => {
  if (message.cmd === 'reset') resetStats()
  process.send?.({ id: message.id, stats })
})
// The parent going away (even by SIGKILL) closes the channel: never outlive it.
process.on('disconnect', () => process.exit(0))

const port = Number(process.argv[2] ?? 0)
server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
  const { port } = server.address() as AddressInfo
  if (process.send !== undefined) process.send({ ready: port })
  else console.log(`fast upstream listening on http://127.0.0.1:${port}`)
})
