import type { FastifyPluginAsync } from 'fastify'
import { routeTable } from './route-table.js'
import { registerRouteSpecs } from './register.js'

/** Inference (native, OpenAI, Anthropic) and the read-only routes UIs call before they chat. */
export const generationRoutes = routeTable.filter(r => r.access !== 'models:admin')

const generation: FastifyPluginAsync = async function generation (scope) {
  await registerRouteSpecs(scope, generationRoutes)
}

export default generation
