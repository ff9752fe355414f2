/** An item that knows its place in an IndexedHeap (-1 when in none). */
export interface HeapItem {
  heapIndex: number
}

/**
 * A binary min-heap whose items carry their own index, so an item whose order changed is moved
 * (fix) or taken out (remove) in O(log n) without a search. `before(a, b)` says a comes first.
 */
export class IndexedHeap<T extends HeapItem> {
  private readonly items: T[] = []

  constructor (private readonly before: (a: T, b: T) => boolean) {}

  get size (): number {
    return this.items.length
  }

  /** The first item, or undefined when empty. */
  peek (): T | undefined {
    return this.items[0]
  }

  /** Adds an item that is in no heap. */
  insert (item: T): void {
    item.heapIndex = this.items.length
    this.items.push(item)
    this.siftUp(item.heapIndex)
  }

  /** Takes an item out; an item in no heap is ignored. */
  remove (item: T): void {
    const index = item.heapIndex
    if (index < 0) return
    item.heapIndex = -1
    const last = this.items.pop()!
    if (index < this.items.length) {
      this.items[index] = last
      last.heapIndex = index
      this.fix(last)
    }
  }

  /** Restores the order after an item's key changed; an item in no heap is ignored. */
  fix (item: T): void {
    if (item.heapIndex < 0) return
    if (!this.siftUp(item.heapIndex)) this.siftDown(item.heapIndex)
  }

  private siftUp (start: number): boolean {
    const items = this.items
    const item = items[start]
    let index = start
    while (index > 0) {
      const parent = (index - 1) >> 1
      if (!this.before(item, items[parent])) break
      items[index] = items[parent]
      items[index].heapIndex = index
      index = parent
    }
    items[index] = item
    item.heapIndex = index
    return index !== start
  }

  private siftDown (start: number): void {
    const items = this.items
    const item = items[start]
    let index = start
    for (;;) {
      const left = 2 * index + 1
      if (left >= items.length) break
      const right = left + 1
      const child = right < items.length && this.before(items[right], items[left]) ? right : left
      if (!this.before(items[child], item)) break
      items[index] = items[child]
      items[index].heapIndex = index
      index = child
    }
    items[index] = item
    item.heapIndex = index
  }
}
