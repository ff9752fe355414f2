import type { Agent, Dispatcher } from 'undici'
import type { FastifyBaseLogger } from 'fastify'
import type { ProxyConfig, UpstreamSettings } from '../config/config-loader.js'
import { ProxyError } from '../http/error-shapes.js'
import { normaliseModel } from '../auth/model-names.js'
import { assertIdentityEncoding, discard, MAX_LISTING_BYTES, readBounded, UnreadableAnswer } from './bounded-read.js'

/** One Ollama host as the router sees it. */
export interface Host {
  name: string
  /** Origin only: safe to log. */
  url: string
  /** Path prefix of Ollama on this host ('' or '/ollama'). */
  basePath: string
  /** The proxy's own credentials for this host (`Basic ...`), never shown to anyone. */
  authorization: string | null
  maxConcurrent: number | null
  healthy: boolean
  inFlight: number
  /** Normalised names from the host's /api/tags and /api/ps. */
  models: Set<string>
  loaded: Set<string>
  passes: number
  failures: number
}

interface Waiter {
  model: string | undefined
  exclude: ReadonlySet<string>
  resolve: (host: Host) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

const PROBE_TIMEOUT_MS = 2000
/** Hosts without max_concurrent count as this wide when comparing how busy hosts are. */
const UNBOUNDED_WIDTH = 64

/**
 * Chooses an Ollama host per request: among healthy hosts that have the model, one where it is
 * already loaded, then the least busy (in flight over max_concurrent). When every candidate is
 * full, requests wait in a bounded FIFO queue: 503 when the queue is full, 504 after queue_timeout.
 */
export class UpstreamPool {
  readonly hosts: Host[]
  private readonly queue: Waiter[] = []
  private timers: NodeJS.Timeout[] = []
  private turn = 0

  constructor (
    upstreams: UpstreamSettings[],
    private readonly settings: ProxyConfig['service'],
    private readonly agent: Agent,
    private readonly log: FastifyBaseLogger
  ) {
    this.hosts = upstreams.map(u => ({
      name: u.name,
      url: u.url,
      basePath: u.basePath,
      authorization: u.authorization,
      maxConcurrent: u.maxConcurrent,
      healthy: true,
      inFlight: 0,
      models: new Set(),
      loaded: new Set(),
      passes: 0,
      failures: 0
    }))
  }

  /** Requests waiting in the queue for a free host. */
  get queued (): number {
    return this.queue.length
  }

  get several (): boolean {
    return this.hosts.length > 1
  }

  byName (name: string): Host | undefined {
    return this.hosts.find(h => h.name === name)
  }

  healthyHosts (): Host[] {
    return this.hosts.filter(h => h.healthy)
  }

  /** The best host with a free slot now, or undefined when every candidate is full. */
  pick (model: string | undefined, exclude: ReadonlySet<string> = new Set()): Host | undefined {
    let candidates = this.hosts.filter(h => h.healthy && !exclude.has(h.name))
    if (candidates.length === 0) return undefined
    const wanted = model === undefined ? undefined : normaliseModel(model)
    if (wanted !== undefined) {
      const having = candidates.filter(h => h.models.has(wanted) || h.loaded.has(wanted))
      if (having.length > 0) candidates = having
    }
    const free = candidates.filter(h => h.maxConcurrent === null || h.inFlight < h.maxConcurrent)
    if (free.length === 0) return undefined
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

  /** Takes a slot on the best host, waiting in the queue when all are busy. */
  async acquire (model: string | undefined, signal: AbortSignal, exclude: ReadonlySet<string> = new Set()): Promise<Host> {
    if (!this.hosts.some(h => h.healthy && !exclude.has(h.name))) {
      throw new ProxyError(502, 'no healthy Ollama host')
    }
    const host = this.pick(model, exclude)
    if (host !== undefined) return this.take(host)
    if (this.queue.length >= this.settings.queueSize) {
      throw new ProxyError(503, 'every Ollama host is busy and the queue is full', { 'retry-after': '1' })
    }
    return await new Promise<Host>((resolve, reject) => {
      const waiter: Waiter = {
        model,
        exclude,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.drop(waiter)
          reject(new ProxyError(504, `no Ollama host was free within ${this.settings.queueTimeoutMs / 1000} s`))
        }, this.settings.queueTimeoutMs)
      }
      signal.addEventListener('abort', () => {
        this.drop(waiter)
        reject(new ProxyError(499, 'client left while queued'))
      }, { once: true })
      this.queue.push(waiter)
    })
  }

  release (host: Host): void {
    host.inFlight = Math.max(0, host.inFlight - 1)
    this.dispatchQueue()
  }

  /** A connection to the host failed: take it out until an active check passes again. */
  markDown (host: Host, reason: string): void {
    if (!host.healthy) return
    host.healthy = false
    host.passes = 0
    this.log.warn({ upstream: host.name, reason }, 'upstream marked down')
  }

  start (): void {
    if (!this.several) return
    const check = () => { this.checkAll().catch(ignoreFailure) }
    const refresh = () => { this.refreshAll().catch(ignoreFailure) }
    this.timers = [setInterval(check, this.settings.healthIntervalMs), setInterval(refresh, this.settings.refreshIntervalMs)]
    for (const timer of this.timers) timer.unref()
    this.refreshAll().catch(ignoreFailure)
  }

  stop (): void {
    for (const timer of this.timers) clearInterval(timer)
    for (const waiter of this.queue.splice(0)) {
      clearTimeout(waiter.timer)
      waiter.reject(new ProxyError(503, 'the proxy is shutting down'))
    }
  }

  /**
   * One host: requests always go to it (no routing to take it out of), but the log says when it
   * cannot be reached: a warning at the first failed check (right after start when Ollama is not
   * running), an info line when it answers again. Checked every health_interval until stop().
   * Several hosts have their health checks (start) and log their own changes instead.
   */
  watchReachability (): void {
    if (this.several) return
    const host = this.hosts[0]
    let reachable = true
    const check = async () => {
      const ok = await this.probe(host)
      if (ok === reachable) return
      reachable = ok
      if (ok) this.log.info({ upstream: host.name, url: host.url + host.basePath }, 'Ollama is reachable again')
      else this.log.warn({ upstream: host.name, url: host.url + host.basePath }, 'Ollama is unreachable: requests get 502 until it answers GET /api/version')
    }
    const timer = setInterval(() => { check().catch(ignoreFailure) }, this.settings.healthIntervalMs)
    timer.unref()
    this.timers.push(timer)
    check().catch(ignoreFailure)
  }

  async checkAll (): Promise<void> {
    await Promise.all(this.hosts.map(async host => {
      const ok = await this.probe(host)
      if (ok) {
        host.failures = 0
        host.passes++
        if (!host.healthy && host.passes >= this.settings.healthyThreshold) {
          host.healthy = true
          this.log.info({ upstream: host.name }, 'upstream healthy again')
          this.refresh(host).catch(ignoreFailure)
          this.dispatchQueue()
        }
      } else {
        host.passes = 0
        host.failures++
        if (host.healthy && host.failures >= this.settings.unhealthyThreshold) this.markDown(host, 'health check failed')
      }
    }))
  }

  async refreshAll (): Promise<void> {
    await Promise.all(this.hosts.filter(h => h.healthy).map(async h => { await this.refresh(h) }))
  }

  /** Re-reads which models a host has and which are loaded. */
  async refresh (host: Host): Promise<void> {
    const [tags, ps] = await Promise.all([this.readListing(host, '/api/tags'), this.readListing(host, '/api/ps')])
    if (tags !== undefined) host.models = namesOf(tags)
    if (ps !== undefined) host.loaded = namesOf(ps)
    this.dispatchQueue()
  }

  private async readListing (host: Host, path: string): Promise<unknown> {
    try {
      return await this.getJson(host, path)
    } catch (err) {
      this.log.warn({ upstream: host.name, reason: (err as Error).message }, 'could not read a model listing')
      return undefined
    }
  }

  /**
   * GET a JSON document from one host, asking for `identity` encoding: undefined when the host
   * cannot be reached or answers other than 200. Raises UnreadableAnswer when the answer is
   * compressed, larger than `maxBytes` (default MAX_LISTING_BYTES) or not JSON.
   */
  async getJson (host: Host, path: string, headers: Record<string, string> = {}, timeoutMs = PROBE_TIMEOUT_MS, maxBytes = MAX_LISTING_BYTES): Promise<unknown> {
    let answer: Dispatcher.ResponseData
    try {
      answer = await this.agent.request({ origin: host.url, path: host.basePath + path, method: 'GET', headers: withHostCredentials(host, { ...headers, 'accept-encoding': 'identity' }), signal: AbortSignal.timeout(timeoutMs) })
    } catch {
      return undefined
    }
    const { statusCode, headers: answerHeaders, body } = answer
    try {
      if (statusCode !== 200) {
        // undici's dump reads at most 128 KiB to keep the connection, else closes it.
        await body.dump()
        return undefined
      }
      const what = `the answer of ${host.name} to ${path.split('?')[0]}`
      assertIdentityEncoding(answerHeaders, what)
      const raw = await readBounded(body, maxBytes, what)
      try {
        return JSON.parse(raw.toString('utf8'))
      } catch {
        throw new UnreadableAnswer(`${what} is not JSON`)
      }
    } catch (err) {
      discard(body)
      if (err instanceof UnreadableAnswer) throw err
      return undefined
    }
  }

  async probe (host: Host): Promise<boolean> {
    try {
      const { statusCode, body } = await this.agent.request({ origin: host.url, path: host.basePath + '/api/version', method: 'GET', headers: withHostCredentials(host, {}), signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) })
      await body.dump()
      return statusCode === 200
    } catch {
      return false
    }
  }

  private take (host: Host): Host {
    host.inFlight++
    return host
  }

  private drop (waiter: Waiter): void {
    clearTimeout(waiter.timer)
    const index = this.queue.indexOf(waiter)
    if (index >= 0) this.queue.splice(index, 1)
  }

  private dispatchQueue (): void {
    for (let i = 0; i < this.queue.length;) {
      const waiter = this.queue[i]
      const host = this.pick(waiter.model, waiter.exclude)
      if (host === undefined) {
        i++
        continue
      }
      this.queue.splice(i, 1)
      clearTimeout(waiter.timer)
      waiter.resolve(this.take(host))
    }
  }
}

/**
 * Headers for a request the proxy itself makes to a host: the given ones plus the host's own
 * Basic credentials from its configured URL (a client's credentials never go upstream).
 */
export function withHostCredentials (host: Host, headers: Record<string, string>): Record<string, string> {
  return host.authorization === null ? headers : { ...headers, authorization: host.authorization }
}

function namesOf (document: unknown): Set<string> {
  const models = (document as { models?: Array<{ name?: string, model?: string }> } | undefined)?.models
  const names = new Set<string>()
  if (!Array.isArray(models)) return names
  for (const m of models) {
    const name = m.name ?? m.model
    if (typeof name === 'string') names.add(normaliseModel(name))
  }
  return names
}

/** Background refreshes log nothing on failure: the next health check tells the story. */
export function ignoreFailure (): void {}
