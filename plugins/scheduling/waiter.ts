import type { QueueNode } from './fair-queue.js'
import type { HostDemand, SchedulingHost } from './host-choice.js'
import type { SchedulingError } from './scheduling-error.js'
import type { Lease } from './slot-ledger.js'
import type { SlotGrant } from './slot-request.js'

/** One request waiting for a slot: its place in the fair queue, its demand, its promise's ends. */
export class Waiter<H extends SchedulingHost> implements QueueNode<Waiter<H>>, HostDemand {
  lane: unknown = undefined
  prev: Waiter<H> | undefined = undefined
  next: Waiter<H> | undefined = undefined
  state: 'waiting' | 'taking' | 'done' = 'waiting'
  timer: NodeJS.Timeout | undefined = undefined
  resolve: (grant: SlotGrant<H>) => void = ignore
  reject: (err: SchedulingError) => void = ignore

  constructor (
    readonly key: string,
    readonly weight: number,
    readonly seq: number,
    readonly model: string | undefined,
    readonly exclude: ReadonlySet<string>,
    readonly only: string | undefined,
    public group: string,
    readonly enqueuedAt: number,
    readonly signal: AbortSignal | undefined,
    private readonly onLeave: (waiter: Waiter<H>) => void
  ) {}

  /** The client left (the signal's 'abort'): the waiter is its own listener, no closure each. */
  handleEvent (): void {
    this.onLeave(this)
  }
}

/** A held slot; the first release() gives it back through `giveBack`. */
export class Grant<H extends SchedulingHost> implements SlotGrant<H> {
  private released = false

  constructor (readonly host: H, readonly waitedMs: number, private readonly lease: Lease | undefined, private readonly giveBack: (host: H, lease: Lease | undefined) => void) {}

  release (): boolean {
    if (this.released) return false
    this.released = true
    this.giveBack(this.host, this.lease)
    return true
  }
}

function ignore (): void {}
