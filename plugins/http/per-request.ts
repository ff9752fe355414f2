import type { ServerResponse } from 'node:http'
import type { FastifyContextConfig, FastifyReply, FastifyRequest } from 'fastify'

const kRouteConfig = Symbol('routeConfig')
const kCloseListeners = Symbol('closeListeners')

type RouteConfig = FastifyContextConfig & { url?: string }
type RequestWithConfig = FastifyRequest & { [kRouteConfig]?: RouteConfig }
type ResponseWithListeners = ServerResponse & { [kCloseListeners]?: Array<() => void> }

/**
 * The route's `config` (the route table's fields plus Fastify's `url` and `method`), read once per
 * request. Fastify's `request.routeOptions` builds a new object on every read, and a generate
 * request reads its config in about ten places.
 */
export function routeConfigOf (request: FastifyRequest): RouteConfig {
  const cached = (request as RequestWithConfig)[kRouteConfig]
  if (cached !== undefined) return cached
  const config = request.routeOptions.config as RouteConfig
  ;(request as RequestWithConfig)[kRouteConfig] = config
  return config
}

/**
 * Calls `listener` once when the response closes (finished or not; see Node's `close` on
 * ServerResponse), after the listeners registered before it. One `close` listener per response
 * serves every caller, instead of one `once` wrapper each.
 */
export function onResponseClose (reply: FastifyReply, listener: () => void): void {
  const raw = reply.raw as ResponseWithListeners
  const listeners = raw[kCloseListeners]
  if (listeners !== undefined) {
    listeners.push(listener)
    return
  }
  raw[kCloseListeners] = [listener]
  raw.once('close', runCloseListeners)
}

function runCloseListeners (this: ResponseWithListeners): void {
  const listeners = this[kCloseListeners]!
  for (let i = 0; i < listeners.length; i++) listeners[i]()
}

/** Declares the per-request slots up front, so every request and response keeps one shape. */
export const perRequestSlots = { routeConfig: kRouteConfig, closeListeners: kCloseListeners } as const
