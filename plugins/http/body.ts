import { Readable, Transform, type TransformCallback } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { readBody } from './body-reader.js'
import { bytesToCheck } from './content-encoding.js'
import { ProxyError } from './error-shapes.js'
import { parseJsonBody } from './json-body.js'
import { multipartModels } from './multipart-model.js'
import { routeConfigOf } from './per-request.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's body bytes exactly as sent (still compressed if they were); forwarded as they are. */
    rawBody?: Buffer
  }
}

/** A multipart body read for its model: the original bytes, streamed on, and the models it names. */
export interface MultipartBody extends Readable {
  /** Values named `model` (query first, as Ollama reads them); see multipart-model.ts. */
  formModels: string[]
}

/**
 * JSON routes accept any Content-Type (curl -d sends form-urlencoded; Ollama ignores the
 * label) and keep the original bytes so Ollama receives exactly what the client sent. The body is
 * read once, under `bodyLimit`, `server.body_timeout` and the in-flight budget; a zstd body is
 * decoded only for the checks where Ollama decodes it (route table `decodes`).
 */
export function acceptJsonBodies (instance: FastifyInstance, bodyLimit: number): void {
  const { bodyTimeoutMs } = instance.config.server
  instance.removeAllContentTypeParsers()
  instance.addContentTypeParser('*', async function readJson (request: FastifyRequest, payload: Readable) {
    const body = await readBody(request, replyOf(request), payload, { limit: bodyLimit, timeoutMs: bodyTimeoutMs, budget: instance.bodyBudget, what: 'request body' })
    if (body.length === 0) return undefined
    const config = routeConfigOf(request)
    const decodes = config.spec?.decodes ?? []
    // The routes that decode zstd are those behind Ollama's cloud passthrough, which also reads `model` by its exact key.
    const parsed = parseJsonBody(bytesToCheck(request.raw, body, decodes, bodyLimit), config.goStruct, decodes.length > 0)
    if (!parsed.ok) throw new ProxyError(400, parsed.message)
    request.rawBody = body
    return parsed.value
  })
}

/**
 * Multipart uploads a generate key may send (/v1/audio/transcriptions): buffered under
 * `server.transcription_limit` to read the model the way Ollama does, then the original bytes are
 * streamed on unchanged (headers, boundary and all).
 */
export function acceptMultipartBodies (instance: FastifyInstance): void {
  const { transcriptionLimit, bodyTimeoutMs } = instance.config.server
  instance.removeAllContentTypeParsers()
  instance.addContentTypeParser('*', async function readMultipart (request: FastifyRequest, payload: Readable) {
    const body = await readBody(request, replyOf(request), payload, { limit: transcriptionLimit, timeoutMs: bodyTimeoutMs, budget: instance.bodyBudget, what: 'transcription upload' })
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : ''
    const models = await multipartModels(body, request.headers['content-type'], query)
    return Object.assign(Readable.from([body]), { formModels: models }) satisfies MultipartBody
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

const kReply = Symbol('reply')

/** The reply of a request, recorded by the admission plugin's onRequest hook. */
export function replyOf (request: FastifyRequest): FastifyReply {
  return (request as FastifyRequest & { [kReply]: FastifyReply })[kReply]
}

export function rememberReply (request: FastifyRequest, reply: FastifyReply): void {
  (request as FastifyRequest & { [kReply]?: FastifyReply })[kReply] = reply
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
