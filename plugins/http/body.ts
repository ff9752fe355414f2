import { Transform, type TransformCallback } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ProxyError } from './error-shapes.js'
import { parseJsonBody } from './json-body.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's body bytes exactly as sent; forwarded instead of a re-serialised copy. */
    rawBody?: Buffer
  }
}

/**
 * JSON routes accept any Content-Type (curl -d sends form-urlencoded; Ollama ignores the
 * label) and keep the original bytes so Ollama receives exactly what the client sent.
 */
export function acceptJsonBodies (instance: FastifyInstance, bodyLimit: number): void {
  instance.removeAllContentTypeParsers()
  instance.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (request: FastifyRequest, body: Buffer, done) => {
    if (body.length === 0) {
      done(null, undefined)
      return
    }
    const parsed = parseJsonBody(body, request.routeOptions.config.goStruct)
    if (!parsed.ok) {
      done(new ProxyError(400, parsed.message), undefined)
      return
    }
    request.rawBody = body
    done(null, parsed.value)
  })
}

/**
 * Raw routes (blob uploads, multipart audio) hand the request stream to the upstream as it
 * arrives: nothing parsed, nothing buffered, memory flat whatever the size.
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
