import type { FastifyPluginAsync } from 'fastify'
import { routeTable } from './route-table.js'
import { registerRouteSpecs } from './register.js'

/** Pull, push, create, copy, delete, blobs, account routes, and every /sys alias. */
export const modelManagementRoutes = routeTable.filter(r => r.access === 'models:admin')

const modelManagement: FastifyPluginAsync = async function modelManagement (scope) {
  await registerRouteSpecs(scope, modelManagementRoutes)
}

export default modelManagement
