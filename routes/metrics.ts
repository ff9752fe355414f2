import type { FastifyPluginAsync } from 'fastify'

/** Prometheus scrape endpoint, for model keys and metrics-only keys. */
const metrics: FastifyPluginAsync = async function metrics (scope) {
  scope.get('/metrics', { config: { access: 'metrics' } }, async function scrape (_request, reply) {
    reply.header('content-type', scope.metrics.registry.contentType)
    return await scope.metrics.registry.metrics()
  })
}

export default metrics
