import type { FastifyPluginAsync } from 'fastify'
import { sendError } from '../plugins/error-shapes.js'

/** Probes for orchestrators: no key, cheap enough to call every few seconds. */
const health: FastifyPluginAsync = async function health (scope) {
  scope.get('/healthz', { config: { access: 'public' } }, async () => ({ status: 'ok' }))

  scope.get('/readyz', { config: { access: 'public' } }, async function readyz (request, reply) {
    const hosts = await scope.probeUpstreams()
    const healthy = hosts.filter(ready => ready).length
    if (healthy === 0) return sendError(request, reply, 503, 'Ollama is not answering')
    return { status: 'ready', upstreams: { healthy, total: hosts.length } }
  })
}

export default health
