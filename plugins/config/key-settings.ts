import { compilePattern } from '../auth/model-names.js'
import { fieldError } from './config-errors.js'
import type { KeyCapsConfig, NamedKeyConfig } from './config-schema.js'
import { keepAliveSeconds } from './durations.js'
import { expiryFromIso } from './iso-times.js'
import type { KeyCaps, NamedKeySettings } from './proxy-config.js'

function expiry (text: string, file: string, field: string): number {
  const ms = expiryFromIso(text)
  if (ms === undefined) throw fieldError(file, field, `expected an ISO 8601 date ("2027-06-30": valid through that day, UTC) or date and time ("2027-06-30T18:00:00Z"); got ${JSON.stringify(text)}`)
  return ms
}

function caps (config: KeyCapsConfig | undefined, file: string, field: string): KeyCaps {
  let keepAlive: number | null = null
  if (config?.keep_alive !== undefined) {
    const seconds = keepAliveSeconds(config.keep_alive)
    if (seconds === undefined || seconds <= 0 || seconds === Infinity) {
      throw fieldError(file, `${field}.keep_alive`, `expected a positive duration as Ollama reads keep_alive ("30m", "1h", "90s", or a number of seconds); got ${JSON.stringify(config.keep_alive)}`)
    }
    keepAlive = seconds
  }
  return { numCtx: config?.num_ctx ?? null, keepAliveSeconds: keepAlive, unload: config?.unload ?? true }
}

/**
 * The named keys as the proxy applies them (see NamedKeySettings). Throws ConfigError naming the
 * field: an allowlist entry that is neither a glob nor a model name Ollama accepts (the same
 * message at start, on reload and in the keys CLI), an expiry that is no ISO 8601 date, a
 * keep_alive cap that is no positive duration.
 */
export function resolveNamedKeys (keys: NamedKeyConfig[], file: string): NamedKeySettings[] {
  return keys.map((key, i) => {
    const field = `auth.keys.${i}`
    key.models?.forEach((entry, j) => {
      try {
        compilePattern(entry)
      } catch (err) {
        throw fieldError(file, `${field}.models.${j}`, (err as Error).message)
      }
    })
    const limits = key.limits ?? {}
    return {
      name: key.name,
      key: key.key,
      scopes: [...new Set(key.scopes)],
      models: key.models ?? null,
      limits: {
        requestsPerMinute: limits.requests_per_minute ?? null,
        tokensPerMinute: limits.tokens_per_minute ?? null,
        concurrent: limits.concurrent ?? null,
        tokensPerDay: limits.tokens_per_day ?? null,
        tokensPerMonth: limits.tokens_per_month ?? null,
        requestsPerDay: limits.requests_per_day ?? null,
        queued: limits.queued ?? null
      },
      caps: caps(key.caps, file, `${field}.caps`),
      expiresAt: key.expires_at === undefined ? null : expiry(key.expires_at, file, `${field}.expires_at`),
      weight: key.weight ?? 1,
      previousKeys: (key.previous_keys ?? []).map((previous, j) => ({
        key: previous.key,
        expiresAt: expiry(previous.expires_at, file, `${field}.previous_keys.${j}.expires_at`)
      }))
    }
  })
}
