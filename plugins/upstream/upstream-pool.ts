import type { FastifyBaseLogger } from 'fastify'
import type { ProxyConfig, UpstreamSettings } from '../config/config-loader.js'
import { ProxyError } from '../http/error-shapes.js'
import type { UpstreamTarget } from '../http/exchange.js'
import { normaliseModel } from '../auth/model-names.js'

/** One Ollama host as the router sees it. */
export interface Host extends UpstreamTarget {
  maxConcurrent: number | null
  healthy: boolean
  /** Requests holding one of its slots. */
  inFlight: number
  /** Normalised names from the host's /api/tags and /api/ps. */
  models: Set<string>
  loaded: Set<string>
  /** Health checks passed and failed in a row. */
  passes: number
  failures: number
  /** Ollama's version, from its health check (`GET /api/version`). */
  version: string | undefined
}

/** A request's claim on a host slot: waiting in the queue, then granted (`host`), then released. */
export interface SlotTicket {
  model: string | undefined
  exclude: ReadonlySet<string>
  host: Host | undefined
  /** performance.now() when it started waiting. */
  since: number
  done: ((err: ProxyError | null, ticket?: SlotTicket) => void) | undefined
  timer: NodeJS.Timeout | undefined
}

/** Hosts without max_concurrent count as this wide when comparing how busy hosts are. */
const UNBOUNDED_WIDTH = 64
const NO_HOSTS: ReadonlySet<string> = new Set()

/**
 * The Ollama hosts and their slots. A request goes, among healthy hosts that have its model, to
 * one where it is already loaded, then to the least busy (in flight over max_concurrent). With
 * one host, that host is always tried. When every candidate is full, requests wait in a bounded
 * queue: 503 when the queue is full, 504 after queue_timeout.
 */
export class UpstreamPool {
  readonly hosts: Host[]
  private readonly queue: SlotTicket[] = []
  private turn = 0

  constructor (upstreams: UpstreamSettings[], private readonly settings: ProxyConfig['service'], private readonly log: FastifyBaseLogger) {
    this.hosts = upstreams.map(u => ({
      name: u.name,
      url: u.url,
      basePath: u.basePath,
      authorization: u.authorization,
      headers: (u as { headers?: Record<string, string> }).headers ?? {},
      maxConcurrent: u.maxConcurrent,
      healthy: true,
      inFlight: 0,
      models: new Set(),
      loaded: new Set(),
      passes: 0,
      failures: 0,
      version: undefined
    }))
  }

  /** Requests waiting in the queue for a free host. */
  get queued (): number {
    return this.queue.length
  }

  /** Requests waiting that this host could take. */
  queuedFor (host: Host): number {
    let count = 0
    for (const ticket of this.queue) if (!ticket.exclude.has(host.name)) count++
    return count
  }

  get several (): boolean {
    return this.hosts.length > 1
  }

  byName (name: string): Host | undefined {
    return this.hosts.find(h => h.name === name)
  }

  /** Hosts that pass their health checks; with one host, that host whatever its health (nothing else can answer). */
  healthyHosts (): Host[] {
    const healthy = this.hosts.filter(h => h.healthy)
    return healthy.length === 0 && !this.several ? this.hosts : healthy
  }

  /** The best host for `model` among the healthy ones not excluded, with a free slot when `needSlot`; undefined when none. */
  pick (model: string | undefined, exclude: ReadonlySet<string> = NO_HOSTS, needSlot = true): Host | undefined {
    let candidates = this.healthyHosts().filter(h => !exclude.has(h.name))
    if (candidates.length === 0) return undefined
    const wanted = model === undefined ? undefined : normaliseModel(model)
    if (wanted !== undefined) {
      const having = candidates.filter(h => h.models.has(wanted) || h.loaded.has(wanted))
      if (having.length > 0) candidates = having
    }
    const free = needSlot ? candidates.filter(h => h.maxConcurrent === null || h.inFlight < h.maxConcurrent) : candidates
    if (free.length === 0) return undefined
    if (free.length === 1) return free[0]
    const load = (h: Host) => h.inFlight / (h.maxConcurrent ?? UNBOUNDED_WIDTH)
    const start = this.turn++ % free.length
    const rotated = [...free.slice(start), ...free.slice(0, start)]
    return rotated.reduce((best, h) => {
      const bestLoaded = wanted !== undefined && best.loaded.has(wanted)
      const hLoaded = wanted !== undefined && h.loaded.has(wanted)
      if (hLoaded !== bestLoaded) return hLoaded ? h : best
      return load(h) < load(best) ? h : best
    })
  }

  /**
   * Claims a slot on the best host for `model` (not one of `exclude`), waiting in the queue when
   * every candidate is full. `done` is called once (maybe before this returns): with the granted
   * ticket (its `host` set), or with a ProxyError 502 (no
   * healthy host), 503 + Retry-After (queue full) or 504 (queue_timeout). The ticket is given back
   * with {@link release} however the request ends, granted or still waiting.
   */
  claim (model: string | undefined, exclude: ReadonlySet<string>, done: (err: ProxyError | null, ticket?: SlotTicket) => void): SlotTicket {
    const ticket: SlotTicket = { model, exclude, host: undefined, since: performance.now(), done, timer: undefined }
    if (!this.healthyHosts().some(h => !exclude.has(h.name))) {
      this.settle(ticket, new ProxyError(502, 'no healthy Ollama host'))
      return ticket
    }
    const host = this.pick(model, exclude)
    if (host !== undefined) {
      this.grant(ticket, host)
      return ticket
    }
    if (this.queue.length >= this.settings.queueSize) {
      this.settle(ticket, new ProxyError(503, 'every Ollama host is busy and the queue is full', { 'retry-after': '1' }))
      return ticket
    }
    ticket.timer = setTimeout(() => {
      this.drop(ticket)
      this.settle(ticket, new ProxyError(504, `no Ollama host was free within ${this.settings.queueTimeoutMs / 1000} s`))
    }, this.settings.queueTimeoutMs)
    this.queue.push(ticket)
    return ticket
  }

  /** Gives a ticket back: frees its slot when granted, leaves the queue when waiting. Later calls do nothing. */
  release (ticket: SlotTicket): void {
    ticket.done = undefined
    clearTimeout(ticket.timer)
    const host = ticket.host
    if (host !== undefined) {
      ticket.host = undefined
      host.inFlight = Math.max(0, host.inFlight - 1)
      this.dispatchQueue()
      return
    }
    this.drop(ticket)
  }

  /** A connection to the host failed: take it out until an active check passes again. */
  markDown (host: Host, reason: string): void {
    if (!host.healthy) return
    host.healthy = false
    host.passes = 0
    this.log.warn({ upstream: host.name, reason }, 'upstream marked down')
  }

  /** Health or model lists changed: waiting requests may fit now. */
  hostsChanged (): void {
    this.dispatchQueue()
  }

  /** Fails every waiting request with 503 (shutting down). */
  stop (): void {
    for (const ticket of this.queue.splice(0)) {
      clearTimeout(ticket.timer)
      this.settle(ticket, new ProxyError(503, 'the proxy is shutting down'))
    }
  }

  private grant (ticket: SlotTicket, host: Host): void {
    host.inFlight++
    ticket.host = host
    clearTimeout(ticket.timer)
    const done = ticket.done
    ticket.done = undefined
    done?.(null, ticket)
  }

  private settle (ticket: SlotTicket, err: ProxyError): void {
    const done = ticket.done
    ticket.done = undefined
    done?.(err)
  }

  private drop (ticket: SlotTicket): void {
    const index = this.queue.indexOf(ticket)
    if (index >= 0) this.queue.splice(index, 1)
  }

  private dispatchQueue (): void {
    for (let i = 0; i < this.queue.length;) {
      const ticket = this.queue[i]
      const host = this.pick(ticket.model, ticket.exclude)
      if (host === undefined) {
        i++
        continue
      }
      this.queue.splice(i, 1)
      this.grant(ticket, host)
    }
  }
}
