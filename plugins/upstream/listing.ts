import type { FastifyReply, FastifyRequest } from 'fastify'
import { sendError } from '../http/error-shapes.js'
import { filterListing, type Listing } from '../auth/model-fields.js'
import type { ModelPattern } from '../auth/model-names.js'
import type { UpstreamResponse } from './upstream.js'
import { assertIdentityEncoding, discard, MAX_ANSWER_BYTES, MAX_LISTING_BYTES, readBounded } from './bounded-read.js'
import { isListing } from './fan-out.js'

/**
 * For keys with a model allowlist, /api/tags, /api/ps and /v1/models are read whole (at most
 * MAX_LISTING_BYTES), filtered to the models the key may use, and sent with a recomputed
 * Content-Length. Fails closed: an answer the proxy cannot read (compressed although `identity`
 * was asked for, too large, not JSON, without its list of models) is a 502, never passed on
 * unfiltered. Ollama's error answers (status >= 300) pass through, up to MAX_ANSWER_BYTES.
 */
export function filteredListing (kind: Listing, allowlist: readonly ModelPattern[]) {
  return function onListing (request: FastifyRequest, reply: FastifyReply, response: UpstreamResponse): void {
    const stream = response.stream as NodeJS.ReadableStream & { destroy: (err?: Error) => void }
    const refuse = (reason: string) => {
      request.log.warn({ reason }, 'could not read a model listing')
      discard(stream)
      reply.removeHeader('content-length')
      reply.removeHeader('content-encoding')
      sendError(request, reply, 502, `Ollama sent a model listing the proxy cannot read: ${reason}`)
    }
    const failed = response.statusCode >= 300
    try {
      assertIdentityEncoding(response.headers, 'the listing')
    } catch (err) {
      if (!failed) {
        refuse((err as Error).message)
        return
      }
    }
    readBounded(stream, failed ? MAX_ANSWER_BYTES : MAX_LISTING_BYTES, 'the listing').then(raw => {
      reply.removeHeader('content-length')
      if (failed) {
        reply.send(raw)
        return
      }
      let document: unknown
      try {
        document = JSON.parse(raw.toString('utf8'))
      } catch {
        refuse('the listing is not JSON')
        return
      }
      if (!isListing(kind, document)) {
        refuse('the listing has no list of models')
        return
      }
      reply.header('content-type', 'application/json; charset=utf-8')
      reply.send(JSON.stringify(filterListing(kind, document, allowlist)))
    }, (err: Error) => { refuse(err.message) })
  }
}
