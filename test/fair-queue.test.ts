import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FairQueue, type QueueNode } from '../plugins/scheduling/fair-queue.js'

interface Item extends QueueNode<Item> {
  label: string
}

let seq = 0
const item = (key: string, label: string, weight = 1): Item => ({ key, weight, seq: seq++, label, lane: undefined, prev: undefined, next: undefined })

/** Serves the group's next request `count` times; returns their labels. */
function serveAll (queue: FairQueue<Item>, group: string, count = Infinity): string[] {
  const served: string[] = []
  for (let next = queue.peek(group); next !== undefined && served.length < count; next = queue.peek(group)) {
    queue.serve(next)
    served.push(next.label)
  }
  return served
}

test('a request that leaves unserved costs its key nothing: the next one keeps the place', () => {
  const queue = new FairQueue<Item>()
  const a = [item('a', 'a0'), item('a', 'a1'), item('a', 'a2')]
  for (const x of a) queue.push('g', x)
  queue.push('g', item('b', 'b0'))
  queue.push('g', item('b', 'b1'))
  queue.remove(a[0])
  queue.remove(a[1])
  assert.equal(queue.waitingOf('a'), 1)
  assert.deepEqual(serveAll(queue, 'g'), ['a2', 'b0', 'b1'], 'a2 inherits a0\'s start tag, before b0 by arrival')
})

test('a key served in one group is charged in its other groups too', () => {
  const queue = new FairQueue<Item>()
  queue.push('x', item('a', 'a-x0'))
  queue.push('y', item('a', 'a-y0'))
  queue.push('y', item('b', 'b-y0'))
  assert.deepEqual(serveAll(queue, 'x'), ['a-x0'])
  assert.deepEqual(serveAll(queue, 'y'), ['b-y0', 'a-y0'], 'b has had less service than a')
})

test('regroup moves requests keeping arrival order within each key', () => {
  const queue = new FairQueue<Item>()
  const items = [item('a', 'a0'), item('a', 'a1'), item('b', 'b0'), item('a', 'a2')]
  queue.push('x', items[0])
  queue.push('y', items[1])
  queue.push('x', items[2])
  queue.push('y', items[3])
  queue.regroup(() => 'z')
  assert.deepEqual([...queue.groupIds()], ['z'])
  assert.equal(queue.size, 4)
  assert.deepEqual(serveAll(queue, 'z'), ['a0', 'b0', 'a1', 'a2'])
  assert.equal(queue.size, 0)
  assert.deepEqual([...queue.groupIds()], [], 'an emptied group is dropped')
})

test('keys that wait for nothing and owe nothing are forgotten: memory follows the keys in use', () => {
  const queue = new FairQueue<Item>()
  for (let i = 0; i < 5000; i++) queue.charge(`once-${i}`, 1)
  assert.ok(queue.keysTracked <= 5000)
  // The clock moves past every one-off key's finish tag as another key keeps being served.
  for (let i = 0; i < 3000; i++) {
    queue.push('g', item('steady', `s${i}`))
    serveAll(queue, 'g')
  }
  assert.ok(queue.keysTracked < 10, `${queue.keysTracked} keys tracked`)
  const waiting = item('leaves', 'l0')
  queue.push('g', waiting)
  queue.remove(waiting)
  assert.equal(queue.waitingOf('leaves'), 0)
})
