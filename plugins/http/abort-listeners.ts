/** A listener of an abort: a function, or an object with handleEvent (as EventTarget takes). */
export type AbortListener = (() => void) | { handleEvent: () => void }

/**
 * The listeners of one abort signal: none, one, or several. Most signals have one listener at a
 * time (the upstream call or the wait for a slot), so no array is made for them.
 */
export type AbortListeners = AbortListener | AbortListener[] | undefined

/** `listeners` with `listener` added (the array, when there is one, is changed in place). */
export function withListener (listeners: AbortListeners, listener: AbortListener): AbortListeners {
  if (listeners === undefined) return listener
  if (!Array.isArray(listeners)) return [listeners, listener]
  listeners.push(listener)
  return listeners
}

/** `listeners` without `listener` (the array, when there is one, is changed in place). */
export function withoutListener (listeners: AbortListeners, listener: AbortListener): AbortListeners {
  if (listeners === listener) return undefined
  if (Array.isArray(listeners)) {
    const at = listeners.indexOf(listener)
    if (at >= 0) listeners.splice(at, 1)
  }
  return listeners
}

/** Calls every listener once, in the order they were added. */
export function callListeners (listeners: AbortListeners): void {
  if (Array.isArray(listeners)) for (const listener of listeners) callListener(listener)
  else if (listeners !== undefined) callListener(listeners)
}

function callListener (listener: AbortListener): void {
  if (typeof listener === 'function') listener()
  else listener.handleEvent()
}
