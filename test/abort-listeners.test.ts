import assert from 'node:assert/strict'
import { test } from 'node:test'
import { callListeners, withListener, withoutListener, type AbortListener, type AbortListeners } from '../plugins/http/abort-listeners.js'

test('abort listeners: functions and handleEvent objects, added and removed in any order, each called once in order', () => {
  const calls: string[] = []
  const a: AbortListener = () => { calls.push('a') }
  const b: AbortListener = { handleEvent: () => { calls.push('b') } }
  const c: AbortListener = () => { calls.push('c') }

  let listeners: AbortListeners
  listeners = withListener(listeners, a)
  assert.equal(listeners, a, 'one listener is kept as itself, no array')
  listeners = withListener(listeners, b)
  listeners = withListener(listeners, c)
  listeners = withoutListener(listeners, b)
  listeners = withoutListener(listeners, () => {})
  callListeners(listeners)
  assert.deepEqual(calls, ['a', 'c'])

  calls.length = 0
  let single: AbortListeners = withListener(undefined, b)
  single = withoutListener(single, a)
  assert.equal(single, b, 'removing another listener keeps the one there')
  single = withoutListener(single, b)
  assert.equal(single, undefined)
  callListeners(single)
  callListeners(b)
  assert.deepEqual(calls, ['b'])
})
