import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { sendError } from '../http/error-shapes.js'
import { modelAllowed } from './model-names.js'
import { modelsNamed, remoteHostNamed, type ModelField } from './model-fields.js'
import { identify, KeyRing, type Access, type ApiKey, type Identification } from './keys.js'
import { routeConfigOf } from '../http/per-request.js'

const CREDENTIAL_ERRORS: Record<Exclude<Extract<Identification, { error: string }>['error'], 'expired'>, string> = {
  missing: 'missing API key: send "Authorization: Bearer <key>"',
  invalid: 'invalid API key',
  ambiguous: 'two different API keys were sent (Authorization and x-api-key): send one'
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Valid keys; replaced as a whole when the config is reloaded. */
    keyRing: KeyRing
  }
  interface FastifyRequest {
    /** The key that authorised this request (undefined on public routes). */
    apiKey?: ApiKey
  }
  interface FastifyContextConfig {
    /** What a key needs to use this route; every route declares it in the route table. */
    access?: Access
    /** Where the request names its model(s), checked against the key's allowlist. */
    modelField?: ModelField
  }
}

/**
 * The one auth rule: a route's `access` (from the route table) must be among the scopes of the
 * presented key. Runs in onRequest, before any body is read, so a wrong key never costs an upload.
 */
export default fp(async function authPlugin (fastify) {
  fastify.decorate('keyRing', new KeyRing(fastify.config.auth))
  fastify.decorateRequest('apiKey', undefined)

  fastify.addHook('onRequest', function checkKey (request: FastifyRequest, reply: FastifyReply, done) {
    const access = routeConfigOf(request).access
    if (access === undefined || access === 'public') {
      done()
      return
    }
    const identified = identify(this.keyRing, request.headers)
    if ('error' in identified) {
      const message = identified.error === 'expired' ? `this key expired at ${new Date(identified.expiredAt).toISOString()}` : CREDENTIAL_ERRORS[identified.error]
      sendError(request, reply, identified.error === 'ambiguous' ? 400 : 401, message)
      return
    }
    const key = identified.key
    request.apiKey = key
    if (!key.scopes.has(access)) {
      sendError(request, reply, 401, `this key may not use this route (it needs the ${access} scope)`)
      return
    }
    done()
  })

  // The allowlist needs the parsed body, so it runs once the body is read and validated.
  fastify.addHook('preHandler', function checkModels (request, reply, done) {
    const field = routeConfigOf(request).modelField
    if (field === undefined) {
      done()
      return
    }
    const models = modelsNamed(field, request.body, request.params)
    request.model = models[0]?.name
    const allowlist = request.apiKey?.models
    if (allowlist != null) {
      // A remote model runs wherever remote_host says (ollama.com included): no allowlist entry can vouch for that.
      if (remoteHostNamed(field, request.body) !== undefined) {
        sendError(request, reply, 403, 'this key may not create a model that runs on another host (remote_host)')
        return
      }
      const refused = models.find(model => !modelAllowed(allowlist, model.name, model.reading))
      if (refused !== undefined) {
        sendError(request, reply, 403, `this key may not use the model "${refused.name}"`)
        return
      }
    }
    done()
  })
}, { name: 'auth', fastify: '5.x', dependencies: ['config', 'request-log'] })
