import type { Agent, Dispatcher } from 'undici'
import type { FastifyBaseLogger } from 'fastify'
import type { ProxyConfig } from '../config/config-loader.js'
import { normaliseModel } from '../auth/model-names.js'
import { discard, readBounded } from './bounded-read.js'
import { exposedAddresses, isLoopback, machineAddresses } from './exposure.js'
import { getJson, hostRequestHeaders, PROBE_TIMEOUT_MS } from './host-requests.js'
import type { Host, UpstreamPool } from './upstream-pool.js'

/** The proxy's own requests say who they are (Ollama's logs, and the tests' fake Ollama, tell them apart). */
const CHECK_HEADERS = { 'user-agent': 'ollama-proxy-check' }
/**
 * The first Ollama release whose token counts include cached prompt tokens in every runner
 * (ollama/ollama#16414, fixed in 0.30.1; the MLX runner until 0.17.5, and releases before 0.1.49,
 * counted only the tokens that missed the cache).
 */
export const MIN_COUNTING_VERSION = [0, 30, 1] as const

/**
 * What a health check saw: Ollama's version, or what stood in the way: no connection or answer
 * (`unreachable`, with the error code), or an answer other than 200 (`answered`, with a hint).
 */
export type ProbeResult =
  | { ok: true, version: string | undefined }
  | { ok: false, unreachable: true, reason: string }
  | { ok: false, unreachable: false, reason: string }

/** True for a version string below MIN_COUNTING_VERSION (`0.29.3`, `0.30.0-rc2`); false when unreadable. */
export function undercountsCachedTokens (version: string | undefined): boolean {
  const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version ?? '')
  if (match === null) return false
  const parts = match.slice(1, 4).map(Number)
  for (let i = 0; i < 3; i++) {
    if (parts[i] !== MIN_COUNTING_VERSION[i]) return parts[i] < MIN_COUNTING_VERSION[i]
  }
  return false
}

/**
 * Health checks and model lists of every host, one host or several alike: every
 * `health_interval` a `GET /api/version` (2 s timeout) per host, `unhealthy_threshold` failures in
 * a row take a host out, `healthy_threshold` passes put it back; every `refresh_interval` the
 * models each host has (`/api/tags`) and has loaded (`/api/ps`). They go through an agent of
 * their own, so they never wait behind client streams for a connection.
 */
export class HostHealth {
  private timers: NodeJS.Timeout[] = []
  private readonly warnedVersion = new Set<string>()
  private readonly lookedForExposure = new Set<string>()
  private firstCheck: Promise<void> | undefined

  constructor (
    private readonly pool: UpstreamPool,
    private readonly settings: ProxyConfig['service'],
    private readonly agent: Agent,
    private readonly log: FastifyBaseLogger
  ) {}

  start (): void {
    const check = () => { this.checkAll().catch(ignoreFailure) }
    const refresh = () => { this.refreshAll().catch(ignoreFailure) }
    this.timers = [setInterval(check, this.settings.healthIntervalMs), setInterval(refresh, this.settings.refreshIntervalMs)]
    for (const timer of this.timers) timer.unref()
    this.firstCheck = this.checkAll().catch(ignoreFailure)
    refresh()
  }

  /**
   * Resolves once the first round of health checks is done (at once after that, or when checks
   * were never started), so readiness right after start is known, not guessed. Every caller
   * shares the one round: probes never cost an upstream request of their own.
   */
  async checked (): Promise<void> {
    await this.firstCheck
  }

  stop (): void {
    for (const timer of this.timers) clearInterval(timer)
    this.timers = []
  }

  async checkAll (): Promise<void> {
    await Promise.all(this.pool.hosts.map(async host => {
      const result = await this.probe(host)
      if (result.ok) {
        host.version = result.version ?? host.version ?? 'unknown'
        this.warnOnOldVersion(host)
        this.warnWhenExposed(host)
        host.failures = 0
        host.passes++
        if (!host.healthy && host.passes >= this.settings.healthyThreshold) {
          host.healthy = true
          this.log.info({ upstream: host.name, url: host.url + host.basePath }, 'Ollama is reachable again')
          this.refresh(host).catch(ignoreFailure)
          this.pool.hostsChanged()
        }
        return
      }
      host.passes = 0
      host.failures++
      // A host never seen answering is judged by its first check: Ollama not running at start is told at once.
      if (host.healthy && (host.failures >= this.settings.unhealthyThreshold || host.version === undefined)) {
        host.healthy = false
        const what = result.unreachable ? `Ollama is unreachable (${result.reason})` : `Ollama answered its health check with ${result.reason}`
        const then = this.pool.several ? 'the host takes no requests until a check passes' : 'requests get 502 until it answers GET /api/version'
        this.log.warn({ upstream: host.name, url: host.url + host.basePath, reason: result.reason }, `${what}: ${then}`)
      }
    }))
  }

  async refreshAll (): Promise<void> {
    await Promise.all(this.pool.healthyHosts().map(async h => { await this.refresh(h) }))
  }

  /** Re-reads which models a host has and which are loaded. */
  async refresh (host: Host): Promise<void> {
    const [tags, ps] = await Promise.all([this.readListing(host, '/api/tags'), this.readListing(host, '/api/ps')])
    if (tags !== undefined) host.models = namesOf(tags)
    if (ps !== undefined) host.loaded = namesOf(ps)
    this.pool.hostsChanged()
  }

  /** `GET /api/version` on one host: its version, or why it failed (unreachable, or what it answered). */
  async probe (host: Host): Promise<ProbeResult> {
    let answer: Dispatcher.ResponseData
    try {
      answer = await this.agent.request({ origin: host.url, path: host.basePath + '/api/version', method: 'GET', headers: hostRequestHeaders(host, { ...CHECK_HEADERS, 'accept-encoding': 'identity' }), signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) })
    } catch (err) {
      const code = (err as { code?: string }).code
      return { ok: false, unreachable: true, reason: code === 'UND_ERR_ABORTED' || (err as Error).name === 'TimeoutError' ? `no answer within ${PROBE_TIMEOUT_MS / 1000} s` : code ?? (err as Error).name }
    }
    if (answer.statusCode !== 200) {
      await answer.body.dump()
      const hint = answer.statusCode === 401 || answer.statusCode === 403 ? ': a front before Ollama wants credentials (user:password@ in the URL, or headers)' : answer.statusCode === 404 ? ': is the URL\'s path right?' : ''
      return { ok: false, unreachable: false, reason: `${answer.statusCode}${hint}` }
    }
    try {
      const text = (await readBounded(answer.body, 64 * 1024, 'the version')).toString('utf8')
      const version = (JSON.parse(text) as { version?: unknown }).version
      return { ok: true, version: typeof version === 'string' ? version : undefined }
    } catch {
      discard(answer.body)
      return { ok: true, version: undefined }
    }
  }

  private async readListing (host: Host, path: string): Promise<unknown> {
    try {
      return await getJson(this.agent, host, path, CHECK_HEADERS)
    } catch (err) {
      this.log.warn({ upstream: host.name, reason: (err as Error).message }, 'could not read a model listing')
      return undefined
    }
  }

  /**
   * Once per host the proxy reaches on loopback: when the same Ollama also answers on an address
   * of this machine that others can reach, clients can bypass the proxy. Warn and say how to close it.
   */
  private warnWhenExposed (host: Host): void {
    if (this.lookedForExposure.has(host.name) || !isLoopback(new URL(host.url).hostname)) return
    this.lookedForExposure.add(host.name)
    exposedAddresses(this.agent, host, machineAddresses()).then(exposed => {
      if (exposed.length === 0) return
      this.log.warn({ upstream: host.name, exposed }, `Ollama also answers on ${exposed.join(', ')}, not only on the loopback address the proxy uses: clients can reach it there without a key. Make Ollama listen on loopback only (OLLAMA_HOST=127.0.0.1) and do not publish its port`)
    }, ignoreFailure)
  }

  private warnOnOldVersion (host: Host): void {
    if (!undercountsCachedTokens(host.version) || this.warnedVersion.has(host.name)) return
    this.warnedVersion.add(host.name)
    this.log.warn({ upstream: host.name, version: host.version, minimum: MIN_COUNTING_VERSION.join('.') }, `Ollama ${host.version} may leave cached prompt tokens out of its counts (they are exact from ${MIN_COUNTING_VERSION.join('.')} on): token limits and budgets may under-count`)
  }
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
