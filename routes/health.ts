import type { FastifyPluginAsync } from 'fastify'
import { sendError } from '../plugins/http/error-shapes.js'
import { proxyRoutes } from './route-table.js'

/**
 * Probes for orchestrators, and Ollama's own `GET /`: no key, answered from what the health
 * checks already know (no upstream call per probe), cheap enough to call every few seconds.
 */
const health: FastifyPluginAsync = async function health (scope) {
  const pool = scope.upstreams
  scope.get('/healthz', { config: { route: proxyRoutes.healthz } }, async () => ({ status: 'ok' }))

  scope.get('/readyz', { config: { route: proxyRoutes.readyz } }, async function readyz (request, reply) {
    await scope.hostHealth.checked()
    const queued = pool.scheduler.queuedPerHost()
    const hosts = pool.hosts.map(host => ({ name: host.name, ready: host.healthy, inFlight: host.inFlight, queued: queued.get(host.name) ?? 0 }))
    const ready = hosts.filter(h => h.ready).length
    if (ready === 0) return sendError(request, reply, 503, 'Ollama is not answering')
    return { status: 'ready', upstreams: pool.several ? hosts : { healthy: ready, total: hosts.length, queued: pool.queued } }
  })
}

export default health
