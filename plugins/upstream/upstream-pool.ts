import type { FastifyBaseLogger } from 'fastify'
import type { ProxyConfig, UpstreamSettings } from '../config/config-loader.js'
import type { UpstreamTarget } from '../http/exchange.js'
import { bestHost, HostGroups } from '../scheduling/host-choice.js'
import type { SlotLedger } from '../scheduling/slot-ledger.js'
import { SlotScheduler } from '../scheduling/slot-scheduler.js'

/** One Ollama host as the router sees it. */
export interface Host extends UpstreamTarget {
  maxConcurrent: number | null
  healthy: boolean
  /** This replica's requests holding one of its slots (written by the scheduler only). */
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

const NO_HOSTS: ReadonlySet<string> = new Set()

/**
 * The Ollama hosts, their state, and the slots on them. Inference takes a slot through the fair
 * scheduler (plugins/scheduling/slot-scheduler.ts), one host as several; other work goes to the
 * best host without one. The host choice is the same for both: among healthy hosts that have the
 * model, one where it is already loaded, then the least busy.
 */
export class UpstreamPool {
  readonly hosts: Host[]
  readonly scheduler: SlotScheduler<Host>
  private readonly choice: HostGroups<Host>
  private turn = 0

  constructor (upstreams: UpstreamSettings[], settings: ProxyConfig['service'], private readonly log: FastifyBaseLogger, ledger?: SlotLedger) {
    this.hosts = upstreams.map(u => ({
      name: u.name,
      url: u.url,
      basePath: u.basePath,
      authorization: u.authorization,
      headers: u.headers,
      maxConcurrent: u.maxConcurrent,
      healthy: true,
      inFlight: 0,
      models: new Set(),
      loaded: new Set(),
      passes: 0,
      failures: 0,
      version: undefined
    }))
    this.choice = new HostGroups(this.hosts)
    this.scheduler = new SlotScheduler(this.hosts, { queueSize: settings.queueSize, queueTimeoutMs: settings.queueTimeoutMs }, { ledger })
  }

  /** Requests waiting for a slot. */
  get queued (): number {
    return this.scheduler.waiting
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

  /** The best host for `model` (raw name) without taking a slot, not one of `exclude`; undefined when none is healthy. */
  pick (model: string | undefined, exclude: ReadonlySet<string> = NO_HOSTS): Host | undefined {
    if (!this.several) return exclude.has(this.hosts[0].name) ? undefined : this.hosts[0]
    const name = this.choice.modelOf(model)
    const candidates = this.choice.hostsOf(this.choice.groupOf({ model: name, exclude, only: undefined }))
    return candidates.length === 0 ? undefined : bestHost(candidates, name, this.turn++)
  }

  /** A connection to the host failed: take it out until a health check passes again. */
  markDown (host: Host, reason: string): void {
    if (!host.healthy) return
    host.healthy = false
    host.passes = 0
    this.log.warn({ upstream: host.name, reason }, 'upstream marked down')
    this.hostsChanged()
  }

  /** Health or model lists changed: host choices are made again and waiting requests may fit now. */
  hostsChanged (): void {
    this.choice.forget()
    this.scheduler.hostsChanged()
  }

  /** Refuses every waiting request (503, shutting down). */
  stop (): void {
    this.scheduler.close()
  }
}
