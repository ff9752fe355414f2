import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { ApiKey } from '../plugins/auth/keys.js'
import { isoTime } from '../plugins/config/iso-times.js'
import { sendError } from '../plugins/http/error-shapes.js'
import type { Exchange } from '../plugins/http/exchange.js'
import { shownModelName } from '../plugins/observability/access-line.js'
import { capsView, limitsView } from './key-view.js'
import { proxyRoutes } from './route-table.js'

/** Where one budget stands: used so far, its limit and what remains (null: no budget), and when it is whole again. */
interface BudgetView { used: number, limit: number | null, remaining: number | null, reset: string }

function budgetView (used: number, limit: number | null, endsAt: number): BudgetView {
  return { used, limit, remaining: limit === null ? null : Math.max(0, limit - used), reset: isoTime(endsAt) }
}

/**
 * GET /proxy/me: what a key may do and has used in the current day and month (every replica
 * together), for the key itself; nothing about other keys.
 */
function me (app: FastifyInstance, key: ApiKey): Record<string, unknown> {
  const settings = key.kind === 'named' ? app.config.auth.keys.find(k => k.name === key.name) : undefined
  const spent = app.usage.spentWithRunning(key.name)
  const { tokensPerDay, tokensPerMonth, requestsPerDay } = key.limits
  return {
    name: key.name,
    scopes: [...key.scopes].sort(),
    models: settings?.models ?? null,
    limits: limitsView(key.limits),
    caps: capsView(key.caps),
    expires_at: key.expiresAt === null ? null : isoTime(key.expiresAt),
    weight: key.weight,
    usage: {
      day: { tokens: budgetView(spent.dayTokens, tokensPerDay, spent.dayEndsAt), requests: budgetView(spent.dayRequests, requestsPerDay, spent.dayEndsAt) },
      month: { tokens: budgetView(spent.monthTokens, tokensPerMonth, spent.monthEndsAt), requests: budgetView(spent.monthRequests, null, spent.monthEndsAt) }
    }
  }
}

/** One request in flight to Ollama, for the admin page: who, what, where, for how long (ms). */
function inFlight (exchange: Exchange, now: number): Record<string, unknown> {
  return {
    id: exchange.request.id,
    key: exchange.key?.name ?? null,
    route: exchange.route?.path ?? null,
    model: exchange.model === undefined ? null : shownModelName(exchange.model),
    host: exchange.upstream?.host ?? null,
    waiting: exchange.upstream === undefined,
    elapsed_ms: Math.round(now - exchange.startedAt)
  }
}

/**
 * The proxy's own read API: `GET /proxy/me` (any key), `GET /proxy/usage` (usage:read: the
 * report of every key, `?since=7d|YYYY-MM-DD&until=&by=key,model,host,day`, the JSON of the
 * `usage` command), `GET /proxy/status` (keys:admin or usage:read: hosts and requests in flight).
 */
const proxyApi: FastifyPluginAsync = async function proxyApi (scope) {
  scope.get('/proxy/me', { config: { route: proxyRoutes.me } }, async function getMe (request) {
    return me(scope, request.exchange.key!)
  })

  scope.get('/proxy/usage', { config: { route: proxyRoutes.usage } }, async function getUsage (request, reply) {
    const query = request.query as Record<string, unknown>
    const text = (name: string) => typeof query[name] === 'string' ? query[name] as string : undefined
    // A parameter given twice arrives as a list: refused rather than read as absent (the default).
    const repeated = ['since', 'until', 'by'].find(name => Array.isArray(query[name]))
    if (repeated !== undefined) return sendError(request, reply, 400, `${repeated}: given more than once; give it once (by takes a comma-separated list)`)
    try {
      return await scope.usage.report({ since: text('since'), until: text('until'), by: text('by') })
    } catch (err) {
      if (err instanceof RangeError) return sendError(request, reply, 400, err.message)
      throw err
    }
  })

  scope.get('/proxy/status', { config: { route: proxyRoutes.status } }, async function getStatus () {
    const pool = scope.upstreams
    const queued = pool.scheduler.queuedPerHost()
    const now = performance.now()
    return {
      hosts: pool.hosts.map(host => ({
        name: host.name,
        healthy: host.healthy,
        version: host.version ?? null,
        models: host.models.size,
        loaded: [...host.loaded].sort(),
        in_flight: host.inFlight,
        max_concurrent: host.maxConcurrent,
        queued: queued.get(host.name) ?? 0
      })),
      requests: scope.openExchanges().filter(e => e.route !== undefined && e.route.hosts !== 'proxy').map(e => inFlight(e, now))
    }
  })
}

export default proxyApi
