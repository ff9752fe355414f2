import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { sendError } from '../http/error-shapes.js'
import { modelAllowed } from './model-names.js'
import { modelsNamed, remoteHostNamed } from './model-fields.js'
import { smallFieldsOf } from '../http/json-body.js'
import { estimatePromptTokens } from '../usage/usage-meter.js'
import { capViolation } from '../limits/caps.js'
import type { KeyCaps } from './keys.js'

/** A key whose caps limit nothing is not checked at all. */
function capsSomething (caps: KeyCaps | undefined): caps is KeyCaps {
  return caps !== undefined && (caps.numCtx !== null || caps.keepAliveSeconds !== null || !caps.unload)
}

/**
 * Stage 5, policy, once the body is read and validated: the models the request names (read the
 * way its Ollama handler reads them) must be on the key's allowlist, a model that would run on
 * another host (create's `remote_host`) is refused to a key with an allowlist, and what the
 * request asks of the GPU (keep_alive, options.num_ctx) must be within the key's caps (400 naming
 * the cap and the largest value allowed; plugins/limits/caps.ts). Then the exchange
 * keeps what the later stages need of the body (the model, a prompt estimate, its small fields)
 * and lets go of the rest, so a long prompt or chat history is held once, as the forwarded bytes.
 */
export default fp(async function policyPlugin (fastify) {
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
}, { name: 'policy', fastify: '5.x', dependencies: ['auth', 'exchange'] })
