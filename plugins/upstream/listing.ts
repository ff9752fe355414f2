import type { FastifyReply, FastifyRequest } from 'fastify'
import { sendError } from '../http/error-shapes.js'
import { filterListing, type Listing } from '../auth/model-fields.js'
import type { ModelPattern } from '../auth/model-names.js'
import type { UpstreamResponse } from './upstream.js'

/** Listings are small documents; a larger answer is refused rather than passed on unfiltered. */
const MAX_LISTING_BYTES = 32 * 1024 * 1024

/**
 * For keys with a model allowlist, /api/tags, /api/ps and /v1/models are read whole, filtered
 * to the models the key may use, and sent with a recomputed Content-Length.
 */
export function filteredListing (kind: Listing, allowlist: readonly ModelPattern[]) {
  return function onListing (request: FastifyRequest, reply: FastifyReply, response: UpstreamResponse): void {
    const chunks: Buffer[] = []
    let size = 0
    const stream = response.stream
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_LISTING_BYTES) {
        ;(stream as NodeJS.ReadableStream & { destroy: (err?: Error) => void }).destroy(new Error('listing too large'))
        return
      }
      chunks.push(chunk)
    })
    stream.on('error', (err: Error) => {
      request.log.warn({ err }, 'could not read a model listing')
      reply.removeHeader('content-length')
      sendError(request, reply, 502, 'Ollama sent an unreadable model listing')
    })
    stream.on('end', () => {
      const raw = Buffer.concat(chunks)
      reply.removeHeader('content-length')
      if (response.statusCode !== 200) {
        reply.send(raw)
        return
      }
      let document: unknown
      try {
        document = JSON.parse(raw.toString('utf8'))
      } catch {
        reply.send(raw)
        return
      }
      reply.header('content-type', 'application/json; charset=utf-8')
      reply.send(JSON.stringify(filterListing(kind, document, allowlist)))
    })
  }
}
