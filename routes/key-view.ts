import type { FastifyInstance } from 'fastify'
import type { KeyCaps, KeyLimits, NamedKeySettings } from '../plugins/config/proxy-config.js'
import { isoTime } from '../plugins/config/iso-times.js'

/** A key's limits in the config file's names, the ones set only. */
export function limitsView (limits: KeyLimits): Record<string, number> {
  const names: Array<[keyof KeyLimits, string]> = [
    ['requestsPerMinute', 'requests_per_minute'], ['tokensPerMinute', 'tokens_per_minute'], ['concurrent', 'concurrent'],
    ['tokensPerDay', 'tokens_per_day'], ['tokensPerMonth', 'tokens_per_month'], ['requestsPerDay', 'requests_per_day'], ['queued', 'queued']
  ]
  const view: Record<string, number> = {}
  for (const [field, name] of names) {
    const value = limits[field]
    if (value !== null) view[name] = value
  }
  return view
}

/** A key's caps in the config file's names, the ones set only (keep_alive in seconds). */
export function capsView (caps: KeyCaps): Record<string, number | boolean> {
  const view: Record<string, number | boolean> = {}
  if (caps.numCtx !== null) view.num_ctx = caps.numCtx
  if (caps.keepAliveSeconds !== null) view.keep_alive = caps.keepAliveSeconds
  if (!caps.unload) view.unload = false
  return view
}

/**
 * What the key API and the admin page show of a named key: its settings in the config file's
 * names, when it was last used, and its usage today and this month. Never its secret or digest.
 */
export function describeKey (app: FastifyInstance, settings: NamedKeySettings, lastUsed: ReadonlyMap<string, number>): Record<string, unknown> {
  const usage = app.usage.keyUsage(settings.name)
  const used = lastUsed.get(settings.name)
  return {
    name: settings.name,
    scopes: settings.scopes,
    models: settings.models,
    limits: limitsView(settings.limits),
    caps: capsView(settings.caps),
    expires_at: settings.expiresAt === null ? null : isoTime(settings.expiresAt),
    weight: settings.weight,
    previous_keys_valid_until: settings.previousKeys.map(p => isoTime(p.expiresAt)),
    last_used: used === undefined ? null : isoTime(used),
    usage: { day: usage.day, month: usage.month }
  }
}
