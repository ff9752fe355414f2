/**
 * Per-key counters in fixed one-minute windows: requests per minute and tokens per minute. The
 * store is in memory by default; with several replicas it lives in Redis (one limit for all).
 */
export interface WindowStore {
  /** Adds `amount` to the counter of the current window and returns the new total. */
  incr (key: string, amount: number, now: number): Promise<number> | number
  /** The counter of the current window. */
  peek (key: string, now: number): Promise<number> | number
  /** Cumulative token usage shared by all replicas (Redis only). */
  recordUsage? (keyName: string, model: string, promptTokens: number, completionTokens: number): void
  usageTotals? (): Promise<Array<{ key: string, model: string, kind: 'prompt' | 'completion', tokens: number }>>
}

export const WINDOW_MS = 60_000

export function windowStart (now: number): number {
  return now - (now % WINDOW_MS)
}

export class MemoryWindows implements WindowStore {
  private readonly windows = new Map<string, { start: number, count: number }>()

  peek (key: string, now: number): number {
    const window = this.windows.get(key)
    return window !== undefined && window.start === windowStart(now) ? window.count : 0
  }

  incr (key: string, amount: number, now: number): number {
    const start = windowStart(now)
    const window = this.windows.get(key)
    if (window === undefined || window.start !== start) {
      this.windows.set(key, { start, count: amount })
      return amount
    }
    window.count += amount
    return window.count
  }
}

/** In-flight requests per key; a slot is taken before forwarding and given back exactly once. */
export class ConcurrencySlots {
  private readonly inFlight = new Map<string, number>()

  tryTake (key: string, limit: number): boolean {
    const current = this.inFlight.get(key) ?? 0
    if (current >= limit) return false
    this.inFlight.set(key, current + 1)
    return true
  }

  release (key: string): void {
    const current = this.inFlight.get(key) ?? 0
    if (current <= 1) this.inFlight.delete(key)
    else this.inFlight.set(key, current - 1)
  }

  count (key: string): number {
    return this.inFlight.get(key) ?? 0
  }
}
