import type { ApiKey } from './keys.js'

/** How far ahead (ms) a coming expiry is warned about. */
export const EXPIRY_WARNING_MS = 7 * 24 * 60 * 60 * 1000
const DAY_MS = 24 * 60 * 60 * 1000

/** A key that expires within the warning window: its name and when (ms since the epoch). */
export interface ExpiringKey { name: string, expiresAt: number }

/**
 * Tells once a day which keys expire within 7 days. `due(keys, now)` returns them (soonest first)
 * the first time it is asked on a given day, or when the day has turned since the last answer,
 * and an empty list otherwise, so a caller that asks every hour warns once a day. Keys already
 * expired are left out (they are refused with 401 saying so).
 */
export class ExpiryWarnings {
  private lastDay: number | undefined

  due (keys: readonly ApiKey[], now: number): ExpiringKey[] {
    const day = Math.floor(now / DAY_MS)
    if (day === this.lastDay) return []
    this.lastDay = day
    return keys
      .filter((key): key is ApiKey & { expiresAt: number } => key.expiresAt !== null && key.expiresAt > now && key.expiresAt - now <= EXPIRY_WARNING_MS)
      .map(key => ({ name: key.name, expiresAt: key.expiresAt }))
      .sort((a, b) => a.expiresAt - b.expiresAt)
  }
}
