/** Ollama's own timings of an answer, in milliseconds. */
export interface OllamaDurations { totalMs?: number, loadMs?: number, promptEvalMs?: number, evalMs?: number }

/** Tokens of one answer. `estimated`: Ollama printed no (or not all) counts (see UsageMeter). */
export interface TokenUsage { promptTokens: number, completionTokens: number, estimated?: boolean, ollama?: OllamaDurations }

// Ollama's figures in each dialect: native final chunk, OpenAI `usage`, Anthropic/Responses usage.
// Native answers also carry Ollama's own timings (nanoseconds) in the final chunk.
const USAGE_FIELD = /"(prompt_eval_count|eval_count|prompt_tokens|completion_tokens|input_tokens|output_tokens|cache_read_input_tokens|cache_creation_input_tokens|total_duration|load_duration|prompt_eval_duration|eval_duration)":\s*(\d+)/g
/** Fields that hold the whole prompt: native, OpenAI (cached tokens included), Anthropic/Responses without its cache. */
const PROMPT_FIELDS = new Set(['prompt_eval_count', 'prompt_tokens', 'input_tokens'])
/**
 * Anthropic's usage leaves cached prompt tokens out of `input_tokens` and reports them beside it
 * (anthropic/anthropic.go, Usage: InputTokens = PromptEvalCount - cached): they are prompt tokens too.
 */
const CACHED_PROMPT_FIELDS = new Set(['cache_read_input_tokens', 'cache_creation_input_tokens'])
const DURATION_FIELDS: Record<string, keyof OllamaDurations> = {
  total_duration: 'totalMs', load_duration: 'loadMs', prompt_eval_duration: 'promptEvalMs', eval_duration: 'evalMs'
}
const MARKERS = [Buffer.from('_count"'), Buffer.from('_tokens"'), Buffer.from('_duration"')]
const MARKER_TEXT = /_count"|_tokens"|_duration"/
/** Enough of the previous chunk to find a field split across two chunks. */
const CARRY = 40

/** How a stream separates the pieces Ollama writes: NDJSON lines, SSE events, or one document. */
export type Framing = 'line' | 'event' | 'none'

/** The framing of an answer, from its Content-Type. */
export function framingOf (contentType: unknown): Framing {
  const type = String(contentType ?? '').toLowerCase()
  if (type.startsWith('text/event-stream')) return 'event'
  if (type.startsWith('application/x-ndjson')) return 'line'
  return 'none'
}

/**
 * What an answer costs, read as it streams by without delaying or copying it: Ollama's own token
 * counts where it prints them, and for the estimate used where it does not, the frames streamed.
 *
 * Ollama writes one NDJSON line or SSE event per piece its runner hands back, and the runner hands
 * back one piece per generated token (llm/llama_server.go: one callback per llama-server SSE event
 * carrying content), so each frame counts as one token; the few framing events around the content
 * (final chunk, `[DONE]`, Anthropic's and Responses' start/stop events) count too. An answer that
 * came compressed is charged one token per 4 bytes received.
 */
export class UsageMeter {
  private prompt: number | undefined = undefined
  private cachedPrompt = 0
  private completion: number | undefined = undefined
  private durations: OllamaDurations | undefined = undefined
  private carry = ''
  private frames = 0
  private bytes = 0
  private endedWithNewline = false

  /**
   * @param framing how the answer is framed (see {@link framingOf})
   * @param encoded the answer came compressed: no counts can be read, bytes are charged
   * @param promptEstimate tokens of the request's prompt text, charged when Ollama reports none
   */
  constructor (private readonly framing: Framing, private readonly encoded: boolean, private readonly promptEstimate: number) {}

  /** Reads one chunk of the answer (bytes as they reach the client). */
  count (chunk: Buffer): void {
    this.bytes += chunk.length
    if (this.encoded) return
    this.scan(chunk)
    if (this.framing === 'none') return
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) {
      if (this.framing === 'line') this.frames++
      else if (at === 0 ? this.endedWithNewline : chunk[at - 1] === 10) this.frames++
    }
    if (chunk.length > 0) this.endedWithNewline = chunk[chunk.length - 1] === 10
  }

  /** Frames (or, compressed, 4-byte units) streamed so far: the completion estimate. */
  get estimate (): number {
    return this.encoded ? Math.ceil(this.bytes / 4) : this.frames
  }

  /**
   * What the answer costs. A completed answer: Ollama's counts when it printed them; where it
   * printed none, the frames streamed and the prompt estimate. An answer the client left (or that
   * broke off): the counts Ollama printed so far, completion at least the frames streamed, and the
   * prompt estimate when Ollama had not printed the prompt's count yet.
   */
  usage (completed: boolean): TokenUsage {
    const prompt = this.prompt === undefined && this.cachedPrompt === 0 ? undefined : (this.prompt ?? 0) + this.cachedPrompt
    const reported = prompt !== undefined || this.completion !== undefined
    let usage: TokenUsage
    if (completed && reported) {
      usage = { promptTokens: prompt ?? 0, completionTokens: this.completion ?? 0 }
    } else {
      usage = {
        promptTokens: prompt ?? this.promptEstimate,
        completionTokens: Math.max(this.completion ?? 0, this.estimate),
        estimated: true
      }
    }
    if (this.durations !== undefined) usage.ollama = this.durations
    return usage
  }

  private scan (chunk: Buffer): void {
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
      const field = match[1]
      const duration = DURATION_FIELDS[field]
      if (duration !== undefined) (this.durations ??= {})[duration] = Math.round(value / 1e4) / 100
      else if (PROMPT_FIELDS.has(field)) this.prompt = value
      else if (CACHED_PROMPT_FIELDS.has(field)) this.cachedPrompt = value
      else this.completion = value
    }
    this.carry = text.slice(Math.max(0, text.length - CARRY))
  }
}

/** Keys whose values are images, audio or other encoded data, or labels (`role`, `type`), not prompt text. */
const NOT_TEXT = new Set(['images', 'image_url', 'image', 'data', 'source', 'input_audio', 'file', 'file_data', 'role', 'type'])

/**
 * Prompt tokens of a request, for answers that report none: the UTF-8 bytes of the text it sends
 * (`prompt`, `input`, `system`, `instructions`, `messages` and their text parts; images and other encoded data
 * left out) at 4 bytes per token, rounded up. `view` is the Go view of the body.
 */
export function estimatePromptTokens (view: unknown): number {
  if (typeof view !== 'object' || view === null) return 0
  const fields = view as Record<string, unknown>
  const bytes = textBytes(fields.prompt, 0) + textBytes(fields.input, 0) + textBytes(fields.system, 0) + textBytes(fields.instructions, 0) + textBytes(fields.messages, 0)
  return Math.ceil(bytes / 4)
}

/** UTF-8 bytes of the strings in a value, walking arrays and objects (not into NOT_TEXT keys), at most 64 levels deep. */
function textBytes (value: unknown, depth: number): number {
  if (typeof value === 'string') return Buffer.byteLength(value)
  if (typeof value !== 'object' || value === null || depth > 64) return 0
  let bytes = 0
  if (Array.isArray(value)) {
    for (const item of value) bytes += textBytes(item, depth + 1)
    return bytes
  }
  for (const key of Object.keys(value)) {
    if (!NOT_TEXT.has(key)) bytes += textBytes((value as Record<string, unknown>)[key], depth + 1)
  }
  return bytes
}
