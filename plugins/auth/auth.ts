import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { sendError } from '../http/error-shapes.js'
import { smallFieldsOf } from '../http/json-body.js'
import { capViolation } from '../limits/caps.js'
import { estimatePromptTokens } from '../usage/usage-meter.js'
import { modelAllowed } from './model-names.js'
import { modelsNamed, remoteHostNamed } from './model-fields.js'
import { identify, KeyRing, type ApiKey, type Identification, type KeyCaps } from './keys.js'
import type { RouteAccess } from '../http/route-spec.js'

/** A key whose caps limit nothing is not checked at all. */
function capsSomething (caps: KeyCaps | undefined): caps is KeyCaps {
  return caps !== undefined && (caps.numCtx !== null || caps.keepAliveSeconds !== null || !caps.unload)
}

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
  ambiguous: 'two different API keys were sent (in Authorization and x-api-key, or in two Authorization headers): send one'
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Valid keys; replaced as a whole when the config is reloaded. */
    keyRing: KeyRing
  }
}

/**
 * Who may do what: stages 2 and 5 of a request.
 * Stage 2, the key: a route's `access` (route table) must be met by the presented key; naming an
 * Ollama host (X-Ollama-Host, ?host=) needs `models:admin` and a configured name. Runs in
 * onRequest, before any body is read, so a wrong key never costs an upload.
 * Stage 5, policy, in preHandler (see checkPolicy).
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
    const identified = identify(this.keyRing, request.headers, undefined, request.raw.rawHeaders)
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

  // Stage 5, policy, once the body is read and validated: the models the request names (read the
  // way its Ollama handler reads them) must be on the key's allowlist, a model that would run on
  // another host (create's `remote_host`) is refused to a key with an allowlist, and what the
  // request asks of the GPU (keep_alive, options.num_ctx) must be within the key's caps (400
  // naming the cap and the largest value allowed; plugins/limits/caps.ts). Then the exchange keeps
  // what the later stages need of the body (the model, a prompt estimate, its small fields) and
  // lets go of the rest, so a long prompt or chat history is held once, as the forwarded bytes.
  fastify.addHook('preHandler', function checkPolicy (request: FastifyRequest, reply: FastifyReply, done) {
    const exchange = request.exchange
    const route = exchange.route
    const location = route?.modelAt
    if (location === undefined) {
      done()
      return
    }
    const view = request.body
    const models = modelsNamed(location, view, request.params)
    exchange.models = models
    exchange.model = models[0]?.name
    const allowlist = exchange.key?.models
    if (allowlist != null) {
      // A remote model runs wherever remote_host says (ollama.com included): no allowlist entry can vouch for that.
      if (remoteHostNamed(location, view) !== undefined) {
        sendError(request, reply, 403, 'this key may not create a model that runs on another host (remote_host)')
        return
      }
      const refused = models.find(model => !modelAllowed(allowlist, model.name, model.reading))
      if (refused !== undefined) {
        sendError(request, reply, 403, `this key may not use the model "${refused.name}"`)
        return
      }
    }
    const caps = exchange.key?.caps
    if (capsSomething(caps)) {
      const violation = capViolation(view, caps)
      if (violation !== undefined) {
        exchange.refusedBy = `caps.${violation.cap}`
        sendError(request, reply, 400, violation.message)
        return
      }
    }
    if (typeof view === 'object' && view !== null && route!.body === 'json') {
      if (route!.chargesTokens) exchange.promptEstimate = estimatePromptTokens(view)
      request.body = smallFieldsOf(view as Record<string, unknown>)
    }
    done()
  })
}, { name: 'auth', fastify: '5.x', dependencies: ['config', 'exchange'] })
