import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ProxyError, sendError } from '../http/error-shapes.js'
import { fanOut, mergedListing } from './fan-out.js'
import { filteredListing } from './listing.js'
import { filterListing, type Listing } from '../auth/model-fields.js'
import { ignoreFailure, type Host } from './upstream-pool.js'
import type { ForwardOptions } from './upstream.js'
import { onResponseClose, routeConfigOf } from '../http/per-request.js'

declare module 'fastify' {
  interface FastifyReply {
    /** Sends the request to the right Ollama host(s) for its route and streams the answer back. */
    proxy (upstreamPath: string): void
  }
  interface FastifyContextConfig {
    /** Model listings, filtered per key and merged across hosts. */
    listing?: Listing
    /** The request body is a raw stream: it cannot be replayed on another host. */
    rawBody?: boolean
  }
}

/** Model management that makes sense on every host at once. */
const FAN_OUT_PATHS = new Set(['/api/pull', '/api/push', '/api/create', '/api/copy', '/api/delete'])
/** Uploads must land where the model will be created: the client names the host. */
const NAMED_HOST_ONLY = /^\/api\/blobs\//
/** Network failures that mean the request never reached Ollama's handler: safe to try elsewhere. */
const NEVER_ARRIVED = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNRESET', 'UND_ERR_SOCKET', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND'])

function namedHost (request: FastifyRequest): string | undefined {
  const header = request.headers['x-ollama-host']
  if (typeof header === 'string' && header !== '') return header
  const query = request.query as Record<string, unknown> | undefined
  return typeof query?.host === 'string' && query.host !== '' ? query.host : undefined
}

/**
 * Where each request goes. One host: straight through. Several: listings are merged, model
 * management goes to a named host or to all, everything else to the best host for its model,
 * retried elsewhere if the connection fails before any byte reached the client.
 */
export default fp(async function routingPlugin (fastify) {
  const pool = fastify.upstreams
  const agent = fastify.upstreamAgent

  function sendListing (request: FastifyRequest, reply: FastifyReply, kind: Listing, document: unknown, answered: Host[]): void {
    const allowlist = request.apiKey?.models
    // A merged answer names every host it was merged from, as fan-out answers do.
    reply.header('x-ollama-upstream', answered.map(h => h.name).join(','))
    reply.header('content-type', 'application/json; charset=utf-8')
    reply.send(JSON.stringify(allowlist == null ? document : filterListing(kind, document, allowlist)))
  }

  interface ForwardPlan {
    /** The request holds a slot on the host, given back when the answer ends. */
    release: boolean
    /** A failed connection may be retried on another host (not for a named host). */
    retryElsewhere: boolean
    onResponse?: ForwardOptions['onResponse']
  }

  function forwardTo (request: FastifyRequest, reply: FastifyReply, path: string, host: Host, plan: ForwardPlan): void {
    const { release } = plan
    reply.header('x-ollama-upstream', host.name)
    if (request.upstream !== undefined) request.upstream.host = host.name
    const tried = new Set([host.name])
    let current: Host | undefined = host
    if (release) onResponseClose(reply, () => { if (current !== undefined) pool.release(current) })
    const retry = (code: string): boolean => {
      // Only a failed connection says the host is down; a slow model load (504) does not.
      if (!NEVER_ARRIVED.has(code) || current === undefined) return false
      pool.markDown(current, code)
      if (!release || !plan.retryElsewhere || routeConfigOf(request).rawBody === true) return false
      pool.release(current)
      current = undefined
      const controller = new AbortController()
      onResponseClose(reply, () => { controller.abort() })
      pool.acquire(request.model, controller.signal, tried).then(next => {
        current = next
        tried.add(next.name)
        reply.header('x-ollama-upstream', next.name)
        request.log.info({ tried: [...tried], upstream: next.name }, 'retrying on another upstream')
        send(next)
      }, (err: ProxyError) => {
        if (err.statusCode === 499) return
        sendError(request, reply, 502, 'Ollama is unreachable')
      })
      return true
    }
    const send = (target: Host) => {
      if (request.upstream !== undefined) request.upstream.host = target.name
      reply.forward(path, { host: target, onConnectError: retry, onResponse: plan.onResponse })
    }
    send(host)
  }

  /** Waits for a slot (in the shared queue), then forwards; `only` restricts the choice to one host. */
  function forwardWithSlot (request: FastifyRequest, reply: FastifyReply, path: string, only?: Host): void {
    const controller = new AbortController()
    onResponseClose(reply, () => { controller.abort() })
    const others = new Set(only === undefined ? [] : pool.hosts.filter(h => h !== only).map(h => h.name))
    pool.acquire(request.model, controller.signal, others).then(host => {
      if (reply.raw.destroyed) {
        pool.release(host)
        return
      }
      forwardTo(request, reply, path, host, { release: true, retryElsewhere: only === undefined })
    }, (err: Error) => {
      if (err instanceof ProxyError && err.statusCode === 499) return
      reply.send(err)
    })
  }

  /**
   * A host named by an admin key gets the same policy as a routed request: listings filtered by
   * the key's allowlist, inference and other single requests through its slots and the queue.
   * Model management and blob uploads, which take no slot when fanned out, take none here either.
   */
  function forwardToNamedHost (request: FastifyRequest, reply: FastifyReply, path: string, host: Host): void {
    const config = routeConfigOf(request)
    const allowlist = request.apiKey?.models
    if (config.listing !== undefined) {
      const onResponse = allowlist != null ? filteredListing(config.listing, allowlist) : undefined
      forwardTo(request, reply, path, host, { release: false, retryElsewhere: false, onResponse })
      return
    }
    if (FAN_OUT_PATHS.has(path) || NAMED_HOST_ONLY.test(path)) {
      forwardTo(request, reply, path, host, { release: false, retryElsewhere: false })
      if (FAN_OUT_PATHS.has(path)) reply.raw.once('finish', () => { pool.refresh(host).catch(ignoreFailure) })
      return
    }
    forwardWithSlot(request, reply, path, host)
  }

  /**
   * Choosing a host overrides the routing policy's choice: an act for models:admin keys only
   * (403 otherwise); an unknown name is 404. True when it answered.
   */
  function refuseHostNaming (request: FastifyRequest, reply: FastifyReply): boolean {
    const name = namedHost(request)
    if (name === undefined) return false
    if (request.apiKey?.scopes.has('models:admin') !== true) {
      sendError(request, reply, 403, 'naming an Ollama host (X-Ollama-Host, ?host=) needs a key with the models:admin scope')
      return true
    }
    if (pool.byName(name) === undefined) {
      sendError(request, reply, 404, `no Ollama host named "${name}"`)
      return true
    }
    return false
  }

  // Refused right after the key check, before a body is read or an upload accepted.
  fastify.addHook('onRequest', function checkHostNaming (request, reply, done) {
    const access = routeConfigOf(request).access
    if (access === 'generate' || access === 'models:read' || access === 'models:admin') {
      if (refuseHostNaming(request, reply)) return
    }
    done()
  })

  fastify.decorateReply('proxy', function proxy (this: FastifyReply, path: string): void {
    const request = this.request
    const config = routeConfigOf(request)
    const allowlist = request.apiKey?.models

    const name = namedHost(request)
    let named: Host | undefined
    if (name !== undefined) {
      if (refuseHostNaming(request, this)) return
      named = pool.byName(name)
    }

    if (!pool.several) {
      if (config.listing !== undefined && allowlist != null) this.forward(path, { onResponse: filteredListing(config.listing, allowlist) })
      else this.forward(path)
      return
    }

    if (named !== undefined) {
      forwardToNamedHost(request, this, path, named)
      return
    }

    const healthy = pool.healthyHosts()
    if (config.listing !== undefined && request.method === 'GET') {
      const answered: Host[] = []
      mergedListing(pool, healthy, config.listing, path, request, answered).then(document => {
        if (document === undefined) sendError(request, this, 502, 'no Ollama host answered')
        else sendListing(request, this, config.listing!, document, answered)
      }, (err: Error) => this.send(err))
      return
    }
    if (config.access === 'models:admin') {
      if (NAMED_HOST_ONLY.test(path)) {
        sendError(request, this, 400, 'several Ollama hosts are configured: name one with the X-Ollama-Host header or the ?host= query parameter')
        return
      }
      if (FAN_OUT_PATHS.has(path)) {
        if (healthy.length === 0) {
          sendError(request, this, 502, 'no healthy Ollama host')
          return
        }
        const streamed = path !== '/api/copy' && path !== '/api/delete' && (request.body as { stream?: unknown } | undefined)?.stream !== false
        fanOut(agent, healthy, path, request, this, streamed).then(() => {
          this.raw.once('finish', () => { Promise.all(healthy.map(h => pool.refresh(h))).catch(ignoreFailure) })
        }, (err: Error) => this.send(err))
        return
      }
    }

    forwardWithSlot(request, this, path)
  })
}, { name: 'routing', fastify: '5.x', dependencies: ['upstream', 'auth'] })
