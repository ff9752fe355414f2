import type { FastifyInstance, RouteHandlerMethod, RouteOptions } from 'fastify'
import { acceptJsonBodies, acceptMultipartBodies, acceptRawBodies } from '../plugins/http/body.js'
import type { RouteSpec } from '../plugins/http/route-spec.js'
import { proxyHandler } from '../plugins/upstream/proxy.js'

function routeOptionsFor (spec: RouteSpec, handler: RouteHandlerMethod): RouteOptions {
  return {
    method: spec.method,
    url: spec.path,
    schema: {
      ...(spec.schema !== undefined ? { body: spec.schema } : {}),
      ...(spec.params !== undefined ? { params: spec.params } : {})
    },
    config: { route: spec },
    handler
  }
}

/**
 * Registers table rows in a scope, each with the body reader its `body` column names: the
 * scope's JSON reader keeps the bytes; raw-body rows live in a child context whose parser hands
 * the request stream on untouched; multipart rows get one that reads the model under a cap.
 * Every row is answered by `handler`: the forwarding pipeline unless a test gives its own.
 */
export async function registerRouteSpecs (scope: FastifyInstance, specs: readonly RouteSpec[], handler: RouteHandlerMethod = proxyHandler): Promise<void> {
  const { bodyLimit, uploadLimit } = scope.config.server
  acceptJsonBodies(scope, bodyLimit)
  for (const spec of specs.filter(s => s.body === 'json' || s.body === 'none')) scope.route(routeOptionsFor(spec, handler))

  const raw = specs.filter(s => s.body === 'raw')
  if (raw.length > 0) {
    await scope.register(async function rawBodyRoutes (child) {
      acceptRawBodies(child, uploadLimit)
      for (const spec of raw) child.route(routeOptionsFor(spec, handler))
    })
  }
  const multipart = specs.filter(s => s.body === 'multipart')
  if (multipart.length > 0) {
    await scope.register(async function multipartRoutes (child) {
      acceptMultipartBodies(child)
      for (const spec of multipart) child.route(routeOptionsFor(spec, handler))
    })
  }
}
