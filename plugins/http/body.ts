import { Transform, type Readable, type TransformCallback } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { readBody } from './body-reader.js'
import { bytesToCheck } from './content-encoding.js'
import { ProxyError } from './error-shapes.js'
import { isUtf8 } from 'node:buffer'
import { jsonShapeProblem, parseJsonBody } from './json-body.js'
import { multipartModels } from './multipart-model.js'

/** What the later stages read of a multipart body: the models it names (the bytes are on the exchange). */
export interface MultipartView {
  /** Values named `model` (query first, as Ollama reads them); see multipart-model.ts. */
  formModels: string[]
}

/**
 * Stage 4, the body, for JSON routes. Any Content-Type is accepted (curl -d sends
 * form-urlencoded; Ollama ignores the label) and the original bytes are kept on the exchange so
 * Ollama receives exactly what the client sent. The body is read once, under `bodyLimit`,
 * `server.body_timeout` and the in-flight budget; what Fastify validates and the later stages
 * read is the Go view of it (plugins/http/json-body.ts). A zstd body is decoded only for the
 * checks, on the routes where Ollama decodes it (route table `decodes`).
 */
export function acceptJsonBodies (instance: FastifyInstance, bodyLimit: number): void {
  const { bodyTimeoutMs } = instance.config.server
  instance.removeAllContentTypeParsers()
  instance.addContentTypeParser('*', async function readJson (request: FastifyRequest, payload: Readable) {
    const exchange = request.exchange
    const body = await readBody(request.headers, exchange, payload, { limit: bodyLimit, timeoutMs: bodyTimeoutMs, budget: instance.bodyBudget, what: 'request body' })
    if (body.length === 0) return undefined
    const route = exchange.route!
    const decodes = route.decodes ?? []
    // The routes that decode zstd are those behind Ollama's cloud passthrough, which also reads `model` by its exact key.
    const parsed = parseJsonBody(bytesToCheck(request.raw, body, decodes, bodyLimit), route.goStruct, decodes.length > 0)
    if (!parsed.ok) throw new ProxyError(400, parsed.message)
    exchange.body = body
    return parsed.value
  })
}

/**
 * Multipart uploads a generate key may send (/v1/audio/transcriptions): buffered under
 * `server.transcription_limit` to read the model the way Ollama does; the original bytes are kept
 * on the exchange and forwarded unchanged (headers, boundary and all).
 */
export function acceptMultipartBodies (instance: FastifyInstance): void {
  const { transcriptionLimit, bodyTimeoutMs } = instance.config.server
  instance.removeAllContentTypeParsers()
  instance.addContentTypeParser('*', async function readMultipart (request: FastifyRequest, payload: Readable) {
    const exchange = request.exchange
    const body = await readBody(request.headers, exchange, payload, { limit: transcriptionLimit, timeoutMs: bodyTimeoutMs, budget: instance.bodyBudget, what: 'transcription upload' })
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : ''
    const view: MultipartView = { formModels: await multipartModels(body, request.headers['content-type'], query) }
    exchange.body = body
    return view
  })
}

/**
 * Raw routes (blob uploads) hand the request stream to the upstream as it arrives: nothing
 * parsed, nothing buffered, memory flat whatever the size.
 */
export function acceptRawBodies (instance: FastifyInstance, uploadLimit: number | null): void {
  instance.removeAllContentTypeParsers()
  instance.addContentTypeParser('*', (request, payload, done) => {
    if (uploadLimit === null) {
      done(null, payload)
      return
    }
    const declared = Number(request.headers['content-length'])
    if (declared > uploadLimit) {
      done(new ProxyError(413, `upload is larger than the configured limit of ${uploadLimit} bytes`), undefined)
      return
    }
    done(null, payload.pipe(new ByteLimit(uploadLimit)))
  })
}

class ByteLimit extends Transform {
  private seen = 0
  constructor (private readonly limit: number) { super() }
  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length
    if (this.seen > this.limit) {
      callback(new ProxyError(413, `upload is larger than the configured limit of ${this.limit} bytes`))
      return
    }
    callback(null, chunk)
  }
}

/** Bytes of a JSON body on the proxy's own API (a key's settings). */
export const API_BODY_LIMIT = 64 * 1024

const JSON_MEDIA_TYPE = /^\s*application\/json\s*(;|$)/i

/**
 * The proxy's own JSON API (/proxy/*): a small body read under `API_BODY_LIMIT`,
 * `server.body_timeout` and the in-flight budget, parsed as plain JSON (no Go view: nothing is
 * forwarded). An empty body is an empty object. A Content-Type other than application/json is
 * refused unread: an HTML form on another site (the only cross-site POST a browser sends without
 * asking) can then never change keys, whatever credentials the browser holds for the proxy.
 * @throws ProxyError 415 (not JSON), 400 (not UTF-8, not JSON, not an object), 413, 408, 503 as readBody
 */
export function acceptApiBodies (instance: FastifyInstance): void {
  const { bodyTimeoutMs } = instance.config.server
  instance.removeAllContentTypeParsers()
  instance.addContentTypeParser('*', async function readApiJson (request: FastifyRequest, payload: Readable) {
    const type = request.headers['content-type']
    if (type !== undefined && !JSON_MEDIA_TYPE.test(type)) throw new ProxyError(415, `the proxy's API takes Content-Type: application/json, not ${JSON.stringify(type.slice(0, 100))}`)
    const body = await readBody(request.headers, request.exchange, payload, { limit: API_BODY_LIMIT, timeoutMs: bodyTimeoutMs, budget: instance.bodyBudget, what: 'request body' })
    if (body.length === 0) return {}
    const problem = jsonShapeProblem(body)
    if (problem !== null || !isUtf8(body)) throw new ProxyError(400, `invalid JSON body: ${problem ?? 'not UTF-8'}`)
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch (err) {
      throw new ProxyError(400, `invalid JSON body: ${(err as Error).message}`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ProxyError(400, 'the body must be a JSON object')
    return parsed
  })
  // Fastify runs no parser for a request without Content-Type and body (`curl -X POST`).
  instance.addHook('preValidation', function emptyBodyIsEmptyObject (request, _reply, done) {
    if (request.body === undefined && request.method !== 'GET' && request.method !== 'DELETE') request.body = {}
    done()
  })
}
