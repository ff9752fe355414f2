import type { Agent } from 'undici'
import { filterListing, type Listing } from '../auth/model-fields.js'
import { ProxyError, sendError } from '../http/error-shapes.js'
import type { Exchange, UpstreamResponse } from '../http/exchange.js'
import { assertIdentityEncoding, discard, MAX_ANSWER_BYTES, MAX_LISTING_BYTES, readBounded } from './bounded-read.js'
import { getJson } from './host-requests.js'
import type { Host } from './upstream-pool.js'

const LISTING_TIMEOUT_MS = 10_000

/** Ollama's listing shapes: `{"models":[...]}`, or `{"object":"list","data":[...]}` (data null when empty). */
export function isListing (kind: Listing, document: unknown): document is Record<string, unknown> {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) return false
  const items = (document as Record<string, unknown>)[kind === 'openai-models' ? 'data' : 'models']
  return Array.isArray(items) || items === null
}

function queryOf (url: string): string {
  const at = url.indexOf('?')
  return at < 0 ? '' : url.slice(at)
}

/**
 * A listing the proxy answers itself: `document` filtered by the key's allowlist, as JSON, with
 * `X-Ollama-Upstream` naming the hosts it was read from. A HEAD gets the same headers (the
 * filtered document's length) and no body.
 */
export function sendListing (exchange: Exchange, kind: Listing, document: unknown, answered: readonly Host[]): void {
  const allowlist = exchange.key?.models
  const reply = exchange.reply
  reply.header('x-ollama-upstream', answered.map(h => h.name).join(','))
  reply.header('content-type', 'application/json; charset=utf-8')
  reply.send(JSON.stringify(allowlist == null ? document : filterListing(kind, document, allowlist)))
}

/**
 * /api/tags, /api/ps and /v1/models across `hosts`: the union, without duplicates. Unreachable
 * hosts are left out; undefined when none answered. A host whose answer cannot be read
 * (compressed, over MAX_LISTING_BYTES, not JSON, no `models`/`data` list) raises ProxyError 502:
 * a listing the proxy cannot read is never merged, filtered or passed on. `answered` receives the
 * hosts whose answers were merged, in configuration order.
 */
export async function mergedListing (agent: Agent, hosts: readonly Host[], kind: Listing, path: string, exchange: Exchange, answered: Host[] = []): Promise<unknown> {
  const request = exchange.request
  const answers = await Promise.all(hosts.map(async host => {
    let document: unknown
    try {
      document = await getJson(agent, host, path + queryOf(request.url), { 'x-request-id': request.id }, LISTING_TIMEOUT_MS)
    } catch (err) {
      throw new ProxyError(502, `could not read the model listing: ${(err as Error).message}`)
    }
    if (document !== undefined && !isListing(kind, document)) throw new ProxyError(502, `could not read the model listing: the answer of ${host.name} has no list of models`)
    return document
  }))
  const documents = answers.filter(a => a !== undefined) as Array<Record<string, unknown>>
  answered.push(...hosts.filter((_, i) => answers[i] !== undefined))
  if (documents.length === 0) return undefined
  const field = kind === 'openai-models' ? 'data' : 'models'
  const idOf = (item: Record<string, unknown>) => String(kind === 'openai-models' ? item.id : item.name ?? item.model)
  const seen = new Set<string>()
  const merged: Array<Record<string, unknown>> = []
  for (const document of documents) {
    const items = document[field]
    if (!Array.isArray(items)) continue
    for (const item of items as Array<Record<string, unknown>>) {
      if (typeof item !== 'object' || item === null) continue
      const id = idOf(item)
      if (seen.has(id)) continue
      seen.add(id)
      merged.push(item)
    }
  }
  return kind === 'openai-models' ? { object: 'list', data: merged } : { models: merged }
}

/**
 * The answer handler (forward.ts `onResponse`) for one host's listing to a key with a model
 * allowlist: Ollama's answer is read whole (at most MAX_LISTING_BYTES), filtered to the models
 * the key may use, and sent with a recomputed Content-Length. Fails closed: an answer the proxy
 * cannot read (compressed although `identity` was asked for, too large, not JSON, without its
 * list of models) is a 502, never passed on unfiltered. Ollama's error answers (status >= 300)
 * pass through, up to MAX_ANSWER_BYTES.
 */
export function filteredListing (kind: Listing) {
  return function onListing (exchange: Exchange, response: UpstreamResponse): void {
    const { request, reply } = exchange
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
      reply.send(JSON.stringify(filterListing(kind, document, exchange.key!.models!)))
    }, (err: Error) => { refuse(err.message) })
  }
}
