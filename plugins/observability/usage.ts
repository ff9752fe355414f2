import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { normaliseModel } from '../auth/model-names.js'
import type { OllamaDurations, TokenUsage } from './request-log.js'
import type { UpstreamResponse } from '../upstream/upstream.js'
import { assertIdentityEncoding } from '../upstream/bounded-read.js'
import { routeConfigOf } from '../http/per-request.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Inference routes whose answers carry Ollama's token counts. */
    countsTokens?: boolean
  }
  interface FastifyRequest {
    /** Prompt tokens estimated from the body (4 UTF-8 bytes a token), for answers that report none. */
    promptEstimate?: number
  }
}

// Ollama's figures in each dialect: native final chunk, OpenAI `usage`, Anthropic/Responses usage.
// Native answers also carry Ollama's own timings (nanoseconds) in the final chunk.
const USAGE_FIELD = /"(prompt_eval_count|eval_count|prompt_tokens|completion_tokens|input_tokens|output_tokens|total_duration|load_duration|prompt_eval_duration|eval_duration)":\s*(\d+)/g
const PROMPT_FIELDS = new Set(['prompt_eval_count', 'prompt_tokens', 'input_tokens'])
const DURATION_FIELDS: Record<string, keyof OllamaDurations> = {
  total_duration: 'totalMs', load_duration: 'loadMs', prompt_eval_duration: 'promptEvalMs', eval_duration: 'evalMs'
}
const MARKERS = [Buffer.from('_count"'), Buffer.from('_tokens"'), Buffer.from('_duration"')]
const MARKER_TEXT = /_count"|_tokens"|_duration"/
/** Enough of the previous chunk to find a field split across two chunks. */
const CARRY = 40

/** Finds Ollama's token counts in an answer as it streams by, without delaying or copying it. */
export class UsageScanner {
  prompt: number | undefined
  completion: number | undefined
  readonly durations: OllamaDurations = {}
  private carry = ''

  scan (chunk: Buffer): void {
    const head = this.carry + chunk.toString('latin1', 0, Math.min(chunk.length, CARRY))
    if (!MARKERS.some(marker => chunk.includes(marker)) && !MARKER_TEXT.test(head)) {
      this.carry = chunk.toString('latin1', Math.max(0, chunk.length - CARRY))
      return
    }
    const text = this.carry + chunk.toString('latin1')
    for (const match of text.matchAll(USAGE_FIELD)) {
      const value = Number(match[2])
      // A count no real Ollama sends (past 2^53) is taken as not reported rather than trusted:
      // it would lock a key's token window and break the sums of the token metrics.
      if (!Number.isSafeInteger(value)) continue
      const duration = DURATION_FIELDS[match[1]]
      if (duration !== undefined) this.durations[duration] = Math.round(value / 1e4) / 100
      else if (PROMPT_FIELDS.has(match[1])) this.prompt = value
      else this.completion = value
    }
    this.carry = text.slice(Math.max(0, text.length - CARRY))
  }

  get usage (): TokenUsage | undefined {
    if (this.prompt === undefined && this.completion === undefined) return undefined
    const usage: TokenUsage = { promptTokens: this.prompt ?? 0, completionTokens: this.completion ?? 0 }
    if (Object.keys(this.durations).length > 0) usage.ollama = this.durations
    return usage
  }
}

/** How a stream separates the pieces Ollama writes: NDJSON lines, SSE events, or one document. */
type Framing = 'line' | 'event' | 'none'

function framingOf (contentType: unknown): Framing {
  const type = String(contentType ?? '').toLowerCase()
  if (type.startsWith('text/event-stream')) return 'event'
  if (type.startsWith('application/x-ndjson')) return 'line'
  return 'none'
}

/**
 * Counts what an answer streamed, for the estimate used when Ollama's own counts are missing
 * (OpenAI streams without `stream_options.include_usage`, clients that leave before the last
 * chunk). Ollama writes one NDJSON line or SSE event per piece its runner hands back, and the
 * runner hands back one piece per generated token (llm/llama_server.go: one callback per
 * llama-server SSE event carrying content), so each frame counts as one token; the few framing
 * events around the content (final chunk, `[DONE]`, Anthropic's and Responses' start/stop events)
 * count too. An answer that came compressed is charged one token per 4 bytes received.
 */
export class FrameCounter {
  frames = 0
  bytes = 0
  private endedWithNewline = false

  constructor (private readonly framing: Framing, private readonly encoded: boolean) {}

  count (chunk: Buffer): void {
    this.bytes += chunk.length
    if (this.framing === 'none' || this.encoded) return
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) {
      if (this.framing === 'line') this.frames++
      else if (at === 0 ? this.endedWithNewline : chunk[at - 1] === 10) this.frames++
    }
    if (chunk.length > 0) this.endedWithNewline = chunk[chunk.length - 1] === 10
  }

  get estimate (): number {
    return this.encoded ? Math.ceil(this.bytes / 4) : this.frames
  }
}

/**
 * Prompt tokens of a request whose answer reports none (legacy /api/embeddings): its `prompt` or
 * `input` text at 4 UTF-8 bytes per token, rounded up.
 */
export function estimatePromptTokens (body: unknown): number {
  if (typeof body !== 'object' || body === null) return 0
  const fields = body as Record<string, unknown>
  // Runs on every generate request: no intermediate arrays.
  return Math.ceil((textBytes(fields.prompt) + textBytes(fields.input)) / 4)
}

/** UTF-8 bytes of a string, or of the strings directly inside an array (as `[x].flat()` would see them). */
function textBytes (value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value)
  if (!Array.isArray(value)) return 0
  let bytes = 0
  for (const item of value) if (typeof item === 'string') bytes += Buffer.byteLength(item)
  return bytes
}

const SMALL_STRING = 1024

/** The scalar fields of a body view (strings up to 1 KiB): what is read of it after the checks. */
function smallFieldsOf (body: Record<string, unknown>): Record<string, unknown> {
  const small: Record<string, unknown> = {}
  for (const field of Object.keys(body)) {
    const value = body[field]
    if (value === null || typeof value === 'boolean' || typeof value === 'number' || (typeof value === 'string' && value.length <= SMALL_STRING)) small[field] = value
  }
  return small
}

/**
 * What an answer costs. A completed answer: Ollama's counts when it printed them, else the
 * estimate (frames streamed; prompt text for answers that stream nothing). An answer the client
 * left (or that broke off): the counts Ollama printed so far, completion at least the frames
 * streamed.
 */
export function answerUsage (scanner: UsageScanner, counter: FrameCounter, completed: boolean, promptEstimate: number): TokenUsage {
  const reported = scanner.usage
  let usage: TokenUsage
  if (completed && reported !== undefined) {
    usage = reported
  } else if (completed) {
    usage = { promptTokens: counter.estimate === 0 ? promptEstimate : 0, completionTokens: counter.estimate, estimated: true }
  } else {
    usage = { promptTokens: scanner.prompt ?? 0, completionTokens: Math.max(scanner.completion ?? 0, counter.estimate), estimated: true }
    if (reported?.ollama !== undefined) usage.ollama = reported.ollama
  }
  return usage
}

/**
 * Reads token counts from inference answers as they stream to the client, puts them on the
 * request (and so on its log line), and charges them to the key's token window: every successful
 * answer is charged once, when it ends or when the client leaves, with Ollama's counts or the
 * estimate above (marked `estimated` on the log line).
 */
export default fp(async function usagePlugin (fastify) {
  fastify.decorateRequest('promptEstimate', undefined)
  // The Go view of a JSON body may hold a whole prompt or chat history (the size of the body
  // again, or twice that as UTF-16). Once the checks before it have run, only its small fields
  // are read (routing's `stream`), so the rest is let go while the answer streams: the forwarded
  // bytes are then the only copy kept, which server.max_body_bytes_in_flight accounts for.
  fastify.addHook('preHandler', function keepOnlySmallBodyFields (request, _reply, done) {
    const body = request.body
    if (request.rawBody !== undefined && typeof body === 'object' && body !== null) {
      if (routeConfigOf(request).countsTokens === true) request.promptEstimate = estimatePromptTokens(body)
      request.body = smallFieldsOf(body as Record<string, unknown>)
    }
    done()
  })
  fastify.observeUpstream(function countTokens (request: FastifyRequest, stream: NodeJS.ReadableStream, response: UpstreamResponse) {
    if (routeConfigOf(request).countsTokens !== true || response.statusCode >= 300) return
    const scanner = new UsageScanner()
    let encoded = false
    try {
      assertIdentityEncoding(response.headers, 'the answer')
    } catch {
      encoded = true
    }
    const counter = new FrameCounter(framingOf(response.headers['content-type']), encoded)
    let settled = false
    const settle = (completed: boolean) => {
      if (settled) return
      settled = true
      const usage = answerUsage(scanner, counter, completed, request.promptEstimate ?? 0)
      request.usage = usage
      const key = request.apiKey
      const total = usage.promptTokens + usage.completionTokens
      if (key !== undefined && key.limits.tokensPerMinute !== null && total > 0) fastify.chargeTokens(key.name, total)
      const model = request.model === undefined ? 'other' : normaliseModel(request.model)
      fastify.metrics.recordTokens(key?.name ?? 'none', model, usage)
      fastify.limitWindows.recordUsage?.(key?.name ?? 'none', model, usage.promptTokens, usage.completionTokens)
    }
    stream.on('data', (chunk: Buffer) => {
      if (!encoded) scanner.scan(chunk)
      counter.count(chunk)
    })
    stream.once('end', () => settle(true))
    // A client that leaves destroys the upstream body: 'close' without 'end'.
    stream.once('close', () => settle(false))
  })
}, { name: 'usage', fastify: '5.x', dependencies: ['upstream', 'limits', 'request-log', 'metrics'] })
