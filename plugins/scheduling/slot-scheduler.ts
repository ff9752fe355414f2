import { FairQueue, type ServiceRecord } from './fair-queue.js'
import { bestHost, hasLocalSlot, HostGroups, type HostDemand, type SchedulingHost } from './host-choice.js'
import { SchedulingError } from './scheduling-error.js'
import { hostResource, type Lease } from './slot-ledger.js'
import type { SchedulerOptions, SchedulerSettings, SlotGrant, SlotRequest } from './slot-request.js'
import { Grant, Waiter } from './waiter.js'

export type { SchedulerOptions, SchedulerSettings, SlotGrant, SlotRequest }

const NO_HOSTS: ReadonlySet<string> = new Set()

/**
 * Gives requests slots on hosts (host.maxConcurrent; null = unlimited) and makes them wait when
 * no candidate host has one: the host is chosen as before (healthy hosts that have the model,
 * loaded first, least busy), the waiting order is fair across keys (fair-queue.ts: the key with
 * the least weighted service goes next, arrival order within a key). Waiters are grouped by the
 * set of hosts that may serve them; finding the next request costs O(g + log k) for g groups
 * (one with one host, or when every host has every model) and k waiting keys.
 * Bounds: `queued` per key (429), queueSize for all (503), queueTimeoutMs (504); a request
 * whose signal fires leaves at once (499); no healthy candidate host: 502. With a ledger, a
 * capped host's slot is also a lease shared with the other replicas (max_concurrent holds for
 * all of them together); the order of waiters is fair within this replica only.
 */
export class SlotScheduler<H extends SchedulingHost> {
  private readonly queue = new FairQueue<Waiter<H>>()
  private readonly groups: HostGroups<H>
  private readonly byResource = new Map<string, H>()
  /** Capped hosts whose last lease was refused (held elsewhere), and those with a take in flight. */
  private readonly heldElsewhere = new Set<H>()
  private readonly taking = new Map<H, Waiter<H>>()
  private readonly unsubscribe: () => void
  private readonly now: () => number
  private pollTimer: NodeJS.Timeout | undefined
  private seq = 0
  private turn = 0
  private pumping = false
  private pumpAgain = false
  private closed = false

  constructor (readonly hosts: readonly H[], private readonly settings: SchedulerSettings, private readonly options: SchedulerOptions = {}) {
    this.groups = new HostGroups(hosts)
    this.now = options.now ?? (() => performance.now())
    for (const host of hosts) this.byResource.set(hostResource(host.name), host)
    this.unsubscribe = options.ledger?.onFreed(resource => {
      const host = this.byResource.get(resource)
      if (host !== undefined && this.heldElsewhere.delete(host)) this.pump()
    }) ?? (() => {})
  }

  /** Requests waiting for a slot. */
  get waiting (): number {
    return this.queue.size
  }

  /** Waiting requests per host name; a request that several hosts could serve counts on each. */
  queuedPerHost (): Map<string, number> {
    const counts = new Map(this.hosts.map(h => [h.name, 0]))
    for (const group of this.queue.groupIds()) {
      const size = this.queue.groupSize(group)
      for (const host of this.groups.hostsOf(group)) counts.set(host.name, counts.get(host.name)! + size)
    }
    return counts
  }

  /** Waiting requests per key name (keys with none left out). */
  waitingPerKey (): Map<string, number> {
    return this.queue.waitingPerKey()
  }

  /**
   * A slot for one request, at once when a candidate host has one, else after waiting its turn.
   * Rejects with SchedulingError: 502 no healthy candidate host, 429 the key's `queued` bound,
   * 503 queue full or closed, 504 queue timeout, 499 the signal fired. Throws RangeError for a
   * weight that is not a positive integer or a negative `queued`.
   */
  acquire (request: SlotRequest): Promise<SlotGrant<H>> {
    try {
      return this.tryAcquire(request)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * A slot at once, without a promise, when a candidate host has one free here and nobody waits
   * for it (the common case); undefined when the request must wait (then call acquire()).
   * Throws as acquire() rejects.
   */
  grantNow (request: SlotRequest): SlotGrant<H> | undefined {
    const weight = request.weight ?? 1
    if (!Number.isSafeInteger(weight) || weight < 1) throw new RangeError(`weight must be a positive integer, got ${weight}`)
    if (this.closed) throw closing()
    const model = this.groups.modelOf(request.model)
    const group = this.groups.groupOf({ model, exclude: request.exclude ?? NO_HOSTS, only: request.only })
    const candidates = this.groups.hostsOf(group)
    if (candidates.length === 0) throw new SchedulingError('no-healthy-host', 'no healthy Ollama host')
    const freeNow = this.queue.groupSize(group) === 0 ? this.freeHost(candidates, model) : undefined
    if (freeNow === undefined || this.needsLease(freeNow)) return undefined
    this.queue.charge(request.key, weight)
    freeNow.inFlight++
    return new Grant(freeNow, 0, undefined, this.giveBack)
  }

  private tryAcquire (request: SlotRequest): Promise<SlotGrant<H>> {
    const weight = request.weight ?? 1
    if (!Number.isSafeInteger(weight) || weight < 1) throw new RangeError(`weight must be a positive integer, got ${weight}`)
    const queued = request.queued ?? null
    if (queued !== null && (!Number.isSafeInteger(queued) || queued < 0)) throw new RangeError(`queued must be a non-negative integer, got ${queued}`)
    if (this.closed) throw closing()
    if (request.signal?.aborted === true) throw clientLeft()
    const demand: HostDemand = { model: this.groups.modelOf(request.model), exclude: request.exclude ?? NO_HOSTS, only: request.only }
    const group = this.groups.groupOf(demand)
    const candidates = this.groups.hostsOf(group)
    if (candidates.length === 0) throw new SchedulingError('no-healthy-host', 'no healthy Ollama host')
    const freeNow = this.queue.groupSize(group) === 0 ? this.freeHost(candidates, demand.model) : undefined
    if (freeNow !== undefined && !this.needsLease(freeNow)) {
      this.queue.charge(request.key, weight)
      freeNow.inFlight++
      return Promise.resolve(new Grant(freeNow, 0, undefined, this.giveBack))
    }
    if (freeNow === undefined) {
      if (queued !== null && this.queue.waitingOf(request.key) >= queued) {
        throw new SchedulingError('key-queue-full', `this key already has ${queued} requests waiting for Ollama, the most it may queue`, { 'retry-after': '1' })
      }
      if (this.queue.size >= this.settings.queueSize) {
        throw new SchedulingError('queue-full', 'every Ollama host is busy and the queue is full', { 'retry-after': '1' })
      }
    }
    const waiter = new Waiter<H>(request.key, weight, this.seq++, demand.model, demand.exclude, demand.only, group, this.now(), request.signal, this.leave)
    const granted = new Promise<SlotGrant<H>>((resolve, reject) => {
      waiter.resolve = resolve
      waiter.reject = reject
    })
    this.queue.push(group, waiter)
    waiter.timer = setTimeout(this.expire, this.settings.queueTimeoutMs, waiter)
    request.signal?.addEventListener('abort', waiter, { once: true })
    this.pump()
    return granted
  }

  /** Call after a host's health, models or loaded models changed: waiters are regrouped and served. */
  hostsChanged (): void {
    this.groups.forget()
    const waiters = this.queue.nodes()
    if (waiters.some(w => this.groups.groupOf(w) !== w.group)) {
      for (const waiter of waiters) waiter.group = this.groups.groupOf(waiter)
      this.queue.regroup(waiter => waiter.group)
    }
    this.pump()
  }

  /** Refuses every waiting request (503) and all later ones; held slots are released as usual. */
  close (): void {
    this.closed = true
    this.unsubscribe()
    clearTimeout(this.pollTimer)
    for (const waiter of this.queue.nodes()) this.giveUp(waiter, closing())
    for (const waiter of this.taking.values()) this.giveUp(waiter, closing())
  }

  private readonly giveBack = (host: H, lease: Lease | undefined): void => {
    host.inFlight--
    lease?.release()
    this.heldElsewhere.delete(host)
    this.pump()
  }

  private readonly leave = (waiter: Waiter<H>): void => this.giveUp(waiter, clientLeft())

  private readonly expire = (waiter: Waiter<H>): void => {
    this.giveUp(waiter, new SchedulingError('queue-timeout', `no Ollama host was free within ${this.settings.queueTimeoutMs / 1000} s`))
  }

  private needsLease (host: H): boolean {
    return this.options.ledger !== undefined && host.maxConcurrent !== null
  }

  private freeHost (candidates: readonly H[], model: string | undefined): H | undefined {
    let first: H | undefined
    let several: H[] | undefined
    for (const host of candidates) {
      if (!hasLocalSlot(host) || this.heldElsewhere.has(host) || this.taking.has(host)) continue
      if (first === undefined) first = host
      else (several ??= [first]).push(host)
    }
    return several === undefined ? first : bestHost(several, model, this.turn++)
  }

  /** Serves waiters while a candidate host of theirs has a slot, the smallest start tag first. */
  private pump (): void {
    if (this.pumping) {
      this.pumpAgain = true
      return
    }
    this.pumping = true
    try {
      do {
        this.pumpAgain = false
        for (let next = this.next(); next !== undefined; next = this.next()) this.dispatch(next.waiter, next.host)
      } while (this.pumpAgain)
    } finally {
      this.pumping = false
    }
  }

  private next (): { waiter: Waiter<H>, host: H } | undefined {
    let best: { waiter: Waiter<H>, host: H } | undefined
    for (const group of this.queue.groupIds()) {
      const waiter = this.queue.peek(group)
      if (waiter === undefined) continue
      if (best !== undefined && !earlier(this.queue.startOf(waiter), waiter.seq, this.queue.startOf(best.waiter), best.waiter.seq)) continue
      const host = this.freeHost(this.groups.hostsOf(group), waiter.model)
      if (host !== undefined) best = { waiter, host }
    }
    return best
  }

  private dispatch (waiter: Waiter<H>, host: H): void {
    const record = this.queue.serve(waiter)
    host.inFlight++
    if (!this.needsLease(host)) {
      this.grant(waiter, host, undefined)
      return
    }
    waiter.state = 'taking'
    this.taking.set(host, waiter)
    this.options.ledger!.take(hostResource(host.name), host.maxConcurrent!).then(
      lease => this.taken(waiter, host, record, lease),
      () => this.taken(waiter, host, record, undefined)
    )
  }

  /** The ledger answered: a lease (or, on its failure, a local slot), or null when held elsewhere. */
  private taken (waiter: Waiter<H>, host: H, record: ServiceRecord, lease: Lease | null | undefined): void {
    this.taking.delete(host)
    if (lease === null || waiter.state !== 'taking') {
      host.inFlight--
      lease?.release()
      if (lease === null) {
        this.heldElsewhere.add(host)
        this.pollLater()
      }
      if (waiter.state === 'taking') {
        waiter.state = 'waiting'
        waiter.group = this.groups.groupOf(waiter)
        this.queue.putBack(waiter.group, waiter, record)
      } else {
        this.queue.refund(record)
      }
    } else {
      this.grant(waiter, host, lease)
    }
    this.pump()
  }

  private grant (waiter: Waiter<H>, host: H, lease: Lease | undefined): void {
    this.settle(waiter)
    waiter.resolve(new Grant(host, Math.max(0, this.now() - waiter.enqueuedAt), lease, this.giveBack))
  }

  private giveUp (waiter: Waiter<H>, err: SchedulingError): void {
    if (waiter.state === 'done') return
    if (waiter.state === 'waiting') this.queue.remove(waiter)
    this.settle(waiter)
    waiter.reject(err)
  }

  private settle (waiter: Waiter<H>): void {
    waiter.state = 'done'
    clearTimeout(waiter.timer)
    waiter.signal?.removeEventListener('abort', waiter)
  }

  /** Slots held elsewhere free without a notice when a replica dies: look again after a while. */
  private pollLater (): void {
    if (this.pollTimer !== undefined || this.closed) return
    const interval = this.options.ledger?.pollIntervalMs ?? Infinity
    if (!Number.isFinite(interval)) return
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined
      this.heldElsewhere.clear()
      this.pump()
    }, interval)
    this.pollTimer.unref()
  }
}

function closing (): SchedulingError {
  return new SchedulingError('closed', 'the proxy is shutting down', { 'retry-after': '1' })
}

function clientLeft (): SchedulingError {
  return new SchedulingError('client-left', 'client left while queued')
}

function earlier (startA: number, seqA: number, startB: number, seqB: number): boolean {
  return startA < startB || (startA === startB && seqA < seqB)
}
