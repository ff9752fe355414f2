import type { FastifyPluginAsync } from 'fastify'
import { sendError } from '../plugins/http/error-shapes.js'

/** Probes for orchestrators: no key, cheap enough to call every few seconds. */
const health: FastifyPluginAsync = async function health (scope) {
  scope.get('/healthz', { config: { access: 'public' } }, async () => ({ status: 'ok' }))

  scope.get('/readyz', { config: { access: 'public' } }, async function readyz (request, reply) {
    const pool = scope.upstreams
    const answers = await Promise.all(pool.hosts.map(async host => await pool.probe(host)))
    const hosts = pool.hosts.map((host, i) => ({ name: host.name, ready: answers[i], inFlight: host.inFlight }))
    const ready = hosts.filter(h => h.ready).length
    if (ready === 0) return sendError(request, reply, 503, 'Ollama is not answering')
    return { status: 'ready', upstreams: pool.several ? hosts : { healthy: ready, total: hosts.length } }
  })
}

export default health
