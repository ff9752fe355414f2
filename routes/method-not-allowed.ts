import type { FastifyPluginAsync } from 'fastify'
import { sendError } from '../plugins/http/error-shapes.js'
import { routeSpec } from '../plugins/http/route-spec.js'
import { proxyRoutes, routeTable } from './route-table.js'

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] as const

/**
 * A known path called with the wrong method gets 405 with `Allow`, before any body is read: Ollama's
 * routes and the proxy's own that are served (the admin page's only while it is on). Registered last.
 */
const methodNotAllowed: FastifyPluginAsync = async function methodNotAllowed (scope) {
  const allowed = new Map<string, Set<string>>()
  const served = Object.values(proxyRoutes).filter(spec => scope.hasRoute({ method: spec.method, url: spec.path }))
  for (const spec of [...routeTable, ...served]) {
    const methods = allowed.get(spec.path) ?? new Set<string>()
    methods.add(spec.method)
    allowed.set(spec.path, methods)
  }
  for (const [path, methods] of allowed) {
    const allow = [...methods].join(', ')
    const missing = METHODS.filter(m => !methods.has(m))
    if (missing.length === 0) continue
    scope.route({
      method: [...missing],
      url: path,
      // Answered before the key: a public row of its own for the path.
      config: { route: routeSpec({ method: 'GET', path, upstream: '', access: 'public', body: 'none', work: 'read', hosts: 'proxy' }) },
      onRequest: (request, reply) => {
        reply.header('allow', allow)
        sendError(request, reply, 405, `method ${request.method} not allowed on ${path}; use ${allow}`)
      },
      handler: async () => undefined
    })
  }
}

export default methodNotAllowed
