// A faithful fake of the Ollama v0.33 HTTP API for the proxy's tests and benchmark.
// Route table, status codes, content types and body shapes follow
// /work/shared/reference/ollama-api.md; response bodies are built in ./fake-ollama-shapes.ts.
// Tests steer it per request with a `fake` object in the JSON body or `?fake_*=` query parameters.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http'
import { isIP, type AddressInfo, type Socket } from 'node:net'
import { createHash } from 'node:crypto'
import { hostname, networkInterfaces } from 'node:os'
import { performance } from 'node:perf_hooks'
import * as S from './fake-ollama-shapes.js'

export interface RecordedRequest {
  method: string
  path: string // pathname only, as received (not decoded)
  query: string // '' or '?a=b'
  headers: IncomingHttpHeaders
  body: Buffer // whole request body as received (for blob uploads: empty Buffer, see bodyBytes)
  bodyBytes: number // number of body bytes received
  json?: unknown // parsed body when it parsed as JSON
  receivedAt: number // performance.now() when the request arrived
  finished: boolean // true once the fake wrote its full response
  closedEarly: boolean // true if the client/proxy closed the connection before the response finished
  closedAt?: number // performance.now() when the connection closed early
}
export interface FakeOllamaOptions {
  port?: number
  host?: string
  /** What /api/version answers (default 0.33.0). */
  version?: string
}
/** The User-Agent the proxy's health checks and model-list refreshes send (plugins/upstream/host-health.ts). */
export const PROXY_CHECK_AGENT = 'ollama-proxy-check'

export interface FakeOllama {
  url: string
  port: number
  /** Requests the proxy forwarded for clients. */
  requests: RecordedRequest[]
  /** The proxy's own health checks and model-list refreshes. */
  checks: RecordedRequest[]
  /** Most client requests in progress at once so far (answers not yet ended). */
  readonly maxActive: number
  count (path: string, method?: string): number
  last (path?: string): RecordedRequest | undefined
  reset (): void
  waitForRequest (path: string, timeoutMs?: number): Promise<RecordedRequest>
  waitForEarlyClose (path: string, timeoutMs?: number): Promise<RecordedRequest>
  blobs: Map<string, number>
  /** Names (as in /api/tags) reported as loaded by /api/ps; tests change it to steer routing. */
  loaded: Set<string>
  /**
   * Answers that replace the handler of a path (pathname as received), for answers Ollama itself
   * would never send: what a compressing front or a broken host sends. Tests set and delete entries.
   */
  rawAnswers: Map<string, RawAnswer>
  close (): Promise<void>
}

/**
 * A raw answer: status (200 by default), headers, and a body written as given, chunk by chunk,
 * waiting for the reader (`chunks` may be a generator of megabytes: it stops when the peer leaves).
 */
export interface RawAnswer {
  status?: number
  headers?: OutgoingHttpHeaders
  chunks: Iterable<Buffer | string>
}

interface Waiter { path: string, resolve: (rec: RecordedRequest) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }

interface State {
  version: string
  active: number
  maxActive: number
  requests: RecordedRequest[]
  checks: RecordedRequest[]
  models: Map<string, S.ModelEntry>
  blobs: Map<string, number>
  loaded: Set<string>
  checkHost: boolean // Ollama checks Host only when it listens on loopback
  arrived: WeakSet<RecordedRequest> // body read, handler about to run
  awaited: WeakSet<RecordedRequest>
  closeAwaited: WeakSet<RecordedRequest>
  arrivalWaiters: Waiter[]
  closeWaiters: Waiter[]
  rawAnswers: Map<string, RawAnswer>
}

// One request/response pair plus its cancellable timers.
class Exchange {
  closed = false
  selfDestroyed = false
  controls = S.parseControls(undefined, new URLSearchParams())
  dialect: S.Dialect = 'native'
  private continued = false
  private readonly wakers = new Set<() => void>()

  constructor (readonly req: IncomingMessage, readonly res: ServerResponse, readonly rec: RecordedRequest,
    readonly state: State, private readonly expectContinue: boolean) {
    res.on('error', () => {})
    res.on('finish', () => { rec.finished = true })
    res.on('close', () => {
      this.closed = true
      if (!res.writableFinished && !this.selfDestroyed) {
        rec.closedEarly = true
        rec.closedAt = performance.now()
        notify(state.closeWaiters, state.closeAwaited, rec)
      }
      for (const wake of this.wakers) wake()
      this.wakers.clear()
    })
  }

  /** Resolves true after `ms`, or false as soon as the connection is gone. */
  sleep (ms: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false)
    return new Promise(resolve => {
      const wake = (): void => { clearTimeout(timer); resolve(false) }
      const timer = setTimeout(() => { this.wakers.delete(wake); resolve(!this.closed) }, ms)
      this.wakers.add(wake)
    })
  }

  /** Go sends `100 Continue` only when the handler starts reading the body. */
  sendContinue (): void {
    if (this.expectContinue && !this.continued) {
      this.continued = true
      this.res.writeContinue()
    }
  }
}

// ---------------------------------------------------------------- waiters

function notify (waiters: Waiter[], awaited: WeakSet<RecordedRequest>, rec: RecordedRequest): void {
  const i = waiters.findIndex(w => w.path === rec.path)
  if (i === -1) return
  const [waiter] = waiters.splice(i, 1)
  clearTimeout(waiter.timer)
  awaited.add(rec)
  waiter.resolve(rec)
}

function wait (waiters: Waiter[], awaited: WeakSet<RecordedRequest>, ready: (rec: RecordedRequest) => boolean,
  requests: RecordedRequest[], path: string, timeoutMs: number, what: string): Promise<RecordedRequest> {
  const promise = new Promise<RecordedRequest>((resolve, reject) => {
    const found = requests.find(rec => rec.path === path && ready(rec) && !awaited.has(rec))
    if (found !== undefined) {
      awaited.add(found)
      resolve(found)
      return
    }
    const waiter: Waiter = {
      path,
      resolve,
      reject,
      timer: setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1)
        reject(new Error(`fake ollama: timed out after ${timeoutMs} ms waiting for ${what} ${path}`))
      }, timeoutMs)
    }
    waiters.push(waiter)
  })
  promise.catch(() => {}) // callers that await still see the rejection
  return promise
}

// ---------------------------------------------------------------- writing responses

/** Closes the connection mid-response: already written bytes are flushed, then FIN (no clean end). */
function closeAbruptly (ex: Exchange): void {
  ex.selfDestroyed = true
  const socket = ex.req.socket
  socket.once('finish', () => socket.destroy())
  socket.end()
}

/** Writes a complete response. Honours `fail: error-midstream` (500 instead of success) and `reset-midstream`. */
function send (ex: Exchange, status: number, contentType: string | undefined, body: string | Buffer = '', headers: OutgoingHttpHeaders = {}): void {
  if (ex.closed || ex.res.headersSent) return
  const c = ex.controls
  if (c.fail === 'error-midstream' && status < 300) {
    sendError(ex, 500, c.error ?? S.MIDSTREAM_ERROR)
    return
  }
  const buf = typeof body === 'string' ? Buffer.from(body) : body
  const all: OutgoingHttpHeaders = status === 204 ? { ...headers } : { ...headers, 'content-length': buf.length }
  if (contentType !== undefined) all['content-type'] = contentType
  ex.res.writeHead(status, { ...all, ...c.headers })
  if (c.fail === 'reset-midstream' && ex.req.method !== 'HEAD') {
    const half = buf.subarray(0, Math.floor(buf.length / 2))
    if (half.length > 0) ex.res.write(half)
    else ex.res.flushHeaders()
    closeAbruptly(ex)
    return
  }
  ex.res.end(buf)
}

const sendJson = (ex: Exchange, status: number, value: unknown, contentType = S.JSON_UTF8): void =>
  send(ex, status, contentType, JSON.stringify(value))

/** Go's json.Encoder (used by Ollama's OpenAI/Anthropic writers) appends a newline. */
const sendEncoded = (ex: Exchange, status: number, value: unknown): void =>
  send(ex, status, S.JSON_PLAIN, JSON.stringify(value) + '\n')

interface ErrorOptions { middleware?: boolean, contentType?: string }

/** An error in the route's dialect. `middleware` = raised by gin AbortWithStatusJSON (charset, no newline). */
function sendError (ex: Exchange, status: number, message: string, opts: ErrorOptions = {}): void {
  const body = S.errorBody(ex.dialect, status, message)
  if (ex.dialect === 'native' || opts.middleware === true) sendJson(ex, status, body, opts.contentType ?? S.JSON_UTF8)
  else sendEncoded(ex, status, body)
}

/** A non-streamed generation: answers after the time the stream would have taken. */
async function sendGenerated (ex: Exchange, value: unknown, encoded = false): Promise<void> {
  if (!(await ex.sleep(ex.controls.delayMs * ex.controls.chunks))) return
  if (encoded) sendEncoded(ex, 200, value)
  else sendJson(ex, 200, value)
}

interface StreamOptions { errorFrame?: string, headers?: OutgoingHttpHeaders, onComplete?: () => void }

/** Writes frames one by one on timers (headers go out with the first frame, like Ollama). */
async function stream (ex: Exchange, contentType: string, frames: string[], opts: StreamOptions = {}): Promise<void> {
  if (ex.closed) return
  const c = ex.controls
  const failAt = c.fail === 'reset-midstream' || c.fail === 'error-midstream' ? Math.min(2, frames.length - 1) : -1
  ex.res.writeHead(200, { ...opts.headers, 'content-type': contentType, ...c.headers })
  for (let i = 0; i < frames.length; i++) {
    if (i > 0 && !(await ex.sleep(c.delayMs))) return
    if (i === failAt) {
      if (c.fail === 'error-midstream') {
        ex.res.end(opts.errorFrame ?? '')
      } else {
        if (i === 0) ex.res.flushHeaders()
        closeAbruptly(ex)
      }
      return
    }
    if (i === frames.length - 1) opts.onComplete?.()
    ex.res.write(frames[i])
  }
  ex.res.end()
}

/** Writes a RawAnswer, honouring backpressure; stops as soon as the connection is gone. */
async function sendRaw (ex: Exchange, answer: RawAnswer): Promise<void> {
  ex.res.writeHead(answer.status ?? 200, answer.headers ?? {})
  for (const chunk of answer.chunks) {
    if (ex.closed) return
    if (!ex.res.write(chunk)) {
      await new Promise<void>(resolve => {
        const done = (): void => { ex.res.off('drain', done); ex.res.off('close', done); resolve() }
        ex.res.once('drain', done)
        ex.res.once('close', done)
      })
    }
  }
  if (!ex.closed) ex.res.end()
}

// ---------------------------------------------------------------- request helpers

/** The JSON body as an object, or undefined after answering 400 like gin's ShouldBindJSON would. */
function body (ex: Exchange, middleware = false): Record<string, unknown> | undefined {
  const raw = ex.rec.body
  const opts = { middleware }
  if (raw.length === 0) {
    sendError(ex, 400, ex.dialect === 'native' ? 'missing request body' : 'EOF', opts)
    return undefined
  }
  const json = ex.rec.json
  if (json === undefined) {
    const first = raw.toString('utf8').trimStart()[0] ?? ''
    sendError(ex, 400, `invalid character '${first}' looking for beginning of value`, opts)
    return undefined
  }
  if (!S.isObject(json)) {
    sendError(ex, 400, `json: cannot unmarshal ${Array.isArray(json) ? 'array' : typeof json} into Go value of type map[string]interface {}`, opts)
    return undefined
  }
  return json
}

/** Known = catalogue; with test controls present any name is accepted. */
function findModel (ex: Exchange, name: string): S.ModelEntry | undefined {
  if (name === '') return undefined
  const found = ex.state.models.get(S.normalizeModelName(name))
  if (found !== undefined) return found
  return ex.controls.present ? S.makeEntry(name) : undefined
}

function genParams (ex: Exchange, model: string): S.GenParams {
  return { model, chunks: ex.controls.chunks, promptTokens: ex.controls.promptTokens, cachedTokens: ex.controls.cachedTokens }
}

function openaiParams (ex: Exchange, b: Record<string, unknown>, prefix: string): S.OpenAIParams {
  const options = b.stream_options
  return {
    ...genParams(ex, S.str(b.model)),
    id: `${prefix}-${Math.floor(Math.random() * 1000)}`,
    created: S.unixSeconds(),
    includeUsage: S.isObject(options) && options.include_usage === true
  }
}

const isUnload = (keepAlive: unknown): boolean => keepAlive === 0 || keepAlive === '0' || keepAlive === '0s'
const midstreamError = (ex: Exchange): string => ex.controls.error ?? S.MIDSTREAM_ERROR
const SSE_STREAM_HEADERS = { 'cache-control': 'no-cache', connection: 'keep-alive' }

// ---------------------------------------------------------------- native handlers

type Handler = (ex: Exchange, params: Record<string, string>) => void | Promise<void>

async function generate (ex: Exchange): Promise<void> {
  const b = body(ex)
  if (b === undefined) return
  const model = S.str(b.model)
  if (findModel(ex, model) === undefined) return sendError(ex, 404, `model '${model}' not found`)
  if (S.str(b.prompt) === '' && !Array.isArray(b.images)) {
    return sendJson(ex, 200, { model, created_at: new Date().toISOString(), response: '', done: true, done_reason: isUnload(b.keep_alive) ? 'unload' : 'load' })
  }
  const p = genParams(ex, model)
  if (b.stream === false) return sendGenerated(ex, S.generateFinal(p))
  await stream(ex, S.NDJSON, S.generateFrames(p), { errorFrame: S.ndjsonError(midstreamError(ex)) })
}

async function chat (ex: Exchange): Promise<void> {
  const b = body(ex)
  if (b === undefined) return
  const model = S.str(b.model)
  if (model === '') return sendError(ex, 400, 'model is required')
  if (findModel(ex, model) === undefined) return sendError(ex, 404, `model '${model}' not found`)
  if (!Array.isArray(b.messages) || b.messages.length === 0) {
    return sendJson(ex, 200, { model, created_at: new Date().toISOString(), message: { role: 'assistant', content: '' }, done: true, done_reason: isUnload(b.keep_alive) ? 'unload' : 'load' })
  }
  const p = genParams(ex, model)
  if (b.stream === false) return sendGenerated(ex, S.chatFinal(p))
  await stream(ex, S.NDJSON, S.chatFrames(p), { errorFrame: S.ndjsonError(midstreamError(ex)) })
}

function embedInputs (input: unknown): string[] | undefined {
  if (input === undefined || input === null || input === '') return []
  if (typeof input === 'string') return [input]
  if (Array.isArray(input) && input.every(i => typeof i === 'string')) return input
  return undefined
}

async function embed (ex: Exchange): Promise<void> {
  const b = body(ex)
  if (b === undefined) return
  const model = S.str(b.model)
  const entry = findModel(ex, model)
  if (entry === undefined) return sendError(ex, 404, `model '${model}' not found`)
  const inputs = embedInputs(b.input)
  if (inputs === undefined) return sendError(ex, 400, 'invalid input type')
  if (inputs.length === 0) return sendJson(ex, 200, { model, embeddings: [] })
  const dims = typeof b.dimensions === 'number' && b.dimensions > 0 ? b.dimensions : 16
  const m = S.metrics({ ...genParams(ex, model), chunks: 0 })
  await sendGenerated(ex, { model, embeddings: inputs.map(t => S.embeddingVector(t, dims)), total_duration: m.total_duration, load_duration: m.load_duration, prompt_eval_count: ex.controls.promptTokens })
}

async function embeddings (ex: Exchange): Promise<void> {
  const b = body(ex)
  if (b === undefined) return
  const model = S.str(b.model)
  if (model === '') return sendError(ex, 400, 'model is required')
  if (findModel(ex, model) === undefined) return sendError(ex, 404, `model "${model}" not found, try pulling it first`)
  const prompt = S.str(b.prompt)
  await sendGenerated(ex, { embedding: prompt === '' ? [] : S.embeddingVector(prompt, 16) })
}

/** pull/push/create: NDJSON progress, or (stream:false) only the last object. */
async function progress (ex: Exchange, b: Record<string, unknown>, objects: object[], onComplete: () => void): Promise<void> {
  const last = objects[objects.length - 1] as Record<string, unknown>
  if (b.stream === false) {
    if (!(await ex.sleep(ex.controls.delayMs * (objects.length - 1)))) return
    if (typeof last.error === 'string') return sendError(ex, 500, last.error, { contentType: S.JSON_PLAIN })
    onComplete()
    return sendJson(ex, 200, last, S.JSON_PLAIN)
  }
  const done = typeof last.error === 'string' ? () => {} : onComplete
  await stream(ex, S.NDJSON, S.progressFrames(objects), { errorFrame: S.ndjsonError(midstreamError(ex)), onComplete: done })
}

async function pull (ex: Exchange): Promise<void> {
  const b = body(ex)
  if (b === undefined) return
  const name = S.str(b.model) || S.str(b.name)
  if (name === '') return sendError(ex, 400, 'invalid model name')
  const missing = S.normalizeModelName(name).split(':')[0] === 'nope'
  const objects = missing ? [{ status: 'pulling manifest' }, { error: S.PULL_MISSING_ERROR }] : S.pullProgress(name, ex.controls.chunks)
  await progress(ex, b, objects, () => {
    const entry = S.makeEntry(name)
    if (!ex.state.models.has(entry.name)) ex.state.models.set(entry.name, entry)
  })
}

async function push (ex: Exchange): Promise<void> {
  const b = body(ex)
  if (b === undefined) return
  const name = S.str(b.model) || S.str(b.name)
  if (name === '') return sendError(ex, 400, 'model is required')
  if (findModel(ex, name) === undefined) {
    const n = S.normalizeModelName(name)
    const [repo, tag] = [n.slice(0, n.lastIndexOf(':')), n.slice(n.lastIndexOf(':') + 1)]
    const path = `/root/.ollama/models/manifests/registry.ollama.ai/${repo.includes('/') ? repo : 'library/' + repo}/${tag}`
    return sendError(ex, 500, `open ${path}: no such file or directory`, { contentType: S.JSON_PLAIN })
  }
  await progress(ex, b, S.pushProgress(name, ex.controls.chunks), () => {})
}

async function create (ex: Exchange): Promise<void> {
  const b = body(ex)
  if (b === undefined) return
  const name = S.str(b.model) || S.str(b.name)
  if (name === '') return sendError(ex, 400, 'invalid model name')
  const from = S.str(b.from)
  const files = S.isObject(b.files) ? Object.values(b.files).map(String) : []
  if (files.some(d => !/^sha256[:-][0-9a-fA-F]{64}$/.test(d))) return sendError(ex, 400, 'invalid digest format')
  if (from === '' && files.length === 0) {
    return sendError(ex, 400, "neither 'from' or 'files' was specified", { contentType: S.JSON_PLAIN })
  }
  const base = from === '' ? undefined : ex.state.models.get(S.normalizeModelName(from))
  await progress(ex, b, S.createProgress(name, from, files, ex.controls.chunks), () => {
    const entry = S.makeEntry(name, base)
    ex.state.models.set(entry.name, entry)
  })
}

function show (ex: Exchange): void {
  const b = body(ex)
  if (b === undefined) return
  const name = S.str(b.model) || S.str(b.name)
  if (name === '') return sendError(ex, 400, 'model is required')
  const entry = findModel(ex, name)
  if (entry === undefined) return sendError(ex, 404, `model '${name}' not found`)
  sendJson(ex, 200, S.showResponse(entry))
}

function copy (ex: Exchange): void {
  const b = body(ex)
  if (b === undefined) return
  const source = S.str(b.source)
  const destination = S.str(b.destination)
  if (source === '') return sendError(ex, 400, `source ${JSON.stringify(source)} is invalid`)
  if (destination === '') return sendError(ex, 400, `destination ${JSON.stringify(destination)} is invalid`)
  const src = ex.state.models.get(S.normalizeModelName(source))
  if (src === undefined) return sendError(ex, 404, `model ${JSON.stringify(source)} not found`)
  const entry = { ...S.makeEntry(destination, src), digest: src.digest }
  ex.state.models.set(entry.name, entry)
  send(ex, 200, undefined)
}

function remove (ex: Exchange): void {
  const b = body(ex)
  if (b === undefined) return
  const name = S.str(b.model) || S.str(b.name)
  if (name === '') return sendError(ex, 400, `name ${JSON.stringify(name)} is invalid`)
  if (!ex.state.models.delete(S.normalizeModelName(name))) return sendError(ex, 404, `model '${name}' not found`)
  send(ex, 200, undefined)
}

// ---------------------------------------------------------------- blobs

const DIGEST = /^sha256[:-][0-9a-fA-F]{64}$/
const blobKey = (digest: string): string => 'sha256:' + digest.slice(7)

function headBlob (ex: Exchange, params: Record<string, string>): void {
  const digest = params.digest
  if (!DIGEST.test(digest)) return sendError(ex, 400, 'invalid digest format')
  if (!ex.state.blobs.has(blobKey(digest))) return sendError(ex, 404, `blob ${JSON.stringify(digest)} not found`)
  send(ex, 200, undefined)
}

/** Streams the upload through sha256 without keeping any of it (multi-GB safe). */
function createBlob (ex: Exchange, params: Record<string, string>): void {
  const { req, res, rec, state } = ex
  const digest = params.digest
  if (!DIGEST.test(digest)) return sendError(ex, 400, 'invalid digest format')
  if (state.blobs.has(blobKey(digest))) {
    // Already present: answer without reading the body; like Go's net/http, give up the
    // connection when the unread remainder is large.
    if (!req.complete) res.setHeader('connection', 'close')
    res.on('finish', () => {
      if (!req.complete) setTimeout(() => req.socket.destroy(), 200).unref()
    })
    return send(ex, 200, undefined)
  }
  ex.sendContinue()
  const hash = createHash('sha256')
  req.on('data', (chunk: Buffer) => {
    hash.update(chunk)
    rec.bodyBytes += chunk.length
  })
  req.on('end', () => {
    const got = 'sha256:' + hash.digest('hex')
    if (got !== digest) return sendError(ex, 400, `digest mismatch, expected ${JSON.stringify(digest)}, got ${JSON.stringify(got)}`)
    state.blobs.set(blobKey(digest), rec.bodyBytes)
    send(ex, 201, undefined)
  })
}

// ---------------------------------------------------------------- OpenAI handlers

async function chatCompletions (ex: Exchange): Promise<void> {
  const b = body(ex, true)
  if (b === undefined) return
  if (!Array.isArray(b.messages) || b.messages.length === 0) return sendError(ex, 400, "[] is too short - 'messages'", { middleware: true })
  const model = S.str(b.model)
  if (model === '') return sendError(ex, 400, 'model is required')
  if (findModel(ex, model) === undefined) return sendError(ex, 404, `model '${model}' not found`)
  const p = openaiParams(ex, b, 'chatcmpl')
  if (b.stream !== true) return sendGenerated(ex, S.openaiChatCompletion(p), true)
  await stream(ex, S.SSE, S.openaiChatFrames(p), { errorFrame: S.openaiChatErrorFrame(p) })
}

async function completions (ex: Exchange): Promise<void> {
  const b = body(ex, true)
  if (b === undefined) return
  if (b.prompt !== undefined && typeof b.prompt !== 'string') {
    return sendError(ex, 400, 'json: cannot unmarshal array into Go struct field CompletionRequest.prompt of type string', { middleware: true })
  }
  const model = S.str(b.model)
  if (findModel(ex, model) === undefined) return sendError(ex, 404, `model '${model}' not found`)
  const p = openaiParams(ex, b, 'cmpl')
  if (b.stream !== true) return sendGenerated(ex, S.openaiCompletion(p), true)
  await stream(ex, S.SSE, S.openaiCompletionFrames(p), { errorFrame: S.openaiCompletionErrorFrame(p) })
}

async function openaiEmbeddings (ex: Exchange): Promise<void> {
  const b = body(ex, true)
  if (b === undefined) return
  const inputs = embedInputs(b.input)
  if (b.input === undefined || b.input === null || inputs === undefined || inputs.length === 0) {
    return sendError(ex, 400, 'invalid input', { middleware: true })
  }
  const format = S.str(b.encoding_format)
  if (format !== '' && format !== 'float' && format !== 'base64') {
    return sendError(ex, 400, `Invalid value for 'encoding_format' = ${format}. Supported values: ['float', 'base64'].`, { middleware: true })
  }
  const model = S.str(b.model)
  if (findModel(ex, model) === undefined) return sendError(ex, 404, `model '${model}' not found`)
  const dims = typeof b.dimensions === 'number' && b.dimensions > 0 ? b.dimensions : 16
  const data = inputs.map((text, index) => {
    const vector = S.embeddingVector(text, dims)
    return { object: 'embedding', embedding: format === 'base64' ? S.float32Base64(vector) : vector, index }
  })
  const tokens = ex.controls.promptTokens
  await sendGenerated(ex, { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } }, true)
}

function listV1Models (ex: Exchange): void {
  const data = [...ex.state.models.values()].map(e => ({ id: e.name, object: 'model', created: S.unixSeconds(e.modifiedAt), owned_by: S.namespaceOf(e.name) }))
  sendEncoded(ex, 200, { object: 'list', data: data.length === 0 ? null : data })
}

function retrieveV1Model (ex: Exchange, params: Record<string, string>): void {
  const entry = findModel(ex, params.model)
  if (entry === undefined) return sendError(ex, 404, `model '${params.model}' not found`)
  sendEncoded(ex, 200, { id: params.model, object: 'model', created: S.unixSeconds(entry.modifiedAt), owned_by: S.namespaceOf(params.model) })
}

async function responses (ex: Exchange): Promise<void> {
  const b = body(ex, true)
  if (b === undefined) return
  const model = S.str(b.model)
  if (model === '') return sendError(ex, 400, 'model is required')
  if (findModel(ex, model) === undefined) return sendError(ex, 404, `model '${model}' not found`)
  const p: S.ResponsesParams = { ...genParams(ex, model), responseId: `resp_${Math.floor(Math.random() * 999999)}`, itemId: `msg_${Math.floor(Math.random() * 999999)}`, request: b }
  if (b.stream !== true) return sendGenerated(ex, S.responsesResponse(p), true)
  await stream(ex, S.SSE, S.responsesFrames(p), { headers: SSE_STREAM_HEADERS })
}

/** multipart/form-data: only the boundary and the model/file/response_format parts are looked at. */
async function transcriptions (ex: Exchange): Promise<void> {
  const type = ex.req.headers['content-type'] ?? ''
  const boundary = /^multipart\/form-data;.*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type)
  if (boundary === null) return sendError(ex, 400, "failed to parse multipart form: request Content-Type isn't multipart/form-data", { middleware: true })
  const text = ex.rec.body.toString('latin1')
  if (!text.includes('--' + (boundary[1] ?? boundary[2]))) return sendError(ex, 400, 'failed to parse multipart form: multipart: NextPart: EOF', { middleware: true })
  const field = (name: string): string | undefined => new RegExp(`name="${name}"(?:; filename="[^"]*")?\\r\\n(?:[^\\r\\n]+\\r\\n)*\\r\\n([^\\r\\n]*)`).exec(text)?.[1]
  // Go's FormValue: URL query values come before the form's (net/http ParseMultipartForm).
  const fromQuery = new URL(ex.req.url ?? '/', 'http://fake').searchParams.getAll('model')
  const model = fromQuery.length > 0 ? fromQuery[0] : field('model') ?? ''
  if (model === '') return sendError(ex, 400, 'model is required', { middleware: true })
  if (!/name="file"/.test(text)) return sendError(ex, 400, 'file is required: http: no such file', { middleware: true })
  if (findModel(ex, model) === undefined) return sendError(ex, 404, `model '${model}' not found`)
  if (!(await ex.sleep(ex.controls.delayMs * ex.controls.chunks))) return
  if (field('response_format') === 'text') return send(ex, 200, S.TEXT_GIN, 'hello world')
  sendEncoded(ex, 200, { text: 'hello world' })
}

// ---------------------------------------------------------------- Anthropic handler

async function messages (ex: Exchange): Promise<void> {
  const b = body(ex, true)
  if (b === undefined) return
  const model = S.str(b.model)
  if (model === '') return sendError(ex, 400, 'model is required', { middleware: true })
  if (typeof b.max_tokens !== 'number' || b.max_tokens <= 0) return sendError(ex, 400, 'max_tokens is required and must be positive', { middleware: true })
  if (!Array.isArray(b.messages) || b.messages.length === 0) return sendError(ex, 400, 'messages is required', { middleware: true })
  if (findModel(ex, model) === undefined) return sendError(ex, 404, `model '${model}' not found`)
  const p: S.AnthropicParams = { ...genParams(ex, model), id: S.randomId('msg') }
  if (b.stream !== true) return sendGenerated(ex, S.anthropicMessage(p), true)
  await stream(ex, S.SSE, S.anthropicFrames(p), { headers: SSE_STREAM_HEADERS })
}

// ---------------------------------------------------------------- account / experimental

function webSearch (ex: Exchange): void {
  const b = body(ex)
  if (b === undefined) return
  const query = S.str(b.query)
  if (query === '') return sendError(ex, 400, 'query is required')
  const max = typeof b.max_results === 'number' && b.max_results > 0 ? Math.min(b.max_results, 10) : 5
  sendJson(ex, 200, S.webSearchResults(query, max))
}

function webFetch (ex: Exchange): void {
  const b = body(ex)
  if (b === undefined) return
  const url = S.str(b.url)
  if (url === '') return sendError(ex, 400, 'url is required')
  sendJson(ex, 200, S.webFetchResult(url))
}

const signout: Handler = ex => sendJson(ex, 200, null)

// ---------------------------------------------------------------- routing

interface Route { method: string, pattern: string, handler: Handler, dialect?: S.Dialect, rawBody?: boolean }

const ROUTES: Route[] = [
  { method: 'HEAD', pattern: '/', handler: ex => send(ex, 200, S.TEXT_UTF8, 'Ollama is running') },
  { method: 'GET', pattern: '/', handler: ex => send(ex, 200, S.TEXT_UTF8, 'Ollama is running') },
  { method: 'HEAD', pattern: '/api/version', handler: ex => sendJson(ex, 200, { version: ex.state.version }) },
  { method: 'GET', pattern: '/api/version', handler: ex => sendJson(ex, 200, { version: ex.state.version }) },
  { method: 'GET', pattern: '/api/status', handler: ex => sendJson(ex, 200, { cloud: { disabled: false, source: 'none' } }) },
  { method: 'POST', pattern: '/api/pull', handler: pull },
  { method: 'POST', pattern: '/api/push', handler: push },
  { method: 'HEAD', pattern: '/api/tags', handler: ex => sendJson(ex, 200, { models: [...ex.state.models.values()].map(S.listModel) }) },
  { method: 'GET', pattern: '/api/tags', handler: ex => sendJson(ex, 200, { models: [...ex.state.models.values()].map(S.listModel) }) },
  { method: 'POST', pattern: '/api/show', handler: show },
  { method: 'DELETE', pattern: '/api/delete', handler: remove },
  { method: 'POST', pattern: '/api/me', handler: ex => sendJson(ex, 401, { error: 'unauthorized', signin_url: S.signinUrl(hostname()) }) },
  { method: 'POST', pattern: '/api/signout', handler: signout },
  { method: 'DELETE', pattern: '/api/user/keys/:encodedKey', handler: signout },
  { method: 'POST', pattern: '/api/create', handler: create },
  { method: 'POST', pattern: '/api/blobs/:digest', handler: createBlob, rawBody: true },
  { method: 'HEAD', pattern: '/api/blobs/:digest', handler: headBlob },
  { method: 'POST', pattern: '/api/copy', handler: copy },
  { method: 'POST', pattern: '/api/experimental/web_search', handler: webSearch },
  { method: 'POST', pattern: '/api/experimental/web_fetch', handler: webFetch },
  { method: 'GET', pattern: '/api/experimental/model-recommendations', handler: ex => sendJson(ex, 200, S.MODEL_RECOMMENDATIONS) },
  { method: 'GET', pattern: '/api/ps', handler: ex => sendJson(ex, 200, { models: [...ex.state.loaded].flatMap(n => ex.state.models.get(n) ?? []).map(S.psModel) }) },
  { method: 'POST', pattern: '/api/generate', handler: generate },
  { method: 'POST', pattern: '/api/chat', handler: chat },
  { method: 'POST', pattern: '/api/embed', handler: embed },
  { method: 'POST', pattern: '/api/embeddings', handler: embeddings },
  { method: 'POST', pattern: '/v1/chat/completions', handler: chatCompletions, dialect: 'openai' },
  { method: 'POST', pattern: '/v1/completions', handler: completions, dialect: 'openai' },
  { method: 'POST', pattern: '/v1/embeddings', handler: openaiEmbeddings, dialect: 'openai' },
  { method: 'GET', pattern: '/v1/models', handler: listV1Models, dialect: 'openai' },
  { method: 'GET', pattern: '/v1/models/:model', handler: retrieveV1Model, dialect: 'openai' },
  { method: 'POST', pattern: '/v1/responses', handler: responses, dialect: 'openai' },
  { method: 'POST', pattern: '/v1/audio/transcriptions', handler: transcriptions, dialect: 'openai' },
  { method: 'POST', pattern: '/v1/messages', handler: messages, dialect: 'anthropic' }
]

function matchPattern (pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/')
  const got = path.split('/')
  if (want.length !== got.length) return undefined
  const params: Record<string, string> = {}
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(':') && got[i] !== '') params[want[i].slice(1)] = got[i]
    else if (want[i] !== got[i]) return undefined
  }
  return params
}

type Match = { kind: 'route', route: Route, params: Record<string, string> } | { kind: 'redirect', location: string } | { kind: 'status', status: 404 | 405 }

/** gin: exact match, else trailing-slash redirect, else 405 if another method matches, else 404. */
function findRoute (method: string, path: string, query: string): Match {
  const candidates = ROUTES.flatMap(route => {
    const params = matchPattern(route.pattern, path)
    return params === undefined ? [] : [{ route, params }]
  })
  const hit = candidates.find(c => c.route.method === method)
  if (hit !== undefined) return { kind: 'route', ...hit }
  const alt = path.endsWith('/') ? path.slice(0, -1) : path + '/'
  if (path !== '/' && ROUTES.some(r => r.method === method && matchPattern(r.pattern, alt) !== undefined)) {
    return { kind: 'redirect', location: alt + query }
  }
  return { kind: 'status', status: candidates.length > 0 ? 405 : 404 }
}

// ---------------------------------------------------------------- CORS and Host checks (gin-contrib/cors, allowedHostsMiddleware)

const ALLOWED_ORIGINS = ['localhost', '127.0.0.1', '0.0.0.0'].flatMap(h => [`http://${h}`, `https://${h}`, `http://${h}:*`, `https://${h}:*`])
  .concat(['app://*', 'file://*', 'tauri://*', 'vscode-webview://*', 'vscode-file://*'])
const CORS_ALLOW_HEADERS = 'Authorization,Content-Type,User-Agent,Accept,X-Requested-With,Openai-Beta,X-Stainless-Arch,X-Stainless-Async,' +
  'X-Stainless-Custom-Poll-Interval,X-Stainless-Helper-Method,X-Stainless-Lang,X-Stainless-Os,X-Stainless-Package-Version,' +
  'X-Stainless-Poll-Helper,X-Stainless-Retry-Count,X-Stainless-Runtime,X-Stainless-Runtime-Version,X-Stainless-Timeout'

function originAllowed (origin: string): boolean {
  return ALLOWED_ORIGINS.some(pattern => {
    const star = pattern.indexOf('*')
    if (star === -1) return origin === pattern
    return origin.startsWith(pattern.slice(0, star)) && origin.endsWith(pattern.slice(star + 1)) && origin.length > pattern.length - 1
  })
}

function localIp (ip: string): boolean {
  if (ip === '::1' || ip === '::' || ip === '0.0.0.0' || ip.startsWith('127.')) return true
  const v4 = ip.split('.').map(Number)
  if (isIP(ip) === 4 && (v4[0] === 10 || (v4[0] === 172 && v4[1] >= 16 && v4[1] < 32) || (v4[0] === 192 && v4[1] === 168))) return true
  if (isIP(ip) === 6 && /^f[cd]/i.test(ip)) return true
  return Object.values(networkInterfaces()).some(list => list?.some(a => a.address === ip) === true)
}

function hostAllowed (host: string): boolean {
  const h = host.toLowerCase()
  return h === '' || h === 'localhost' || h === hostname().toLowerCase() || ['.localhost', '.local', '.internal'].some(tld => h.endsWith(tld))
}

/** Returns false when the request was answered (403 / preflight 204). */
function corsAndHost (ex: Exchange): boolean {
  const { req, res } = ex
  const origin = req.headers.origin
  const hostHeader = req.headers.host ?? ''
  if (origin !== undefined && origin !== `http://${hostHeader}` && origin !== `https://${hostHeader}`) {
    if (!originAllowed(origin)) {
      send(ex, 403, undefined)
      return false
    }
    res.setHeader('access-control-allow-origin', origin)
    if (req.method === 'OPTIONS') {
      res.setHeader('access-control-allow-methods', 'GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS')
      res.setHeader('access-control-allow-headers', CORS_ALLOW_HEADERS)
      res.setHeader('access-control-max-age', '43200')
      res.setHeader('vary', ['Origin', 'Access-Control-Request-Method', 'Access-Control-Request-Headers'])
      send(ex, 204, undefined)
      return false
    }
    res.setHeader('vary', 'Origin')
  }
  if (!ex.state.checkHost) return true
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader)
  const host = bracket !== null ? bracket[1] : hostHeader.replace(/:\d+$/, '')
  if (isIP(host) !== 0 && localIp(host)) return true
  if (hostAllowed(host)) {
    if (req.method !== 'OPTIONS') return true
    send(ex, 204, undefined)
    return false
  }
  send(ex, 403, undefined)
  return false
}

// ---------------------------------------------------------------- request entry point

function readBody (ex: Exchange): Promise<Buffer> {
  ex.sendContinue()
  return new Promise(resolve => {
    const parts: Buffer[] = []
    const done = (): void => resolve(Buffer.concat(parts))
    ex.req.on('data', (chunk: Buffer) => {
      parts.push(chunk)
      ex.rec.bodyBytes += chunk.length
    })
    ex.req.on('end', done)
    ex.req.on('close', done)
    ex.req.on('error', done)
  })
}

function safeDecode (path: string): string {
  try {
    return decodeURIComponent(path)
  } catch {
    return path
  }
}

async function handle (state: State, req: IncomingMessage, res: ServerResponse, expectContinue: boolean): Promise<void> {
  const url = req.url ?? '/'
  const q = url.indexOf('?')
  const rec: RecordedRequest = {
    method: req.method ?? 'GET',
    path: q === -1 ? url : url.slice(0, q),
    query: q === -1 ? '' : url.slice(q),
    headers: req.headers,
    body: Buffer.alloc(0),
    bodyBytes: 0,
    receivedAt: performance.now(),
    finished: false,
    closedEarly: false
  }
  // The proxy's own health checks and model-list refreshes say who they are: kept apart, so tests
  // count what clients caused.
  if (String(req.headers['user-agent'] ?? '').startsWith(PROXY_CHECK_AGENT)) {
    state.checks.push(rec)
  } else {
    state.requests.push(rec)
    // How many client requests Ollama works on at once: what a slot cap must bound.
    state.active++
    state.maxActive = Math.max(state.maxActive, state.active)
    res.once('close', () => { state.active-- })
  }
  const ex = new Exchange(req, res, rec, state, expectContinue)
  const match = findRoute(rec.method, safeDecode(rec.path), rec.query)

  if (match.kind !== 'route' || match.route.rawBody !== true) {
    rec.body = await readBody(ex)
    if (rec.body.length > 0) {
      try {
        rec.json = JSON.parse(rec.body.toString('utf8'))
      } catch {}
    }
  }
  state.arrived.add(rec)
  notify(state.arrivalWaiters, state.awaited, rec)
  if (ex.closed || !corsAndHost(ex)) return

  if (match.kind === 'redirect') {
    const html = rec.method === 'GET' ? `<a href="${match.location}">Moved Permanently</a>.\n\n` : ''
    return send(ex, rec.method === 'GET' ? 301 : 307, html === '' ? undefined : 'text/html; charset=utf-8', html, { location: match.location })
  }
  if (match.kind === 'status') {
    return send(ex, match.status, S.TEXT_GIN, match.status === 404 ? '404 page not found' : '405 method not allowed')
  }

  const raw = state.rawAnswers.get(rec.path)
  if (raw !== undefined) return await sendRaw(ex, raw)

  ex.dialect = match.route.dialect ?? 'native'
  const c = ex.controls = S.parseControls(rec.json, new URLSearchParams(rec.query))
  if (c.firstByteDelayMs > 0 && !(await ex.sleep(c.firstByteDelayMs))) return
  if (c.fail === 'reset-before-headers') {
    ex.selfDestroyed = true
    req.socket.destroy()
    return
  }
  if (c.fail === 'hang') {
    req.resume()
    return
  }
  if (c.status !== undefined) {
    const message = c.error ?? (c.status === 503 ? S.BUSY_ERROR : `fake error ${c.status}`)
    return sendError(ex, c.status, message)
  }
  await match.route.handler(ex, match.params)
}

export async function startFakeOllama (options: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const host = options.host ?? '127.0.0.1'
  const state: State = {
    version: options.version ?? '0.33.0',
    active: 0,
    maxActive: 0,
    requests: [],
    checks: [],
    models: S.initialCatalogue(),
    blobs: new Map(),
    loaded: new Set(S.LOADED_MODELS),
    checkHost: host === 'localhost' || host === '::1' || host.startsWith('127.'),
    arrived: new WeakSet(),
    awaited: new WeakSet(),
    closeAwaited: new WeakSet(),
    arrivalWaiters: [],
    closeWaiters: [],
    rawAnswers: new Map()
  }
  const sockets = new Set<Socket>()
  const onRequest = (expectContinue: boolean) => (req: IncomingMessage, res: ServerResponse): void => {
    handle(state, req, res, expectContinue).catch(() => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': S.JSON_UTF8 })
        res.end(JSON.stringify({ error: 'fake ollama: internal error' }))
      } else {
        res.destroy()
      }
    })
  }
  // Ollama has no server timeouts and keeps idle connections open.
  const server = createServer({ requestTimeout: 0, keepAliveTimeout: 0 }, onRequest(false))
  server.keepAliveTimeout = 0
  server.on('checkContinue', onRequest(true))
  server.on('connection', socket => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  const urlHost = isIP(host) === 6 ? `[${host}]` : host

  return {
    url: `http://${urlHost}:${port}`,
    port,
    requests: state.requests,
    checks: state.checks,
    get maxActive () { return state.maxActive },
    blobs: state.blobs,
    loaded: state.loaded,
    rawAnswers: state.rawAnswers,
    count: (path, method) => state.requests.filter(r => r.path === path && (method === undefined || r.method === method)).length,
    last: path => state.requests.findLast(r => path === undefined || r.path === path),
    reset: () => { state.requests.length = 0 },
    waitForRequest: (path, timeoutMs = 45_000) =>
      wait(state.arrivalWaiters, state.awaited, r => state.arrived.has(r), state.requests, path, timeoutMs, 'a request to'),
    waitForEarlyClose: (path, timeoutMs = 45_000) =>
      wait(state.closeWaiters, state.closeAwaited, r => r.closedEarly, state.requests, path, timeoutMs, 'an early close of'),
    close: async () => {
      for (const waiter of [...state.arrivalWaiters, ...state.closeWaiters]) {
        clearTimeout(waiter.timer)
        waiter.reject(new Error('fake ollama closed'))
      }
      state.arrivalWaiters.length = 0
      state.closeWaiters.length = 0
      const closed = new Promise<void>(resolve => server.close(() => resolve()))
      for (const socket of sockets) socket.destroy()
      await closed
    }
  }
}
