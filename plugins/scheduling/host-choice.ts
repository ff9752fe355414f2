import { normaliseModel } from '../auth/model-names.js'

/**
 * One Ollama host as the scheduler sees it. The pool's Host fits as it is. The scheduler is the
 * only writer of `inFlight` (this replica's requests holding a slot there); the pool keeps
 * `healthy`, `models` and `loaded` current and calls the scheduler's hostsChanged() after a change.
 */
export interface SchedulingHost {
  readonly name: string
  /** Slots on the host; null = unlimited. */
  readonly maxConcurrent: number | null
  readonly healthy: boolean
  /** Normalised names of the models the host has, and of those loaded in memory. */
  readonly models: ReadonlySet<string>
  readonly loaded: ReadonlySet<string>
  inFlight: number
}

/** What a request asks of the host choice. */
export interface HostDemand {
  /** Normalised model name (plugins/auth/model-names.ts normaliseModel), if the route names one. */
  readonly model: string | undefined
  /** Host names not to use (hosts already tried). */
  readonly exclude: ReadonlySet<string>
  /** The one host to use (a host named by the client), if any. */
  readonly only: string | undefined
}

/** Hosts without max_concurrent count as this wide when comparing how busy hosts are. */
const UNBOUNDED_WIDTH = 64

/**
 * Indices of the hosts that may serve a demand: the healthy hosts (the named one only, when
 * `only` is set) not excluded; of those, the ones that have the model or have it loaded, when
 * any does. Empty when no healthy host is left. With one host, that host whatever its health
 * (unless excluded): nothing else could answer, and a failed connection is answered 502 anyway.
 */
export function candidateIndices (hosts: readonly SchedulingHost[], demand: HostDemand): number[] {
  const healthy: number[] = []
  for (let i = 0; i < hosts.length; i++) {
    const host = hosts[i]
    if ((!host.healthy && hosts.length > 1) || demand.exclude.has(host.name)) continue
    if (demand.only !== undefined && host.name !== demand.only) continue
    healthy.push(i)
  }
  const model = demand.model
  if (model === undefined) return healthy
  const having = healthy.filter(i => hosts[i].models.has(model) || hosts[i].loaded.has(model))
  return having.length > 0 ? having : healthy
}

const CACHE_LIMIT = 4096

/**
 * Requests grouped by the hosts that may serve them: a group is named by its candidate host
 * indices ("0,2"; "" = none). Answers are cached until forget() (a host's health or models changed).
 */
export class HostGroups<H extends SchedulingHost> {
  private readonly bySignature = new Map<string, string>()
  private readonly hostsByGroup = new Map<string, H[]>()
  private readonly modelNames = new Map<string, string>()

  constructor (private readonly hosts: readonly H[]) {}

  /**
   * The model name the choice compares (normaliseModel of the raw name, cached); undefined with
   * one host, where the model changes nothing and the name is not read.
   */
  modelOf (raw: string | undefined): string | undefined {
    if (raw === undefined || this.hosts.length === 1) return undefined
    let name = this.modelNames.get(raw)
    if (name === undefined) {
      if (this.modelNames.size >= CACHE_LIMIT) this.modelNames.clear()
      name = normaliseModel(raw)
      this.modelNames.set(raw, name)
    }
    return name
  }

  /** The group of a demand, from the hosts' state when first asked since forget(). */
  groupOf (demand: HostDemand): string {
    const excluded = demand.exclude.size === 0 ? '' : [...demand.exclude].sort().join('\u0000')
    const signature = `${demand.model ?? ''}\u0000${demand.only ?? ''}\u0000${excluded}`
    let group = this.bySignature.get(signature)
    if (group === undefined) {
      if (this.bySignature.size >= CACHE_LIMIT) this.bySignature.clear()
      group = candidateIndices(this.hosts, demand).join(',')
      this.bySignature.set(signature, group)
    }
    return group
  }

  /** The hosts of a group. */
  hostsOf (group: string): H[] {
    let hosts = this.hostsByGroup.get(group)
    if (hosts === undefined) {
      if (this.hostsByGroup.size >= CACHE_LIMIT) this.hostsByGroup.clear()
      hosts = group === '' ? [] : group.split(',').map(i => this.hosts[Number(i)])
      this.hostsByGroup.set(group, hosts)
    }
    return hosts
  }

  /** Drops the cached groups: the next groupOf() reads the hosts' state again. */
  forget (): void {
    this.bySignature.clear()
  }
}

/** The host has a slot free on this replica (its health was judged when it became a candidate). */
export function hasLocalSlot (host: SchedulingHost): boolean {
  return host.maxConcurrent === null || host.inFlight < host.maxConcurrent
}

/**
 * The best of `free` (not empty) for a model: one with the model loaded, then the least busy by
 * inFlight / maxConcurrent; equal hosts take turns, starting at `turn` modulo their number.
 */
export function bestHost<H extends SchedulingHost> (free: readonly H[], model: string | undefined, turn: number): H {
  const load = (h: H) => h.inFlight / (h.maxConcurrent ?? UNBOUNDED_WIDTH)
  const isLoaded = (h: H) => model !== undefined && h.loaded.has(model)
  const start = turn % free.length
  let best = free[start]
  for (let step = 1; step < free.length; step++) {
    const host = free[(start + step) % free.length]
    const hostLoaded = isLoaded(host)
    if (hostLoaded !== isLoaded(best)) {
      if (hostLoaded) best = host
    } else if (load(host) < load(best)) {
      best = host
    }
  }
  return best
}
