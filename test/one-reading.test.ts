import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import authPlugin from '../plugins/auth/auth.js'
import { routeTable, type RouteSpec } from '../routes/route-table.js'
import { authWith, bearer, KEYS, namedKey, TOKENS } from './fixtures/keys.js'
import { startStack } from './helper.js'
import { acceptedBodies } from './fixtures/ollama-accepted-bodies.js'
import { pluginHarness } from './plugin-harness.js'

const KEY: string = KEYS.limited
const limitedKey = authWith([namedKey('limited', ['generate', 'models:read', 'models:admin'], { models: ['llama3.2*'] })], ['generate', 'model'])
const ALLOWED = 'llama3.2'
const DENIED = 'qwen3:8b'

/** A body for the route naming only allowed models, as ordered JSON text with room for more keys. */
function baseFields (spec: RouteSpec): Array<[string, unknown]> {
  const extra: Record<string, Array<[string, unknown]>> = {
    '/api/chat': [['messages', [{ role: 'user', content: 'hi' }]], ['stream', false]],
    '/api/generate': [['prompt', 'hi'], ['stream', false]],
    '/v1/chat/completions': [['messages', [{ role: 'user', content: 'hi' }]]],
    '/v1/embeddings': [['input', 'hi']],
    '/v1/messages': [['max_tokens', 16], ['messages', [{ role: 'user', content: 'hi' }]]],
    '/api/pull': [['stream', false]],
    '/api/push': [['stream', false]],
    '/api/create': [['from', ALLOWED], ['stream', false]]
  }
  if (spec.modelAt === 'copy') return [['source', ALLOWED], ['destination', `${ALLOWED}-backup`]]
  return [['model', spec.modelAt === 'create' ? `${ALLOWED}-mine` : ALLOWED], ...(extra[spec.upstream] ?? [])]
}

const text = (fields: Array<[string, unknown]>) => '{' + fields.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',') + '}'

/** Keys that Go assigns to a model-naming field of the route, spelled so JSON.parse does not see them. */
function smuggled (spec: RouteSpec): Array<[string, unknown]> {
  switch (spec.modelAt) {
    case 'copy': return [['Source', DENIED], ['\u017fource', DENIED], ['DESTINATION', DENIED]]
    case 'create': return [['Model', DENIED], ['FROM', DENIED]]
    default: return [['Model', DENIED], ['MODEL', DENIED], ['mOdEl', DENIED]]
  }
}

const jsonModelRoutes = routeTable.filter(spec => spec.body === 'json' && spec.modelAt !== undefined)

async function send (url: string, spec: RouteSpec, body: string, token = KEY): Promise<{ status: number, text: string }> {
  const response = await fetch(url + spec.path, { method: spec.method, headers: { ...bearer(token), 'content-type': 'application/json' }, body })
  return { status: response.status, text: await response.text() }
}

/** The key, body and policy stages alone (no Ollama): `send` answers what reached the route, and how many did. */
async function stagesAlone (t: TestContext, config: Record<string, unknown> = limitedKey) {
  const harness = await pluginHarness(t, { plugins: [authPlugin], routes: routeTable, config })
  return {
    reached: () => harness.reached.length,
    send: async (spec: RouteSpec, body: string, token: string = KEY): Promise<{ status: number, text: string }> => {
      const response = await harness.app.inject({ method: spec.method, url: spec.path, headers: { ...bearer(token), 'content-type': 'application/json' }, payload: body })
      return { status: response.statusCode, text: response.body }
    }
  }
}

test('the allowlist applies to the model Ollama will run, on every model-naming JSON route', async (t) => {
  const stack = await startStack(t, limitedKey)
  assert.ok(jsonModelRoutes.length >= 15)
  for (const spec of jsonModelRoutes) {
    const label = `${spec.method} ${spec.path}`
    const base = baseFields(spec)
    const plain = await send(stack.url, spec, text(base))
    assert.notEqual(plain.status, 403, `${label} allows its plain body: ${plain.text}`)

    for (const [key, value] of smuggled(spec)) {
      const before = stack.fake.requests.length
      const attack = await send(stack.url, spec, text([...base, [key, value]]))
      assert.equal(attack.status, 403, `${label} with ${JSON.stringify(key)} last: ${attack.text}`)
      assert.match(attack.text, /qwen3/, label)
      assert.equal(stack.fake.requests.length, before, `${label} never reaches Ollama`)
    }

    // null leaves a string field as it was: the allowed model stays the one checked and run.
    const nulled = text([...base, [spec.modelAt === 'copy' ? 'source' : 'model', null]])
    // (The fake Ollama reads with JSON.parse, so its own answer may differ: only the forwarding counts.)
    const forwarded = stack.fake.requests.length
    const kept = await send(stack.url, spec, nulled)
    assert.equal(stack.fake.requests.length, forwarded + 1, `${label} forwards: ${kept.status} ${kept.text}`)
    assert.equal(stack.fake.last(spec.upstream)?.body.toString(), nulled, `${label} forwards the original bytes`)

    // ... and cannot clear a denied model either.
    if (spec.modelAt !== 'copy') {
      const denied = await send(stack.url, spec, text([...base.filter(([k]) => k !== 'model'), ['model', DENIED], ['model', null]]))
      assert.equal(denied.status, 403, `${label}: ${denied.text}`)
    }
  }
})

test('model or name: each handler\'s own preference decides the model checked', async (t) => {
  const { send } = await stagesAlone(t)
  for (const spec of jsonModelRoutes.filter(s => s.modelAt === 'body' || s.modelAt === 'create')) {
    const label = `${spec.method} ${spec.path}`
    const base = baseFields(spec).filter(([k]) => k !== 'model')
    const takesName = ['/api/show', '/api/pull', '/api/push', '/api/delete', '/api/create'].includes(spec.upstream)
    // Handlers with a Name field fall back to it when model is empty (cmp.Or); the others never read it.
    const emptyModel = await send(spec, text([['model', ''], ['name', DENIED], ...base]))
    assert.equal(emptyModel.status, takesName ? 403 : 400, `${label}: ${emptyModel.text}`)
    const nameOnly = await send(spec, text([['Name', DENIED], ...base]))
    assert.equal(nameOnly.status, takesName ? 403 : 400, `${label}: ${nameOnly.text}`)
    // A model present wins over name wherever both exist.
    const both = await send(spec, text([['model', spec.modelAt === 'create' ? `${ALLOWED}-mine` : ALLOWED], ['NAME', DENIED], ...base]))
    assert.notEqual(both.status, 403, `${label}: ${both.text}`)
  }
})

test('a repeated list field that Go would merge is refused with 400 naming it', async (t) => {
  const { send, reached } = await stagesAlone(t, {})
  const chat = routeTable.find(s => s.path === '/api/chat')!
  const result = await send(chat, '{"model":"llama3.2","messages":[{"role":"user","content":"a"}],"Messages":[{"role":"user"}]}', TOKENS.generate)
  assert.equal(result.status, 400)
  assert.match(result.text, /messages/)
  assert.equal(reached(), 0)
})

test('bodies Ollama accepts (its Go client, its OpenAPI examples, its tests) reach it byte-exact', async (t) => {
  const stack = await startStack(t)
  for (const { source, method = 'POST', path, body } of acceptedBodies) {
    const spec = routeTable.find(s => s.path === path && s.method === method)
    assert.ok(spec !== undefined, `${method} ${path} is a route`)
    const token = spec.access === 'models:admin' ? TOKENS.model : TOKENS.generate
    const before = stack.fake.requests.length
    const result = await send(stack.url, spec, body, token)
    assert.equal(stack.fake.requests.length, before + 1, `${source} reaches Ollama: ${result.status} ${result.text}`)
    assert.equal(stack.fake.last(path)?.body.toString(), body, source)
  }
})

test('on /v1 routes the exact key "model" is read too: Ollama\'s cloud passthrough sends it to ollama.com', async (t) => {
  // server/cloud_proxy.go extractModelField reads the body into a map (exact key, last wins) and
  // proxies a cloud model before the route's struct (case-folded keys) is ever decoded.
  const { send, reached } = await stagesAlone(t)
  for (const path of ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/messages']) {
    const spec = routeTable.find(s => s.path === path)!
    const rest = baseFields(spec).filter(([k]) => k !== 'model')
    for (const folded of ['Model', 'MODEL', 'mOdEl']) {
      const before = reached()
      const attack = await send(spec, text([['model', 'gpt-oss:20b-cloud'], [folded, ALLOWED], ...rest]))
      assert.equal(attack.status, 403, `${path} with "model" then ${JSON.stringify(folded)}: ${attack.text}`)
      assert.match(attack.text, /gpt-oss/)
      assert.equal(reached(), before, `${path} never reaches Ollama`)
    }
    // The two readings agree: nothing to refuse.
    const same = await send(spec, text([['model', ALLOWED], ['Model', ALLOWED], ...rest]))
    assert.notEqual(same.status, 403, `${path}: ${same.text}`)
  }
})

test('a key with an allowlist may not create a remote model (remote_host): it would run elsewhere, e.g. on ollama.com', async (t) => {
  // server/create.go: with `remote_host`, the new model forwards every request to that host
  // (signed as the server owner for ollama.com), whatever `from` names.
  const { send, reached } = await stagesAlone(t)
  const create = routeTable.find(s => s.path === '/api/create')!
  for (const key of ['remote_host', 'Remote_Host', 'REMOTE_HOST']) {
    const body = text([['model', `${ALLOWED}-mine`], ['from', ALLOWED], [key, 'https://ollama.com:443'], ['stream', false]])
    const attack = await send(create, body)
    assert.equal(attack.status, 403, `${key}: ${attack.text}`)
    assert.match(attack.text, /remote_host/)
  }
  assert.equal(reached(), 0)
  // A key without an allowlist may; null leaves the field unset.
  const admin = await send(create, text([['model', 'mine'], ['from', ALLOWED], ['remote_host', 'https://ollama.com:443'], ['stream', false]]), TOKENS.model)
  assert.notEqual(admin.status, 403, admin.text)
  const nulled = await send(create, text([['model', `${ALLOWED}-mine`], ['from', ALLOWED], ['remote_host', null], ['stream', false]]))
  assert.notEqual(nulled.status, 403, nulled.text)
})
