import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { namedHost } from '../auth/named-host.js'
import { sendError } from '../http/error-shapes.js'
import type { Exchange, ForwardOptions } from '../http/exchange.js'
import { upstreamPathFor } from '../http/route-spec.js'
import { fanOut } from './fan-out.js'
import { forwardTo } from './forward.js'
import { ignoreFailure, type HostHealth } from './host-health.js'
import { filteredListing, mergedListing, sendListing } from './listings.js'
import { ProxyError } from '../http/error-shapes.js'
import type { SchedulingError } from '../scheduling/scheduling-error.js'
import type { SlotGrant } from '../scheduling/slot-request.js'
import type { Host, UpstreamPool } from './upstream-pool.js'

/** Network failures that mean the request never reached Ollama's handler: safe to try elsewhere. */
const NEVER_ARRIVED = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNRESET', 'UND_ERR_SOCKET', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND'])
const NO_HOSTS: ReadonlySet<string> = new Set()

/**
 * Stage 6, the plan: where the exchange goes, read from its route row. Listings are filtered
 * per key and merged across hosts; a host the client names gets the request alone; model
 * management fans out to every healthy host; inference takes a slot on the best host (waiting in
 * the queue when all are full) and everything else goes to the best host without one. A call
 * whose connection fails before Ollama answered is tried again on another host (not an upload,
 * not a named host). Stage 7, forward.ts, sends it.
 */
export function proxyHandler (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const exchange = request.exchange
  // A client that left while its body was read: nothing to send, nothing to hold.
  if (exchange.ended) return reply
  const route = exchange.route!
  const pool = this.upstreams
  const path = upstreamPathFor(route, request.params as Record<string, string> | undefined)
  const name = namedHost(request.headers, request.query)
  const named = name === undefined ? undefined : pool.byName(name)
  if (route.hosts === 'proxy') {
    this.hostHealth.checked().then(() => { if (!exchange.ended) answerFromHealth(pool, request, reply) }, ignoreFailure)
    return reply
  }
  const plan = new Plan(exchange, path, pool, this)

  if (route.listing !== undefined) plan.listing(named)
  else if (named !== undefined) plan.toNamedHost(named)
  else if (route.hosts === 'every' && pool.several) plan.toEveryHost()
  else if (route.hosts === 'named' && pool.several) sendError(request, reply, 400, 'several Ollama hosts are configured: name one with the X-Ollama-Host header or the ?host= query parameter')
  else if (route.work === 'inference') plan.withSlot(NO_HOSTS)
  else plan.toBestHost(NO_HOSTS)
  return reply
}

/** Ollama's liveness answer (`GET /`, `HEAD /`), given from the health checks: no upstream call per probe. */
function answerFromHealth (pool: UpstreamPool, request: FastifyRequest, reply: FastifyReply): void {
  if (!pool.hosts.some(h => h.healthy)) {
    sendError(request, reply, 502, 'Ollama is unreachable')
    return
  }
  reply.header('content-type', 'text/plain; charset=utf-8').send('Ollama is running')
}

/**
 * One exchange's way to its host(s), and what it tried for a retry elsewhere. It is also the
 * exchange's forward handlers (ForwardOptions, declared with the exchange): a failed connection comes back to
 * onConnectError, with no closure per request.
 */
class Plan implements ForwardOptions {
  private tried: Set<string> | undefined = undefined
  /** Whether the exchange holds (and a retry takes again) a host slot. */
  private slotted = false
  private readonly health: HostHealth
  private readonly agent: FastifyInstance['upstreamAgent']

  constructor (private readonly exchange: Exchange, private readonly path: string, private readonly pool: UpstreamPool, app: FastifyInstance) {
    this.health = app.hostHealth
    this.agent = app.upstreamAgent
  }

  listing (named: Host | undefined): void {
    const { exchange, pool } = this
    const kind = exchange.route!.listing!
    const allowlist = exchange.key?.models
    const head = exchange.request.method === 'HEAD'
    const hosts = named !== undefined ? [named] : pool.healthyHosts()
    // One host's listing as it is, or filtered as it streams by; a HEAD for a key with an
    // allowlist, or several hosts, is answered from the listings read whole.
    if (hosts.length === 1 && !(head && allowlist != null)) {
      this.send(hosts[0], allowlist != null ? { onResponse: filteredListing(kind) } : undefined)
      return
    }
    const answered: Host[] = []
    mergedListing(this.agent, hosts, kind, this.path, exchange, answered).then(document => {
      if (exchange.ended) return
      if (document === undefined) sendError(exchange.request, exchange.reply, 502, 'no Ollama host answered')
      else sendListing(exchange, kind, document, answered)
    }, (err: Error) => { if (!exchange.ended) exchange.reply.send(err) })
  }

  /**
   * A host named by an admin key gets the same policy as a routed request, only the choice of
   * host is fixed: inference waits for one of its slots; everything else goes straight to it.
   */
  toNamedHost (host: Host): void {
    const exchange = this.exchange
    const route = exchange.route!
    if (route.work === 'inference') {
      this.withSlot(NO_HOSTS, host.name)
      return
    }
    this.send(host)
    if (route.hosts === 'every') exchange.reply.raw.once('finish', () => { this.health.refresh(host).catch(ignoreFailure) })
  }

  toEveryHost (): void {
    const { exchange, pool } = this
    const healthy = pool.healthyHosts()
    if (healthy.length === 0) {
      sendError(exchange.request, exchange.reply, 502, 'no healthy Ollama host')
      return
    }
    const streamed = exchange.route!.answer === 'ndjson' && (exchange.request.body as { stream?: unknown } | undefined)?.stream !== false
    fanOut(this.agent, healthy, this.path, exchange, streamed).then(() => {
      exchange.reply.raw.once('finish', () => { Promise.all(healthy.map(h => this.health.refresh(h))).catch(ignoreFailure) })
    }, (err: Error) => { if (!exchange.ended) exchange.reply.send(err) })
  }

  /**
   * Waits for a slot on the best host not in `exclude` (or on `only`), in the key's fair turn,
   * then forwards. The exchange is the wait's abort signal: a client that leaves gives its place up.
   */
  withSlot (exclude: ReadonlySet<string>, only?: string): void {
    const exchange = this.exchange
    const key = exchange.key
    const scheduler = this.pool.scheduler
    this.slotted = true
    const request = {
      key: key?.name ?? 'none',
      weight: key?.weight,
      queued: key?.limits.queued,
      model: exchange.model,
      exclude,
      only,
      signal: exchange as unknown as AbortSignal
    }
    let free: SlotGrant<Host> | undefined
    try {
      free = scheduler.grantNow(request)
    } catch (err) {
      this.refuse(err as SchedulingError)
      return
    }
    if (free !== undefined) {
      this.granted(free, only === undefined)
      return
    }
    scheduler.acquire(request).then(grant => { this.granted(grant, only === undefined) }, (err: SchedulingError) => { this.refuse(err) })
  }

  private granted (grant: SlotGrant<Host>, retryElsewhere: boolean): void {
    const exchange = this.exchange
    if (exchange.ended) {
      grant.release()
      return
    }
    exchange.hostSlot = grant
    exchange.queueMs = grant.waitedMs
    this.send(grant.host, retryElsewhere ? this : undefined)
  }

  /** The scheduler's refusal (502, 503, 504, 429 queued) in the client's dialect; a client that left needs none. */
  private refuse (err: SchedulingError): void {
    const exchange = this.exchange
    if (err.statusCode === 499 || exchange.ended) return
    exchange.refusedBy = err.statusCode === 429 ? 'queued' : undefined
    exchange.reply.send(new ProxyError(err.statusCode, err.message, err.headers))
  }

  /** Reading model information or managing models: the best host, no slot. */
  toBestHost (exclude: ReadonlySet<string>): void {
    const host = this.pool.pick(this.exchange.model, exclude)
    if (host === undefined) {
      sendError(this.exchange.request, this.exchange.reply, 502, 'no healthy Ollama host')
      return
    }
    this.send(host, this)
  }

  /** forward.ts: the connection failed before Ollama answered; true when a retry took over the reply. */
  onConnectError (code: string): boolean {
    return this.retry(code)
  }

  private send (host: Host, handlers?: Parameters<typeof forwardTo>[3]): void {
    if (this.pool.several) this.exchange.reply.header('x-ollama-upstream', host.name)
    forwardTo(this.exchange, host, this.path, handlers)
  }

  /** The connection to the current host failed before Ollama answered: take the host out and try another. */
  private retry (code: string): boolean {
    const withSlot = this.slotted
    const { exchange, pool } = this
    const current = pool.byName(exchange.upstream!.host)
    // Only a failed connection says the host is down; a slow model load (504) does not.
    if (!NEVER_ARRIVED.has(code) || current === undefined) return false
    pool.markDown(current, code)
    if (!pool.several || exchange.route!.body === 'raw') return false
    const tried = this.tried ??= new Set()
    tried.add(current.name)
    if (withSlot) {
      const grant = exchange.hostSlot as SlotGrant<Host> | null
      exchange.hostSlot = null
      grant?.release()
    }
    exchange.request.log.info({ tried: [...tried] }, 'retrying on another upstream')
    if (withSlot) this.withSlot(tried)
    else this.toBestHost(tried)
    return true
  }
}
