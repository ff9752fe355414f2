/** One held slot of a resource; release() gives it back the first time and does nothing after. */
export interface Lease {
  readonly resource: string
  /** True the first time, false after (the slot was already given back). */
  release (): boolean
}

/**
 * Where slots of shared resources (a host's max_concurrent, a key's concurrent limit) are
 * counted. RedisLeases counts them across all replicas, LocalSlots on this replica only.
 */
export interface SlotLedger {
  /**
   * Takes one of `limit` slots of `resource`: a Lease, or null when all `limit` are held.
   * Never rejects: a ledger that cannot reach its store counts on this replica instead.
   */
  take (resource: string, limit: number): Promise<Lease | null>
  /** Calls `listener` with a resource's name when one of its slots may have come free elsewhere; returns the unsubscribe. */
  onFreed (listener: (resource: string) => void): () => void
  /** How often (ms) a waiter blocked by slots held elsewhere looks again without a freed notice. */
  readonly pollIntervalMs: number
}

/** The ledger name of a host's slots (its max_concurrent). */
export function hostResource (hostName: string): string {
  return `host:${hostName}`
}

/** The ledger name of a key's slots (its `limits.concurrent`). */
export function keyResource (keyName: string): string {
  return `key:${keyName}`
}

/**
 * Slots counted in this process: one counter per resource, dropped at zero (memory follows the
 * resources in use). tryTake() answers at once; take() is the SlotLedger form of it.
 */
export class LocalSlots implements SlotLedger {
  readonly pollIntervalMs = Infinity
  private readonly held = new Map<string, number>()

  /** A Lease, or null when `limit` slots of `resource` are held here. */
  tryTake (resource: string, limit: number): Lease | null {
    const current = this.held.get(resource) ?? 0
    if (current >= limit) return null
    this.held.set(resource, current + 1)
    let released = false
    return {
      resource,
      release: () => {
        if (released) return false
        released = true
        this.drop(resource)
        return true
      }
    }
  }

  /** Counts a slot taken elsewhere (a shared store) so that a fallback to local counting sees it. */
  add (resource: string): void {
    this.held.set(resource, (this.held.get(resource) ?? 0) + 1)
  }

  /** Gives back one slot counted with add(). */
  drop (resource: string): void {
    const current = this.held.get(resource) ?? 0
    if (current <= 1) this.held.delete(resource)
    else this.held.set(resource, current - 1)
  }

  /** tryTake() as a SlotLedger. */
  async take (resource: string, limit: number): Promise<Lease | null> {
    return this.tryTake(resource, limit)
  }

  /** Slots of `resource` held here. */
  count (resource: string): number {
    return this.held.get(resource) ?? 0
  }

  /** Nothing is freed elsewhere: a no-op subscription. */
  onFreed (): () => void {
    return () => {}
  }
}
