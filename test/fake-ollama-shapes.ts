// Response shapes for the fake Ollama server (test/fake-ollama.ts).
// Field names, ordering and omitempty behaviour follow Ollama v0.33 (server/routes.go,
// api/types.go, openai/*.go, anthropic/anthropic.go); see /work/shared/reference/ollama-api.md.
import { createHash, randomBytes } from 'node:crypto'

export const NDJSON = 'application/x-ndjson'
export const JSON_UTF8 = 'application/json; charset=utf-8' // gin c.JSON
export const JSON_PLAIN = 'application/json' // Ollama's OpenAI/Anthropic writers and waitForStream
export const SSE = 'text/event-stream'
export const TEXT_UTF8 = 'text/plain; charset=utf-8' // gin c.String
export const TEXT_GIN = 'text/plain' // gin's own 404/405 bodies

export const MIDSTREAM_ERROR = 'an error was encountered while running the model'
export const BUSY_ERROR = 'server busy, please try again.  maximum pending requests exceeded'
export const PULL_MISSING_ERROR = 'pull model manifest: file does not exist'

// ---------------------------------------------------------------- test controls

export type FailMode = 'reset-before-headers' | 'reset-midstream' | 'error-midstream' | 'hang'
const FAIL_MODES: FailMode[] = ['reset-before-headers', 'reset-midstream', 'error-midstream', 'hang']

export interface FakeControls {
  present: boolean // a `fake` object (or fake_* query parameter) was given
  chunks: number
  delayMs: number
  firstByteDelayMs: number
  promptTokens: number
  /** Of promptTokens, how many came from Ollama's prompt cache (Ollama 0.33.3 reports them apart in /v1/messages). */
  cachedTokens: number
  status?: number
  error?: string
  fail?: FailMode
  headers: Record<string, string>
}

function num (value: unknown, fallback: number): number {
  const n = typeof value === 'string' && value !== '' ? Number(value) : value
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? Math.floor(n) : fallback
}

/** Controls come from the JSON body's `fake` object, else from `?fake_*=` query parameters. */
export function parseControls (json: unknown, query: URLSearchParams): FakeControls {
  let src: Record<string, unknown> = {}
  let present = false
  const bodyFake = isObject(json) ? json.fake : undefined
  if (isObject(bodyFake)) {
    src = bodyFake
    present = true
  } else {
    const headers: Record<string, string> = {}
    for (const [key, value] of query) {
      if (!key.startsWith('fake_')) continue
      present = true
      if (key.startsWith('fake_header_')) headers[key.slice('fake_header_'.length)] = value
      else src[key.slice('fake_'.length)] = value
    }
    src.headers = headers
  }
  const headers: Record<string, string> = {}
  if (isObject(src.headers)) {
    for (const [k, v] of Object.entries(src.headers)) headers[k] = String(v)
  }
  const status = num(src.status, 0)
  const fail = FAIL_MODES.find(mode => mode === src.fail)
  return {
    present,
    chunks: num(src.chunks, 3),
    delayMs: num(src.delay_ms, 5),
    firstByteDelayMs: num(src.first_byte_delay_ms, 0),
    promptTokens: num(src.prompt_tokens, 11),
    cachedTokens: num(src.cached_tokens, 0),
    status: status >= 100 && status <= 599 ? status : undefined,
    error: typeof src.error === 'string' ? src.error : undefined,
    fail,
    headers
  }
}

export function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function str (value: unknown): string {
  return typeof value === 'string' ? value : ''
}

// ---------------------------------------------------------------- model catalogue

export interface ModelDetails {
  parent_model: string
  format: string
  family: string
  families: string[]
  parameter_size: string
  quantization_level: string
}

export interface ModelEntry {
  name: string // canonical, e.g. llama3.2:latest
  digest: string
  size: number
  modifiedAt: string
  details: ModelDetails
  capabilities: string[]
}

/** Ollama's fuzzy names: case-insensitive, default registry/namespace/tag, `:local` = default. */
export function normalizeModelName (name: string): string {
  let n = name.trim().toLowerCase().replace(/^https?:\/\//, '')
  if (n.startsWith('registry.ollama.ai/')) n = n.slice('registry.ollama.ai/'.length)
  if (n.startsWith('library/')) n = n.slice('library/'.length)
  const slash = n.lastIndexOf('/')
  const colon = n.lastIndexOf(':')
  if (colon <= slash) n += ':latest'
  else if (n.endsWith(':local')) n = n.slice(0, -':local'.length) + ':latest'
  return n
}

export function sha256Hex (text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

function details (family: string, parameterSize: string, quantization: string): ModelDetails {
  return { parent_model: '', format: 'gguf', family, families: [family], parameter_size: parameterSize, quantization_level: quantization }
}

export function makeEntry (name: string, from?: ModelEntry): ModelEntry {
  const canonical = normalizeModelName(name)
  return {
    name: canonical,
    digest: sha256Hex(canonical),
    size: from?.size ?? 2019393189,
    modifiedAt: new Date().toISOString(),
    details: from?.details ?? details('llama', '3.2B', 'Q4_K_M'),
    capabilities: from?.capabilities ?? ['completion', 'tools']
  }
}

export function initialCatalogue (): Map<string, ModelEntry> {
  const modified = '2026-05-04T17:37:44.706015396-07:00'
  const entries: ModelEntry[] = [
    { name: 'llama3.2:latest', digest: 'a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72', size: 2019393189, modifiedAt: modified, details: details('llama', '3.2B', 'Q4_K_M'), capabilities: ['completion', 'tools'] },
    { name: 'nomic-embed-text:latest', digest: '0a109f422b47e3a30ba2b10eca18548e944e8a23073ee3f3e947efcf3c45e59f', size: 274302450, modifiedAt: modified, details: details('nomic-bert', '137M', 'F16'), capabilities: ['embedding'] },
    { name: 'qwen3:8b', digest: '500a1f067a9f782620b40bee6f7b0c89e17ae61f686b92c24933e4ca4b2b8b41', size: 5225388164, modifiedAt: modified, details: details('qwen3', '8.2B', 'Q4_K_M'), capabilities: ['completion', 'tools', 'thinking'] },
    { name: 'alice/private:latest', digest: sha256Hex('alice/private:latest'), size: 2019393189, modifiedAt: modified, details: details('llama', '3.2B', 'Q4_K_M'), capabilities: ['completion'] }
  ]
  return new Map(entries.map(e => [e.name, e]))
}

export const LOADED_MODELS = ['llama3.2:latest']

export function listModel (e: ModelEntry) {
  return { name: e.name, model: e.name, modified_at: e.modifiedAt, size: e.size, digest: e.digest, details: e.details, capabilities: e.capabilities }
}

export function psModel (e: ModelEntry) {
  const expires = new Date(Date.now() + 5 * 60_000).toISOString()
  return { name: e.name, model: e.name, size: 3400000000, digest: e.digest, details: e.details, expires_at: expires, size_vram: 3400000000, context_length: 4096 }
}

export function showResponse (e: ModelEntry) {
  const arch = e.details.family
  return {
    license: 'FAKE LICENSE',
    modelfile: `# Modelfile generated by "ollama show"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM ${e.name}\n\nFROM /root/.ollama/models/blobs/sha256-${e.digest}\nTEMPLATE {{ .Prompt }}\n`,
    parameters: 'stop                           "<|eot_id|>"',
    template: '{{ .Prompt }}',
    details: e.details,
    model_info: { 'general.architecture': arch, 'general.parameter_count': 3212749888, [`${arch}.context_length`]: 131072 },
    tensors: [{ name: 'token_embd.weight', type: 'Q4_K', shape: [3072, 128256] }],
    capabilities: e.capabilities,
    modified_at: e.modifiedAt
  }
}

/** OpenAI `owned_by`: the model name's namespace. */
export function namespaceOf (name: string): string {
  const n = normalizeModelName(name)
  const slash = n.lastIndexOf('/')
  if (slash === -1) return 'library'
  const parts = n.slice(0, slash).split('/')
  return parts[parts.length - 1]
}

export function unixSeconds (iso?: string): number {
  return Math.floor((iso === undefined ? Date.now() : Date.parse(iso)) / 1000)
}

// ---------------------------------------------------------------- errors

export type Dialect = 'native' | 'openai' | 'anthropic'

export function errorBody (dialect: Dialect, status: number, message: string): Record<string, unknown> {
  if (dialect === 'openai') {
    const type = status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error'
    return { error: { message, type, param: null, code: null } }
  }
  if (dialect === 'anthropic') {
    const types: Record<number, string> = { 400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error', 429: 'rate_limit_error', 503: 'overloaded_error', 529: 'overloaded_error' }
    return { type: 'error', error: { type: types[status] ?? 'api_error', message }, request_id: randomId('req') }
  }
  return { error: message }
}

export function randomId (prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`
}

// ---------------------------------------------------------------- generated content

const WORDS = ['Hello', ' from', ' the', ' fake', ' Ollama', '!']

/** Text of content chunk `i` (0-based); deterministic so tests can assert it. */
export function contentPiece (i: number): string {
  return i < WORDS.length ? WORDS[i] : ` #${i}`
}

/** The whole answer of an `n`-chunk generation. */
export function contentText (n: number): string {
  let text = ''
  for (let i = 0; i < n; i++) text += contentPiece(i)
  return text
}

export interface GenParams { model: string, chunks: number, promptTokens: number, cachedTokens?: number }

/**
 * Anthropic usage as Ollama 0.33.3 writes it (anthropic/anthropic.go): cached prompt tokens apart
 * in `cache_read_input_tokens`, the rest in `input_tokens`; without a cache, the older shape.
 */
function anthropicUsage (p: GenParams, outputTokens: number): Record<string, number> {
  const cached = p.cachedTokens ?? 0
  if (cached === 0) return { input_tokens: p.promptTokens, output_tokens: outputTokens }
  return { input_tokens: p.promptTokens - cached, cache_creation_input_tokens: 0, cache_read_input_tokens: cached, output_tokens: outputTokens }
}

/** Final-chunk metrics; Ollama marks them all omitempty, so zeros are dropped. */
export function metrics (p: GenParams): Record<string, number> {
  const m: Record<string, number> = {
    total_duration: 1_000_000 + 1_234_567 + 2_345_678 + p.chunks * 10_000_000,
    load_duration: 1_234_567,
    prompt_eval_count: p.promptTokens,
    prompt_eval_duration: p.promptTokens > 0 ? 2_345_678 : 0,
    eval_count: p.chunks,
    eval_duration: p.chunks * 10_000_000
  }
  for (const key of Object.keys(m)) if (m[key] === 0) Reflect.deleteProperty(m, key)
  return m
}

const line = (value: unknown): string => JSON.stringify(value) + '\n'
const now = (): string => new Date().toISOString()

export function ndjsonError (message: string): string {
  return line({ error: message })
}

function generateContext (p: GenParams): number[] {
  return Array.from({ length: p.promptTokens + p.chunks }, (_, i) => (128000 + i * 7919) % 128256)
}

export function generateFrames (p: GenParams): string[] {
  const frames: string[] = []
  for (let i = 0; i < p.chunks; i++) frames.push(line({ model: p.model, created_at: now(), response: contentPiece(i), done: false }))
  frames.push(line(generateFinal(p, '')))
  return frames
}

export function generateFinal (p: GenParams, response = contentText(p.chunks)) {
  return { model: p.model, created_at: now(), response, done: true, done_reason: 'stop', context: generateContext(p), ...metrics(p) }
}

export function chatFrames (p: GenParams): string[] {
  const frames: string[] = []
  for (let i = 0; i < p.chunks; i++) frames.push(line({ model: p.model, created_at: now(), message: { role: 'assistant', content: contentPiece(i) }, done: false }))
  frames.push(line(chatFinal(p, '')))
  return frames
}

export function chatFinal (p: GenParams, content = contentText(p.chunks)) {
  return { model: p.model, created_at: now(), message: { role: 'assistant', content }, done: true, done_reason: 'stop', ...metrics(p) }
}

// ---------------------------------------------------------------- progress (pull/push/create)

export function pullProgress (model: string, chunks: number): object[] {
  const digest = sha256Hex('blob:' + normalizeModelName(model))
  const total = 2019377376
  const out: object[] = [{ status: 'pulling manifest' }]
  for (let i = 0; i < chunks; i++) {
    const completed = Math.floor(total * i / Math.max(1, chunks - 1))
    const progress: Record<string, unknown> = { status: `pulling ${digest.slice(0, 12)}`, digest: `sha256:${digest}`, total }
    if (completed > 0) progress.completed = completed
    out.push(progress)
  }
  out.push({ status: 'verifying sha256 digest' }, { status: 'writing manifest' }, { status: 'success' })
  return out
}

export function pushProgress (model: string, chunks: number): object[] {
  const digest = sha256Hex('blob:' + normalizeModelName(model))
  const total = 1928429856
  const out: object[] = [{ status: 'retrieving manifest' }]
  for (let i = 0; i < chunks; i++) {
    out.push({ status: `pushing ${digest.slice(0, 12)}`, digest: `sha256:${digest}`, total, completed: Math.floor(total * (i + 1) / chunks) })
  }
  out.push({ status: 'pushing manifest' }, { status: 'success' })
  return out
}

export function createProgress (model: string, from: string, files: string[], chunks: number): object[] {
  const out: object[] = []
  if (from !== '') {
    for (let i = 0; i < chunks; i++) out.push({ status: `using existing layer sha256:${sha256Hex(`${from}:${i}`)}` })
  } else {
    out.push({ status: 'parsing GGUF' })
    for (const digest of files) out.push({ status: `using existing layer ${digest.replace('sha256-', 'sha256:')}` })
  }
  out.push({ status: `creating new layer sha256:${sha256Hex('params:' + model)}` }, { status: 'writing manifest' }, { status: 'success' })
  return out
}

export const progressFrames = (objects: object[]): string[] => objects.map(line)

// ---------------------------------------------------------------- embeddings

export function embeddingVector (text: string, dims: number): number[] {
  const seed = createHash('sha256').update(text).digest().readUInt32BE(0) / 0xffffffff
  return Array.from({ length: dims }, (_, i) => Math.round(Math.sin((seed + 1) * (i + 1) * 12.9898) * 1e6) / 1e6)
}

export function float32Base64 (values: number[]): string {
  const buf = Buffer.alloc(values.length * 4)
  values.forEach((v, i) => buf.writeFloatLE(v, i * 4))
  return buf.toString('base64')
}

// ---------------------------------------------------------------- OpenAI

export interface OpenAIParams extends GenParams { id: string, created: number, includeUsage: boolean }

const sse = (value: unknown): string => `data: ${JSON.stringify(value)}\n\n`
const SSE_DONE = 'data: [DONE]\n\n'

function usage (p: GenParams) {
  return { prompt_tokens: p.promptTokens, completion_tokens: p.chunks, total_tokens: p.promptTokens + p.chunks }
}

function chatChunk (p: OpenAIParams, delta: Record<string, unknown>, finishReason: string | null) {
  return { id: p.id, object: 'chat.completion.chunk', created: p.created, model: p.model, system_fingerprint: 'fp_ollama', choices: [{ index: 0, delta, finish_reason: finishReason }] }
}

/** One string per Ollama chunk (the last one carries finish, usage and [DONE]). */
export function openaiChatFrames (p: OpenAIParams): string[] {
  const frames: string[] = []
  for (let i = 0; i < p.chunks; i++) {
    frames.push(sse(chatChunk(p, i === 0 ? { role: 'assistant', content: contentPiece(i) } : { content: contentPiece(i) }, null)))
  }
  let last = p.chunks === 0 ? sse(chatChunk(p, { role: 'assistant', content: '' }, null)) : ''
  last += sse(chatChunk(p, {}, 'stop'))
  if (p.includeUsage) last += sse({ ...chatChunk(p, {}, 'stop'), choices: [], usage: usage(p) })
  frames.push(last + SSE_DONE)
  return frames
}

/** What Ollama's SSE writer emits for a mid-stream `{"error":...}` line: an empty delta. */
export function openaiChatErrorFrame (p: OpenAIParams): string {
  return sse(chatChunk(p, { content: '' }, null))
}

export function openaiChatCompletion (p: OpenAIParams) {
  return {
    id: p.id,
    object: 'chat.completion',
    created: p.created,
    model: p.model,
    system_fingerprint: 'fp_ollama',
    choices: [{ index: 0, message: { role: 'assistant', content: contentText(p.chunks) }, finish_reason: 'stop' }],
    usage: usage(p)
  }
}

function completionChunk (p: OpenAIParams, text: string, finishReason: string | null) {
  const chunk: Record<string, unknown> = { id: p.id, object: 'text_completion', created: p.created, choices: [{ text, index: 0, finish_reason: finishReason }], model: p.model, system_fingerprint: 'fp_ollama' }
  if (p.includeUsage) chunk.usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } // Ollama quirk
  return chunk
}

export function openaiCompletionFrames (p: OpenAIParams): string[] {
  const frames: string[] = []
  for (let i = 0; i < p.chunks; i++) frames.push(sse(completionChunk(p, contentPiece(i), null)))
  let last = sse(completionChunk(p, '', 'stop'))
  if (p.includeUsage) last += sse({ ...completionChunk(p, '', 'stop'), choices: [], usage: usage(p) })
  frames.push(last + SSE_DONE)
  return frames
}

export function openaiCompletionErrorFrame (p: OpenAIParams): string {
  return sse(completionChunk(p, '', null))
}

export function openaiCompletion (p: OpenAIParams) {
  return { id: p.id, object: 'text_completion', created: p.created, model: p.model, system_fingerprint: 'fp_ollama', choices: [{ text: contentText(p.chunks), index: 0, finish_reason: 'stop' }], usage: usage(p) }
}

// ---------------------------------------------------------------- OpenAI Responses

export interface ResponsesParams extends GenParams { responseId: string, itemId: string, request: Record<string, unknown> }

function responseObject (p: ResponsesParams, status: string, output: unknown[], usageValue: unknown) {
  const r = p.request
  return {
    id: p.responseId,
    object: 'response',
    created_at: unixSeconds(),
    completed_at: status === 'completed' ? unixSeconds() : null,
    status,
    incomplete_details: null,
    model: p.model,
    previous_response_id: null,
    instructions: typeof r.instructions === 'string' && r.instructions !== '' ? r.instructions : null,
    output,
    error: null,
    tools: Array.isArray(r.tools) ? r.tools : [],
    tool_choice: 'auto',
    truncation: typeof r.truncation === 'string' ? r.truncation : 'disabled',
    parallel_tool_calls: true,
    text: { format: { type: 'text' } },
    top_p: typeof r.top_p === 'number' ? r.top_p : 1,
    presence_penalty: 0,
    frequency_penalty: 0,
    top_logprobs: 0,
    temperature: typeof r.temperature === 'number' ? r.temperature : 1,
    reasoning: null,
    usage: usageValue,
    max_output_tokens: typeof r.max_output_tokens === 'number' ? r.max_output_tokens : null,
    max_tool_calls: null,
    store: false,
    background: r.background === true,
    service_tier: 'default',
    metadata: {},
    safety_identifier: null,
    prompt_cache_key: null
  }
}

function responsesUsage (p: GenParams) {
  return { input_tokens: p.promptTokens, output_tokens: p.chunks, total_tokens: p.promptTokens + p.chunks, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } }
}

function outputText (text: string) {
  return { type: 'output_text', text, annotations: [], logprobs: [] }
}

function messageItem (p: ResponsesParams, status: string, content: unknown[]) {
  return { id: p.itemId, type: 'message', status, role: 'assistant', content }
}

export function responsesFrames (p: ResponsesParams): string[] {
  let seq = 0
  const ev = (type: string, data: Record<string, unknown>): string => `event: ${type}\ndata: ${JSON.stringify({ ...data, type, sequence_number: seq++ })}\n\n`
  const text = contentText(p.chunks)
  const frames: string[] = []
  const open = ev('response.created', { response: responseObject(p, 'in_progress', [], null) }) +
    ev('response.in_progress', { response: responseObject(p, 'in_progress', [], null) })
  for (let i = 0; i < p.chunks; i++) {
    let frame = i === 0
      ? open + ev('response.output_item.added', { output_index: 0, item: messageItem(p, 'in_progress', []) }) +
        ev('response.content_part.added', { item_id: p.itemId, output_index: 0, content_index: 0, part: outputText('') })
      : ''
    frame += ev('response.output_text.delta', { item_id: p.itemId, output_index: 0, content_index: 0, delta: contentPiece(i), logprobs: [] })
    frames.push(frame)
  }
  let last = p.chunks === 0 ? open : ''
  const output: unknown[] = []
  if (p.chunks > 0) {
    const item = messageItem(p, 'completed', [outputText(text)])
    output.push(item)
    last += ev('response.output_text.done', { item_id: p.itemId, output_index: 0, content_index: 0, text, logprobs: [] }) +
      ev('response.content_part.done', { item_id: p.itemId, output_index: 0, content_index: 0, part: outputText(text) }) +
      ev('response.output_item.done', { output_index: 0, item })
  }
  last += ev('response.completed', { response: responseObject(p, 'completed', output, responsesUsage(p)) })
  frames.push(last)
  return frames
}

export function responsesResponse (p: ResponsesParams) {
  return responseObject(p, 'completed', [messageItem(p, 'completed', [outputText(contentText(p.chunks))])], responsesUsage(p))
}

// ---------------------------------------------------------------- Anthropic

export interface AnthropicParams extends GenParams { id: string }

export function anthropicFrames (p: AnthropicParams): string[] {
  const ev = (type: string, data: Record<string, unknown>): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  const start = ev('message_start', { message: { id: p.id, type: 'message', role: 'assistant', model: p.model, content: [], usage: anthropicUsage(p, 0) } })
  const frames: string[] = []
  for (let i = 0; i < p.chunks; i++) {
    const head = i === 0 ? start + ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) : ''
    frames.push(head + ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: contentPiece(i) } }))
  }
  let last = p.chunks === 0 ? start : ev('content_block_stop', { index: 0 })
  last += ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: anthropicUsage(p, p.chunks) })
  last += ev('message_stop', {})
  frames.push(last)
  return frames
}

export function anthropicMessage (p: AnthropicParams) {
  const text = contentText(p.chunks)
  return {
    id: p.id,
    type: 'message',
    role: 'assistant',
    model: p.model,
    content: text === '' ? null : [{ type: 'text', text }],
    stop_reason: 'end_turn',
    usage: anthropicUsage(p, p.chunks)
  }
}

// ---------------------------------------------------------------- account / experimental

export function signinUrl (host: string): string {
  const key = Buffer.from('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeOllamaPublicKeyForTests').toString('base64')
  return `https://ollama.com/connect?name=${encodeURIComponent(host)}&key=${encodeURIComponent(key)}`
}

export const MODEL_RECOMMENDATIONS = {
  recommendations: [
    { model: 'kimi-k2.6:cloud', description: 'State-of-the-art coding, long-horizon execution, and multimodal agent swarm capability', context_length: 262144, max_output_tokens: 262144 },
    { model: 'qwen3.5:cloud', description: 'Reasoning, coding, and agentic tool use with vision', context_length: 262144, max_output_tokens: 32768 },
    { model: 'gemma4', description: 'Reasoning and code generation locally', vram_bytes: 12000000000 }
  ]
}

export function webSearchResults (query: string, max: number) {
  return {
    results: Array.from({ length: max }, (_, i) => ({ title: `Result ${i + 1} for ${query}`, url: `https://example.com/search/${i + 1}`, content: `Fake content ${i + 1} about ${query}.` }))
  }
}

export function webFetchResult (url: string) {
  return { title: 'Example Domain', content: `Fake page content of ${url}.`, links: ['https://example.com/', 'https://www.iana.org/domains/example'] }
}
