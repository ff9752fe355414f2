import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { acceptJsonBodies, acceptMultipartBodies, acceptRawBodies } from '../plugins/http/body.js'
import { upstreamPathFor, type RouteSpec } from './route-table.js'
import { routeConfigOf } from '../plugins/http/per-request.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    spec?: RouteSpec
  }
}

type Params = Record<string, string> | undefined

function proxyHandler (request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const spec = routeConfigOf(request).spec as RouteSpec
  reply.proxy(upstreamPathFor(spec, request.params as Params))
  return reply
}

function routeOptionsFor (spec: RouteSpec): RouteOptions {
  return {
    method: spec.method,
    url: spec.path,
    schema: {
      ...(spec.schema !== undefined ? { body: spec.schema } : {}),
      ...(spec.params !== undefined ? { params: spec.params } : {})
    },
    config: {
      access: spec.access,
      modelField: spec.model,
      goStruct: spec.reads,
      listing: spec.listing,
      rawBody: spec.body === 'raw',
      countsTokens: spec.access === 'generate' && spec.model === 'body',
      spec
    },
    handler: proxyHandler
  }
}

/**
 * Registers table rows in a scope. Raw-body rows live in a child context of their own, whose
 * parser hands the request stream on untouched while the scope's JSON parser keeps the bytes;
 * multipart rows (a model in a form) get a context whose parser reads the model under a cap.
 */
export async function registerRouteSpecs (scope: FastifyInstance, specs: readonly RouteSpec[]): Promise<void> {
  const { bodyLimit, uploadLimit } = scope.config.server
  acceptJsonBodies(scope, bodyLimit)
  for (const spec of specs.filter(s => s.body !== 'raw')) scope.route(routeOptionsFor(spec))

  const raw = specs.filter(s => s.body === 'raw' && s.model !== 'multipart')
  if (raw.length > 0) {
    await scope.register(async function rawBodyRoutes (child) {
      acceptRawBodies(child, uploadLimit)
      for (const spec of raw) child.route(routeOptionsFor(spec))
    })
  }
  const multipart = specs.filter(s => s.body === 'raw' && s.model === 'multipart')
  if (multipart.length > 0) {
    await scope.register(async function multipartRoutes (child) {
      acceptMultipartBodies(child)
      for (const spec of multipart) child.route(routeOptionsFor(spec))
    })
  }
}
