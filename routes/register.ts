import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { acceptJsonBodies, acceptRawBodies } from '../plugins/body.js'
import { upstreamPathFor, type RouteSpec } from './route-table.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    spec?: RouteSpec
  }
}

type Params = Record<string, string> | undefined

/** The models a request names, in the order Ollama reads them. */
export function modelsNamed (spec: RouteSpec, body: unknown, params: Params): string[] {
  const fields = (body ?? {}) as Record<string, unknown>
  const text = (value: unknown) => typeof value === 'string' && value !== '' ? [value] : []
  switch (spec.model) {
    case 'body': return text(fields.model).length > 0 ? text(fields.model) : text(fields.name)
    case 'copy': return [...text(fields.source), ...text(fields.destination)]
    case 'param': return text(params?.model)
    default: return []
  }
}

function proxyHandler (request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const spec = request.routeOptions.config.spec as RouteSpec
  const params = request.params as Params
  request.model = modelsNamed(spec, request.body, params)[0]
  return reply.forward(upstreamPathFor(spec, params))
}

export function routeOptionsFor (spec: RouteSpec): RouteOptions {
  return {
    method: spec.method,
    url: spec.path,
    schema: {
      ...(spec.schema !== undefined ? { body: spec.schema } : {}),
      ...(spec.params !== undefined ? { params: spec.params } : {})
    },
    config: { access: spec.access, spec },
    handler: proxyHandler
  }
}

/**
 * Registers table rows in a scope. Raw-body rows live in a child context of their own, whose
 * parser hands the request stream on untouched while the scope's JSON parser keeps the bytes.
 */
export async function registerRouteSpecs (scope: FastifyInstance, specs: readonly RouteSpec[]): Promise<void> {
  const { bodyLimit, uploadLimit } = scope.config.server
  acceptJsonBodies(scope, bodyLimit)
  for (const spec of specs.filter(s => s.body !== 'raw')) scope.route(routeOptionsFor(spec))

  const raw = specs.filter(s => s.body === 'raw')
  if (raw.length === 0) return
  await scope.register(async function rawBodyRoutes (child) {
    acceptRawBodies(child, uploadLimit)
    for (const spec of raw) child.route(routeOptionsFor(spec))
  })
}
