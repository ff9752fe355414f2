import { ProxyError } from '../http/error-shapes.js'
import type { ApiKey } from '../auth/keys.js'
import { WINDOW_MS, windowStart, type WindowStore } from './key-limits.js'

/** The window counter of a key's tokens_per_minute. */
export const tokensKey = (keyName: string): string => `tpm:${keyName}`

/** Whole seconds (at least 1) until the current minute window turns. */
export function secondsLeft (now: number): number {
  return Math.max(1, Math.ceil((windowStart(now) + WINDOW_MS - now) / 1000))
}

export function limitHeaders (limit: number, remaining: number, reset: number): Record<string, string> {
  return { 'ratelimit-limit': String(limit), 'ratelimit-remaining': String(remaining), 'ratelimit-reset': String(reset) }
}

/**
 * The up-front token check: reads the key's current window (no body, no upstream call needed) and
 * raises ProxyError 429 with Retry-After and RateLimit-* headers when the key has already used
 * its `tokens_per_minute` in this window. Keys without a token limit pass without a store lookup.
 * A request that passes may still take the window past its limit: answers are charged after they
 * stream (see plugins/usage/accounting.ts), and the next request is refused.
 */
export async function refuseWhenTokensSpent (windows: WindowStore, key: { name: string, limits: Pick<ApiKey['limits'], 'tokensPerMinute'> }, now = Date.now()): Promise<void> {
  const limit = key.limits.tokensPerMinute
  if (limit === null) return
  const used = await windows.peek(tokensKey(key.name), now)
  if (used < limit) return
  const reset = secondsLeft(now)
  throw new ProxyError(429, `token limit exceeded: this key may use ${limit} tokens per minute; retry in ${reset} s`, { ...limitHeaders(limit, 0, reset), 'retry-after': String(reset) })
}

/** Adds `tokens` to the key's window of `now` (ms); never throws (a store failure is logged by `onError`). */
export function chargeTokenWindow (windows: WindowStore, keyName: string, tokens: number, now: number, onError: (err: unknown) => void): void {
  if (!(tokens > 0)) return
  Promise.resolve(windows.incr(tokensKey(keyName), tokens, now)).catch(onError)
}
