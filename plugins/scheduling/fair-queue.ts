import { IndexedHeap, type HeapItem } from './indexed-heap.js'

/** One waiting request: the caller's own object, with these fields for the queue. */
export interface QueueNode<N> {
  readonly key: string
  /** Share of the key: a positive integer. */
  readonly weight: number
  /** Arrival order: unique, growing. */
  readonly seq: number
  /** The queue's links, undefined while not queued; only the queue writes them. */
  lane: unknown
  prev: N | undefined
  next: N | undefined
}

interface Lane<N> extends HeapItem {
  readonly key: string
  readonly group: Group<N>
  head: N | undefined
  tail: N | undefined
  headStart: number
}

interface Group<N> {
  readonly id: string
  readonly lanes: Map<string, Lane<N>>
  readonly heap: IndexedHeap<Lane<N>>
  size: number
}

interface KeyShare<N> {
  /** Finish tag of the key's last served request. */
  finish: number
  waiting: number
  readonly lanes: Set<Lane<N>>
}

/** What serving a request changed, so that a slot that could not be had after all is undone. */
export interface ServiceRecord {
  readonly key: string
  readonly finishBefore: number
  readonly virtualBefore: number
  readonly start: number
  readonly finish: number
}

const SWEEP_EVERY = 1024

/**
 * Waiting requests in start-time fair queueing (SFQ, Goyal et al. 1996) over keys: each key is a
 * flow, each request costs one slot, a key of weight w pays 1/w of virtual time per slot. The
 * head of a key's queue carries the start tag max(virtual time, the key's finish tag), the finish
 * tag of a key is the start tag of its last served request plus 1/w, and the virtual time is the
 * largest start tag served. The next request served is the head with the smallest start tag
 * (ties: the older request), so a key that has had less service goes first, a key whose one
 * request has just arrived goes before a key with hundreds queued, and two keys that both wait
 * share the slots in the ratio of their weights. Queue order within a key is arrival order.
 *
 * Tags are computed when a request becomes the head of its key's queue (not on arrival), so a
 * request that leaves unserved (client gone, timeout) costs its key nothing.
 *
 * Requests are held in groups (the scheduler groups them by the set of hosts that can serve
 * them); each group has a binary heap of its keys' queues ("lanes"), so finding and serving the
 * next request of a group costs O(log k) in its waiting keys k.
 */
export class FairQueue<N extends QueueNode<N>> {
  private virtualTime = 0
  private readonly groups = new Map<string, Group<N>>()
  private readonly shares = new Map<string, KeyShare<N>>()
  private sinceSweep = 0
  private count = 0

  /** Waiting requests in all groups. */
  get size (): number {
    return this.count
  }

  /** Keys whose service is remembered (waiting ones and those served ahead of the clock). */
  get keysTracked (): number {
    return this.shares.size
  }

  /** Requests of `key` waiting, in all groups. */
  waitingOf (key: string): number {
    return this.shares.get(key)?.waiting ?? 0
  }

  /** Waiting requests per key, keys with none left out. */
  waitingPerKey (): Map<string, number> {
    const counts = new Map<string, number>()
    for (const [key, share] of this.shares) if (share.waiting > 0) counts.set(key, share.waiting)
    return counts
  }

  /** Requests waiting in one group. */
  groupSize (group: string): number {
    return this.groups.get(group)?.size ?? 0
  }

  /** Groups holding waiting requests. */
  groupIds (): IterableIterator<string> {
    return this.groups.keys()
  }

  /** Queues a request (not queued yet, its seq larger than any before) in `group`. */
  push (group: string, node: N): void {
    this.enterLane(group, node, false)
  }

  /** The next request of a group: the head with the smallest start tag, then the oldest. */
  peek (group: string): N | undefined {
    return this.groups.get(group)?.heap.peek()?.head
  }

  /** Start tag of a group's next request, for choosing between groups; Infinity when empty. */
  startOf (node: N): number {
    return laneOf(node)?.headStart ?? Infinity
  }

  /** Takes a request out without service (client gone, timeout); its key's place is kept. */
  remove (node: N): void {
    const lane = laneOf(node)
    if (lane === undefined) return
    this.leave(node)
    // The next request inherits the start tag: a request that never got a slot costs nothing.
    if (lane.head !== undefined) lane.group.heap.fix(lane)
    this.sweep()
  }

  /** Serves the head request `node` (from peek): charges its key one slot. */
  serve (node: N): ServiceRecord {
    const lane = laneOf(node)
    if (lane === undefined || lane.head !== node) throw new Error('only the head of a key\'s queue is served')
    const start = lane.headStart
    this.leave(node)
    const record = this.account(node.key, node.weight, start)
    if (lane.head !== undefined) {
      lane.headStart = Math.max(this.virtualTime, record.finish)
      lane.group.heap.fix(lane)
    }
    return record
  }

  /** Charges a key one slot for a request served without waiting. */
  charge (key: string, weight: number): ServiceRecord {
    return this.account(key, weight, Math.max(this.virtualTime, this.shareOf(key).finish))
  }

  /** Puts back a served request that got no slot after all, in its place, its charge undone (refund). */
  putBack (group: string, node: N, record: ServiceRecord): void {
    this.refund(record)
    this.enterLane(group, node, true)
    const lane = laneOf(node)!
    if (lane.head === node) {
      lane.headStart = record.start
      lane.group.heap.fix(lane)
    }
  }

  /** Undoes the charge of a slot that was never used, unless its key or the clock moved on since. */
  refund (record: ServiceRecord): void {
    const share = this.shares.get(record.key)
    if (share !== undefined && share.finish === record.finish) share.finish = record.finishBefore
    if (this.virtualTime === record.start && record.start > record.virtualBefore) this.virtualTime = record.virtualBefore
  }

  /** Every waiting request, oldest first. */
  nodes (): N[] {
    const nodes: N[] = []
    for (const group of this.groups.values()) {
      for (const lane of group.lanes.values()) {
        for (let node = lane.head; node !== undefined; node = node.next) nodes.push(node)
      }
    }
    return nodes.sort((a, b) => a.seq - b.seq)
  }

  /** Moves every waiting request `groupOf` gives it, keeping arrival order. */
  regroup (groupOf: (node: N) => string): void {
    const nodes = this.nodes()
    for (const share of this.shares.values()) {
      share.lanes.clear()
      share.waiting = 0
    }
    this.groups.clear()
    this.count = 0
    for (const node of nodes) {
      node.lane = node.prev = node.next = undefined
      this.enterLane(groupOf(node), node, false)
    }
  }

  /**
   * Links a node into its key's lane of a group in arrival order: a new request is the youngest
   * (found from the tail), a put-back one is among the oldest (found from the head).
   */
  private enterLane (groupId: string, node: N, fromHead: boolean): void {
    let group = this.groups.get(groupId)
    if (group === undefined) {
      group = { id: groupId, lanes: new Map(), heap: new IndexedHeap<Lane<N>>(before), size: 0 }
      this.groups.set(groupId, group)
    }
    const share = this.shareOf(node.key)
    let lane = group.lanes.get(node.key)
    if (lane === undefined) {
      lane = { key: node.key, group, head: undefined, tail: undefined, headStart: 0, heapIndex: -1 }
      group.lanes.set(node.key, lane)
      share.lanes.add(lane)
    }
    let after: N | undefined
    if (fromHead) {
      let first = lane.head
      while (first !== undefined && first.seq < node.seq) first = first.next
      after = first === undefined ? lane.tail : first.prev
    } else {
      after = lane.tail
      while (after !== undefined && after.seq > node.seq) after = after.prev
    }
    node.prev = after
    node.next = after === undefined ? lane.head : after.next
    if (node.next === undefined) lane.tail = node
    else node.next.prev = node
    if (after === undefined) lane.head = node
    else after.next = node
    node.lane = lane
    share.waiting++
    group.size++
    this.count++
    if (lane.heapIndex < 0) {
      lane.headStart = Math.max(this.virtualTime, share.finish)
      group.heap.insert(lane)
    }
  }

  /** Unlinks a node from its lane; an emptied lane leaves its group, an emptied group the queue. */
  private leave (node: N): void {
    const lane = laneOf(node)
    if (lane === undefined) throw new Error('the request is not queued')
    if (node.prev === undefined) lane.head = node.next
    else node.prev.next = node.next
    if (node.next === undefined) lane.tail = node.prev
    else node.next.prev = node.prev
    node.lane = node.prev = node.next = undefined
    this.count--
    lane.group.size--
    const share = this.shares.get(node.key)!
    share.waiting--
    if (lane.head === undefined) {
      lane.group.heap.remove(lane)
      lane.group.lanes.delete(lane.key)
      share.lanes.delete(lane)
      if (lane.group.size === 0) this.groups.delete(lane.group.id)
    }
  }

  /** Records one slot of service for a key; its other queues' heads cannot start before it. */
  private account (key: string, weight: number, start: number): ServiceRecord {
    const share = this.shareOf(key)
    const record = { key, finishBefore: share.finish, virtualBefore: this.virtualTime, start, finish: start + 1 / weight }
    share.finish = record.finish
    this.virtualTime = Math.max(this.virtualTime, start)
    for (const lane of share.lanes) {
      if (lane.headStart >= record.finish) continue
      lane.headStart = record.finish
      lane.group.heap.fix(lane)
    }
    this.sweep()
    return record
  }

  private shareOf (key: string): KeyShare<N> {
    let share = this.shares.get(key)
    if (share === undefined) {
      share = { finish: 0, waiting: 0, lanes: new Set() }
      this.shares.set(key, share)
    }
    return share
  }

  /** Forgets keys with nothing waiting and no service ahead of the clock, every max(SWEEP_EVERY, keys) calls. */
  private sweep (): void {
    if (++this.sinceSweep < Math.max(SWEEP_EVERY, this.shares.size)) return
    this.sinceSweep = 0
    for (const [key, share] of this.shares) {
      if (share.waiting === 0 && share.finish <= this.virtualTime) this.shares.delete(key)
    }
  }
}

function laneOf<N> (node: QueueNode<N>): Lane<N> | undefined {
  return node.lane as Lane<N> | undefined
}

function before<N extends QueueNode<N>> (a: Lane<N>, b: Lane<N>): boolean {
  return a.headStart < b.headStart || (a.headStart === b.headStart && a.head!.seq < b.head!.seq)
}
