import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { normaliseModel } from '../auth/model-names.js'
import type { OllamaDurations, TokenUsage } from './request-log.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Inference routes whose answers carry Ollama's token counts. */
    countsTokens?: boolean
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

/**
 * Reads token counts from inference answers as they stream to the client, puts them on the
 * request (and so on its log line), and charges them to the key's token window.
 */
export default fp(async function usagePlugin (fastify) {
  fastify.observeUpstream(function countTokens (request: FastifyRequest, stream: NodeJS.ReadableStream) {
    if (request.routeOptions.config.countsTokens !== true) return
    const scanner = new UsageScanner()
    stream.on('data', (chunk: Buffer) => scanner.scan(chunk))
    stream.once('end', () => {
      const usage = scanner.usage
      if (usage === undefined) return
      request.usage = usage
      const key = request.apiKey
      const total = usage.promptTokens + usage.completionTokens
      if (key !== undefined && key.limits.tokensPerMinute !== null && total > 0) fastify.chargeTokens(key.name, total)
      const model = request.model === undefined ? 'other' : normaliseModel(request.model)
      fastify.metrics.recordTokens(key?.name ?? 'none', model, usage)
      fastify.limitWindows.recordUsage?.(key?.name ?? 'none', model, usage.promptTokens, usage.completionTokens)
    })
  })
}, { name: 'usage', fastify: '5.x', dependencies: ['upstream', 'limits', 'request-log', 'metrics'] })
