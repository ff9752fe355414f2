import type { FastifyPluginAsync } from 'fastify'
import { proxyRoutes } from './route-table.js'

/** Prometheus scrape endpoint, for model keys and metrics-only keys. */
const metrics: FastifyPluginAsync = async function metrics (scope) {
  scope.get('/metrics', { config: { route: proxyRoutes.metrics } }, async function scrape (_request, reply) {
    const page = await scope.metrics.scrape()
    reply.header('content-type', page.contentType)
    return page.text
  })
}

export default metrics
