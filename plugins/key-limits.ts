/**
 * Per-key counters for limits that @fastify/rate-limit does not cover: tokens per minute
 * (known only after Ollama answers) and concurrent requests. Windows are fixed minutes.
 */
export interface TokenWindowStore {
  /** Tokens used in the current minute. */
  used (key: string, now: number): Promise<number> | number
  add (key: string, tokens: number, now: number): Promise<void> | void
}

export const WINDOW_MS = 60_000

export function windowStart (now: number): number {
  return now - (now % WINDOW_MS)
}

export class MemoryTokenWindows implements TokenWindowStore {
  private readonly windows = new Map<string, { start: number, used: number }>()

  used (key: string, now: number): number {
    const window = this.windows.get(key)
    return window !== undefined && window.start === windowStart(now) ? window.used : 0
  }

  add (key: string, tokens: number, now: number): void {
    const start = windowStart(now)
    const window = this.windows.get(key)
    if (window === undefined || window.start !== start) {
      this.windows.set(key, { start, used: tokens })
    } else {
      window.used += tokens
    }
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

  get total (): number {
    let sum = 0
    for (const value of this.inFlight.values()) sum += value
    return sum
  }
}
