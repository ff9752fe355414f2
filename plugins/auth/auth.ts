import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { sendError } from '../http/error-shapes.js'
import { identify, KeyRing, type ApiKey, type Identification } from './keys.js'
import type { RouteAccess } from '../http/route-spec.js'

/** Whether a key meets a route's access (never 'public': that needs no key). */
function allows (key: ApiKey, access: RouteAccess): boolean {
  if (access === 'any-key') return true
  if (typeof access === 'string') return key.scopes.has(access)
  return access.some(scope => key.scopes.has(scope))
}
import { namedHost } from './named-host.js'
import { ExpiryWarnings } from './expiry-warnings.js'

/** How often (ms) the keys are looked at for a coming expiry; the warning itself comes once a day. */
const EXPIRY_CHECK_MS = 60 * 60 * 1000

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
}

/**
 * Stage 2, the key: a route's `access` (route table) must be among the scopes of the presented
 * key; naming an Ollama host (X-Ollama-Host, ?host=) needs `models:admin` and a configured name. Runs in onRequest,
 * before any body is read, so a wrong key never costs an upload.
 */
export default fp(async function authPlugin (fastify) {
  fastify.decorate('keyRing', new KeyRing(fastify.config.auth, { clock: fastify.clock }))
  const hostNames = new Set(fastify.config.service.upstreams.map(u => u.name))

  const warnings = new ExpiryWarnings()
  const warnOfExpiries = () => {
    for (const { name, expiresAt } of warnings.due(fastify.keyRing.keys, fastify.clock())) {
      fastify.log.warn({ key: name, expiresAt: new Date(expiresAt).toISOString() }, `key "${name}" expires at ${new Date(expiresAt).toISOString()}, within 7 days: rotate it (ollama-proxy keys rotate ${name}) or move its expires_at`)
    }
  }
  let expiryTimer: NodeJS.Timeout | undefined
  fastify.addHook('onReady', async () => {
    warnOfExpiries()
    expiryTimer = setInterval(warnOfExpiries, EXPIRY_CHECK_MS)
    expiryTimer.unref()
  })
  fastify.addHook('onClose', async () => { clearInterval(expiryTimer) })

  fastify.addHook('onRequest', function checkKey (request: FastifyRequest, reply: FastifyReply, done) {
    const exchange = request.exchange
    const access = exchange.route?.access
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
    exchange.key = key
    if (!allows(key, access)) {
      sendError(request, reply, 401, `this key may not use this route (it needs ${typeof access === 'string' ? `the ${access} scope` : `one of the scopes ${access.join(', ')}`})`)
      return
    }
    const host = exchange.route!.hosts !== 'proxy' ? namedHost(request.headers, request.query) : undefined
    if (host !== undefined) {
      // Choosing a host overrides the routing policy: an admin act, refused before any body is read.
      if (!key.scopes.has('models:admin')) {
        sendError(request, reply, 403, 'naming an Ollama host (X-Ollama-Host, ?host=) needs a key with the models:admin scope')
        return
      }
      if (!hostNames.has(host)) {
        sendError(request, reply, 404, `no Ollama host named "${host}"`)
        return
      }
    }
    done()
  })
}, { name: 'auth', fastify: '5.x', dependencies: ['config', 'exchange'] })
