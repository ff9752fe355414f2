// The five bench scenarios. Each one runs against one target (direct, nginx or ours) from
// this process, which run.ts pins to CPU 1, and returns plain numbers; run.ts adds CPU times.
import { createRequire } from 'node:module'
import { setMaxListeners, type EventEmitter } from 'node:events'
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from 'node:http'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request } from 'undici'
import { RssSampler } from './procfs.js'
import type { FastUpstream, Target, Tokens } from './targets.js'

export type Metrics = Record<string, number>

export interface ScenarioContext {
  target: Target
  upstream: FastUpstream
  tokens: Tokens
  quick: boolean
  round: number
}

export interface Scenario {
  id: 'S1' | 'S2' | 'S3' | 'S4' | 'S5'
  title: string
  /** Skipped for these targets (nothing to measure there). */
  skip?: ReadonlyArray<Target['name']>
  run: (ctx: ScenarioContext) => Promise<Metrics>
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/** Wall-clock milliseconds with sub-millisecond precision; the fast upstream uses the same clock. */
const now = (): number => performance.timeOrigin + performance.now()

/** A signal shared by many requests (each one adds an abort listener). */
function shared (signal: AbortSignal): AbortSignal {
  setMaxListeners(0, signal)
  return signal
}

/** Nearest-rank percentile of unsorted values (the array is sorted in place). */
export function percentile (values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  values.sort((a, b) => a - b)
  const rank = Math.min(values.length - 1, Math.max(0, Math.ceil((p / 100) * values.length) - 1))
  return values[rank]
}

const MiB = 1024 * 1024

function countNewlines (chunk: Buffer): number {
  let count = 0
  let at = chunk.indexOf(10)
  while (at !== -1) {
    count++
    at = chunk.indexOf(10, at + 1)
  }
  return count
}

function chatBody (fake: Record<string, number | string>): string {
  return JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], fake })
}

interface StreamResult {
  status: number
  /** ms from sending the request to the first body bytes */
  ttfc: number
  /** largest interval between two body reads that carried a line end */
  maxGap: number
  lines: number
  error?: string
}

/** One NDJSON chat stream through undici; never rejects (errors are part of the result). */
async function chatStream (agent: Agent, url: string, token: string, body: string, signal: AbortSignal): Promise<StreamResult> {
  const started = performance.now()
  const result: StreamResult = { status: 0, ttfc: Number.NaN, maxGap: 0, lines: 0 }
  try {
    const response = await request(url, {
      method: 'POST',
      dispatcher: agent,
      signal,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body
    })
    result.status = response.statusCode
    let last = 0
    await new Promise<void>((resolve) => {
      response.body.on('data', (chunk: Buffer) => {
        const at = performance.now()
        if (Number.isNaN(result.ttfc)) {
          result.ttfc = at - started
          last = at
        }
        const lines = countNewlines(chunk)
        if (lines > 0) {
          if (at - last > result.maxGap) result.maxGap = at - last
          last = at
          result.lines += lines
        }
      })
      response.body.once('end', resolve)
      response.body.once('error', (err: Error) => {
        result.error = err.name === 'AbortError' ? 'aborted' : err.message
        resolve()
      })
    })
  } catch (err) {
    result.error = (err as Error).name === 'AbortError' ? 'aborted' : (err as Error).message
  }
  return result
}

// ---------------------------------------------------------------------------------------------
// S1 small requests (autocannon)

interface AutocannonResult {
  duration: number
  requests: { total: number, average: number }
  latency: { p50: number, p99: number }
  non2xx: number
  errors: number
  timeouts: number
  '2xx': number
}
type AutocannonInstance = EventEmitter & PromiseLike<AutocannonResult> & { stop: () => void }
type Autocannon = (options: Record<string, unknown>) => AutocannonInstance
// autocannon ships no types (and @types/autocannon is not installed): a minimal local shape.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

async function cannon (options: Record<string, unknown>, durationS: number, onLatency?: (ms: number) => void): Promise<AutocannonResult> {
  const instance = autocannon({ ...options, duration: durationS })
  if (onLatency !== undefined) {
    instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => onLatency(ms))
  }
  const guard = setTimeout(() => instance.stop(), (durationS + 15) * 1000)
  try {
    return await instance
  } finally {
    clearTimeout(guard)
  }
}

export const EMBEDDINGS_BODY = '{"model":"nomic-embed-text","prompt":"hello"}'

const s1: Scenario = {
  id: 'S1',
  title: 'small requests: POST /api/embeddings, 64 connections',
  async run ({ target, tokens, quick }) {
    const options = {
      url: `${target.base}/api/embeddings`,
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.generate}`, 'content-type': 'application/json' },
      body: EMBEDDINGS_BODY,
      connections: 64,
      pipelining: 1
    }
    const [warmupS, measureS] = quick ? [0.5, 2.5] : [1, 9]
    await cannon(options, warmupS)
    const latencies: number[] = []
    const result = await cannon(options, measureS, ms => latencies.push(ms))
    return {
      rps: result.requests.total / result.duration,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts,
      requests: result.requests.total,
      autocannonP50: result.latency.p50,
      autocannonP99: result.latency.p99
    }
  }
}

// ---------------------------------------------------------------------------------------------
// S2 streaming

export const S2_STREAMS = 200
export const S2_CHUNKS = 200
export const S2_LINES = S2_STREAMS * (S2_CHUNKS + 1)

const s2: Scenario = {
  id: 'S2',
  title: `streaming: ${S2_STREAMS} concurrent /api/chat streams of ${S2_CHUNKS} chunks 5 ms apart`,
  async run ({ target, tokens }) {
    const agent = new Agent({ connections: S2_STREAMS + 56, pipelining: 1 })
    const rss = new RssSampler(target.proxyPids).start()
    const signal = shared(AbortSignal.timeout(30_000))
    const body = chatBody({ chunks: S2_CHUNKS, delay_ms: 5 })
    try {
      const results = await Promise.all(Array.from({ length: S2_STREAMS }, async () =>
        await chatStream(agent, `${target.base}/api/chat`, tokens.generate, body, signal)))
      const memory = rss.stop()
      const ttfc = results.map(r => r.ttfc).filter(t => !Number.isNaN(t))
      return {
        ttfcP50: percentile(ttfc, 50),
        ttfcP99: percentile(ttfc, 99),
        worstGap: Math.max(...results.map(r => r.maxGap)),
        lines: results.reduce((sum, r) => sum + r.lines, 0),
        failed: results.filter(r => r.status !== 200 || r.error !== undefined).length,
        ...(target.name !== 'direct' ? { peakRss: memory.peak } : {})
      }
    } finally {
      rss.stop()
      await agent.destroy()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// S3 upload

const DIGEST = `sha256:${randomBytes(32).toString('hex')}`

async function upload (target: Target, token: string, totalBytes: number): Promise<{ status: number, seconds: number }> {
  const block = randomBytes(MiB)
  const url = new URL(`${target.base}/api/blobs/${DIGEST}`)
  const agent = new HttpAgent({ keepAlive: false })
  const started = performance.now()
  const req = httpRequest({
    host: url.hostname,
    port: url.port,
    method: 'POST',
    path: url.pathname,
    agent,
    // No content-length: Node sends the body chunked.
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }
  })
  const guard = setTimeout(() => req.destroy(new Error('upload timed out')), 120_000)
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve)
    req.once('error', reject)
  })
  response.catch(() => {})
  try {
    for (let sent = 0; sent < totalBytes && !req.destroyed; sent += block.length) {
      if (!req.write(block)) {
        await new Promise<void>(resolve => {
          const done = (): void => {
            req.off('drain', done)
            req.off('close', done)
            resolve()
          }
          req.once('drain', done)
          req.once('close', done)
        })
      }
    }
    req.end()
    const res = await response
    res.resume()
    await new Promise<void>((resolve, reject) => {
      res.once('end', resolve)
      res.once('error', reject)
    })
    return { status: res.statusCode ?? 0, seconds: (performance.now() - started) / 1000 }
  } finally {
    clearTimeout(guard)
    agent.destroy()
  }
}

const s3: Scenario = {
  id: 'S3',
  title: 'upload: one chunked blob upload (512 MiB; quick: 128 MiB)',
  async run ({ target, tokens, upstream, quick }) {
    const totalBytes = (quick ? 128 : 512) * MiB
    const rss = new RssSampler(target.proxyPids).start()
    try {
      const { status, seconds } = await upload(target, tokens.model, totalBytes)
      const memory = rss.stop()
      const stats = await upstream.stats()
      const received = stats.uploads.reduce((sum, u) => sum + u.bytes, 0)
      return {
        mbps: totalBytes / 1e6 / seconds,
        status,
        bytesOk: received === totalBytes && status === 201 ? 1 : 0,
        ...(target.name !== 'direct' ? { peakRss: memory.peak } : {})
      }
    } finally {
      rss.stop()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// S4 aborts

export const S4_STREAMS = 20

const s4: Scenario = {
  id: 'S4',
  title: `aborts: ${S4_STREAMS} streams closed by the client after 300 ms`,
  async run ({ target, tokens, upstream, round }) {
    const agent = new Agent({ connections: S4_STREAMS * 2, pipelining: 1 })
    const closedAt = new Map<string, number>()
    try {
      await Promise.all(Array.from({ length: S4_STREAMS }, async (_, i) => {
        const tag = `s4-${round}-${target.name}-${i}`
        const controller = new AbortController()
        const timer = setTimeout(() => {
          closedAt.set(tag, now())
          controller.abort()
        }, 300)
        const guard = AbortSignal.any([controller.signal, AbortSignal.timeout(15_000)])
        await chatStream(agent, `${target.base}/api/chat`, tokens.generate, chatBody({ chunks: 1000, delay_ms: 5, tag }), guard)
        clearTimeout(timer)
      }))
      // Whatever the upstream sees within 1 s of the client leaving is recorded with its own time.
      await sleep(1100)
      const stats = await upstream.stats()
      let within = 0
      let worst = 0
      for (const record of stats.aborted) {
        const clientClosed = record.tag === undefined ? undefined : closedAt.get(record.tag)
        if (clientClosed === undefined) continue
        const delay = record.closedAt - clientClosed
        if (delay <= 1000) within++
        if (delay > worst) worst = delay
      }
      return { closedWithin1s: within, worstCloseDelay: worst, upstreamAborted: stats.aborted.length }
    } finally {
      await agent.destroy()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// S5 idle cost

export const S5_STREAMS = 1000

const s5: Scenario = {
  id: 'S5',
  title: `idle cost: proxy RSS after start and with ${S5_STREAMS} open idle streams`,
  skip: ['direct'],
  async run ({ target, tokens, upstream }) {
    const agent = new Agent({ connections: S5_STREAMS + 24, pipelining: 1 })
    const controller = new AbortController()
    const signal = shared(AbortSignal.any([controller.signal, AbortSignal.timeout(30_000)]))
    const body = chatBody({ chunks: 1, delay_ms: 0, first_byte_delay_ms: 30_000 })
    const streams = Array.from({ length: S5_STREAMS }, async () =>
      await chatStream(agent, `${target.base}/api/chat`, tokens.generate, body, signal))
    try {
      // Wait (bounded) until every stream is open at the upstream.
      let open = 0
      const deadline = Date.now() + 10_000
      while (Date.now() < deadline) {
        open = (await upstream.stats()).open
        if (open >= S5_STREAMS) break
        await sleep(50)
      }
      const rss = new RssSampler(target.proxyPids).start()
      await sleep(3000)
      const memory = rss.stop()
      return { idleRss: memory.peak, openAtUpstream: open }
    } finally {
      controller.abort()
      await Promise.all(streams)
      await agent.destroy()
      // Let the closes reach the upstream before the next run (bounded).
      const deadline = Date.now() + 5000
      while (Date.now() < deadline && (await upstream.stats()).open > 0) await sleep(50)
    }
  }
}

export const scenarios: readonly Scenario[] = [s1, s2, s3, s4, s5]
