import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { addNamedKey, generateKey, openConfig, removeNamedKey, rotateNamedKey, saveConfig, updateNamedKey, type EditableConfig, type KeyChanges, type NewKey } from '../plugins/config/config-editor.js'
import { ConfigError, ConfigNotWritableError } from '../plugins/config/config-errors.js'
import { parseSpan } from '../plugins/config/durations.js'
import { isoTime } from '../plugins/config/iso-times.js'
import { acceptApiBodies } from '../plugins/http/body.js'
import { sendError } from '../plugins/http/error-shapes.js'
import { describeKey } from './key-view.js'
import { keySchemas } from './proxy-schemas.js'
import { proxyRoutes } from './route-table.js'

type NameParams = { name: string }

/**
 * The key API (README, "Key API"): list, mint, change, rotate and revoke named keys over HTTP.
 * Every change goes through the keys CLI's editor (comments and layout kept, the proxy's own
 * loader checks the result, one atomic rename), then the file is applied at once, so the file
 * stays the one source of truth. A read-only file or folder answers 409 saying how to mount it
 * writable, a file the proxy refuses (a hand edit the reload refused) 409 naming its field; a refused change (a name taken, an unknown scope, a bad date) 400 naming the field;
 * an unknown key 404.
 */
const keyApi: FastifyPluginAsync = async function keyApi (scope) {
  acceptApiBodies(scope)

  scope.get('/proxy/keys', { config: { route: proxyRoutes.listKeys } }, async function listKeys () {
    const lastUsed = await scope.usage.store.lastUsed()
    return { keys: scope.config.auth.keys.map(settings => describeKey(scope, settings, lastUsed)) }
  })

  scope.post('/proxy/keys', { config: { route: proxyRoutes.addKey }, schema: { body: keySchemas.newKey } }, async function addKey (request, reply) {
    const spec = request.body as NewKey
    const key = generateKey()
    if (!edit(scope, request, reply, editable => { addNamedKey(editable, spec, key, scope.clock()) })) return reply
    request.log.info({ key: spec.name }, 'key added through the key API')
    return await reply.code(201).send({ name: spec.name, key })
  })

  scope.patch('/proxy/keys/:name', { config: { route: proxyRoutes.updateKey }, schema: { params: keySchemas.nameParams, body: keySchemas.keyChanges } }, async function updateKey (request, reply) {
    const { name } = request.params as NameParams
    if (!edit(scope, request, reply, editable => { updateNamedKey(editable, name, request.body as KeyChanges, scope.clock()) })) return reply
    // Audited like add, rotate and revoke: a change of scopes can make a key as strong as keys:admin.
    const fields = Object.keys(keySchemas.keyChanges.properties).filter(field => Object.hasOwn(request.body as object, field)).sort()
    request.log.info({ key: name, fields }, 'key changed through the key API')
    const settings = scope.config.auth.keys.find(k => k.name === name)
    return settings === undefined ? reply : describeKey(scope, settings, await scope.usage.store.lastUsed())
  })

  scope.post('/proxy/keys/:name/rotate', { config: { route: proxyRoutes.rotateKey }, schema: { params: keySchemas.nameParams, body: keySchemas.rotation } }, async function rotateKey (request, reply) {
    const { name } = request.params as NameParams
    const { grace } = request.body as { grace?: string }
    const graceMs = grace === undefined ? 0 : parseSpan(grace)
    if (graceMs === undefined) return sendError(request, reply, 400, `grace: expected a span such as 24h or 7d (at most 36500d), got ${JSON.stringify(grace)}`)
    const key = generateKey()
    let previousValidUntil = 0
    if (!edit(scope, request, reply, editable => { previousValidUntil = rotateNamedKey(editable, name, key, graceMs, scope.clock()).previousValidUntil })) return reply
    request.log.info({ key: name }, 'key rotated through the key API')
    return { name, key, previous_key_valid_until: graceMs > 0 ? isoTime(previousValidUntil) : null }
  })

  scope.delete('/proxy/keys/:name', { config: { route: proxyRoutes.revokeKey }, schema: { params: keySchemas.nameParams } }, async function revokeKey (request, reply) {
    const { name } = request.params as NameParams
    if (!edit(scope, request, reply, editable => { removeNamedKey(editable, name) })) return reply
    request.log.info({ key: name }, 'key revoked through the key API')
    return { name, revoked: true }
  })
}

/**
 * Opens the config file, applies `change`, writes it and applies the new file at once. False when
 * it answered an error instead: 409 not writable, or the file on disk is one the proxy refuses
 * (naming its field as the file does), 404 no such key, 400 a refused change (the message names
 * the field as the request does, `limits.concurrent`, not the file's path).
 */
function edit (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, change: (editable: EditableConfig) => void): boolean {
  let editable: EditableConfig
  try {
    editable = openConfig(app.config.file)
  } catch (err) {
    // The file as it is now (a hand edit the reload refused, or no file): not the request's fault.
    if (!(err instanceof ConfigError)) throw err
    sendError(request, reply, 409, `the config file cannot be edited until it is fixed (the proxy keeps its last valid config): ${withoutFile(err)}`)
    return false
  }
  try {
    change(editable)
    saveConfig(editable)
  } catch (err) {
    if (err instanceof ConfigNotWritableError) {
      sendError(request, reply, 409, err.message)
      return false
    }
    if (err instanceof ConfigError) {
      const status = err.field === 'name' && /no key named/.test(err.message) ? 404 : 400
      sendError(request, reply, status, requestWording(err))
      return false
    }
    throw err
  }
  app.reloadConfig('key API')
  return true
}

/** A ConfigError's message without the file's path, which is not the API client's business. */
function withoutFile (err: ConfigError): string {
  return err.file !== undefined && err.message.startsWith(`${err.file}: `) ? err.message.slice(err.file.length + 2) : err.message
}

/** A ConfigError as the API client knows the fields: without the file, `auth.keys.3.limits` as `limits`. */
function requestWording (err: ConfigError): string {
  return withoutFile(err).replace(/^auth\.keys\.\d+\./, '')
}

export default keyApi
