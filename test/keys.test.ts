import assert from 'node:assert/strict'
import { test } from 'node:test'
import authPlugin from '../plugins/auth/auth.js'
import { routeTable, type RouteSpec } from '../routes/route-table.js'
import { authWith, bearer, KEYS, namedKey, SCOPE_KEYS } from './fixtures/keys.js'
import { jsonOf, startStack } from './helper.js'
import { injectionOf, pluginHarness } from './plugin-harness.js'
import { sampleRequest, withHeaders } from './samples.js'

const namedKeys = authWith([
  SCOPE_KEYS.generate,
  SCOPE_KEYS['models:read'],
  SCOPE_KEYS['models:admin'],
  namedKey('limited', ['generate', 'models:read', 'models:admin'], { models: ['llama3.2*'] })
])

type Scope = 'generate' | 'models:read' | 'models:admin'

/**
 * The README's scope table, written out here rather than read from the route table: which
 * scopes open each Ollama path. Every scope may read model information (a key that may chat with
 * or manage a model must be able to see it); /sys/* aliases are for model admins only.
 */
const SCOPES_OF_PATH: Record<string, readonly Scope[]> = (() => {
  const every: Scope[] = ['generate', 'models:read', 'models:admin']
  const table: Record<string, readonly Scope[]> = {}
  for (const path of ['/api/version', '/api/status', '/api/tags', '/api/ps', '/api/show', '/v1/models', '/v1/models/:model']) table[path] = every
  for (const path of ['/api/chat', '/api/generate', '/api/embed', '/api/embeddings', '/v1/chat/completions', '/v1/completions',
    '/v1/embeddings', '/v1/responses', '/v1/audio/transcriptions', '/v1/messages']) table[path] = ['generate']
  for (const path of ['/api/pull', '/api/push', '/api/create', '/api/copy', '/api/delete', '/api/blobs/:digest', '/api/me',
    '/api/signout', '/api/user/keys/:key', '/api/experimental/web_search', '/api/experimental/web_fetch',
    '/api/experimental/model-recommendations']) table[path] = ['models:admin']
  return table
})()

function scopeOpens (spec: RouteSpec, scope: Scope): boolean {
  if (spec.access === 'public') return true
  if (spec.path.startsWith('/sys/')) return scope === 'models:admin'
  const scopes = SCOPES_OF_PATH[spec.path]
  assert.ok(scopes !== undefined, `${spec.path} is missing from the scope table`)
  return scopes.includes(scope)
}

test('scope matrix over the whole route table: each scope opens exactly its routes', async (t) => {
  const stack = await startStack(t, namedKeys)
  const scopeKeys = { generate: KEYS.gen, 'models:read': KEYS.reader, 'models:admin': KEYS.admin } as const
  for (const spec of routeTable) {
    for (const [scope, key] of Object.entries(scopeKeys) as Array<[Scope, string]>) {
      const { path, init } = sampleRequest(spec)
      const before = stack.fake.requests.length
      const response = await fetch(stack.url + path, withHeaders(init, bearer(key)))
      const text = await response.text()
      const label = `${spec.method} ${spec.path} with a ${scope} key`
      if (scopeOpens(spec, scope)) {
        // `/` is answered from the proxy's health checks; every other route reaches Ollama.
        assert.equal(stack.fake.requests.length, before + (spec.hosts === 'proxy' ? 0 : 1), `${label} reaches Ollama: ${response.status} ${text}`)
      } else {
        assert.equal(response.status, 401, `${label}: ${text}`)
        assert.equal(stack.fake.requests.length, before, label)
      }
    }
  }
})

test('a generate-only key with an allowlist sees and shows its models in both dialects, and only those', async (t) => {
  const stack = await startStack(t, authWith([namedKey('gen', ['generate'], { models: ['llama3.2*'] })], ['model']))
  const headers = bearer(KEYS.gen)
  const tags = await jsonOf(await fetch(`${stack.url}/api/tags`, { headers }))
  assert.deepEqual(tags.models.map((m: { name: string }) => m.name), ['llama3.2:latest'])
  const openai = await jsonOf(await fetch(`${stack.url}/v1/models`, { headers }))
  assert.deepEqual(openai.data.map((m: { id: string }) => m.id), ['llama3.2:latest'])
  const ps = await jsonOf(await fetch(`${stack.url}/api/ps`, { headers }))
  assert.ok(ps.models.every((m: { name: string }) => m.name.startsWith('llama3.2')))

  const show = await fetch(`${stack.url}/api/show`, { method: 'POST', headers, body: '{"model":"llama3.2"}' })
  assert.equal(show.status, 200, await show.text())
  const one = await fetch(`${stack.url}/v1/models/llama3.2`, { headers })
  assert.equal(one.status, 200, await one.text())
  const version = await fetch(`${stack.url}/api/version`, { headers })
  assert.equal(version.status, 200, await version.text())

  const before = stack.fake.requests.length
  const hidden = await fetch(`${stack.url}/api/show`, { method: 'POST', headers, body: '{"model":"qwen3:8b"}' })
  assert.equal(hidden.status, 403)
  await hidden.arrayBuffer()
  const hiddenOpenAi = await fetch(`${stack.url}/v1/models/qwen3:8b`, { headers })
  assert.equal(hiddenOpenAi.status, 403)
  assert.equal((await jsonOf(hiddenOpenAi)).error.type, 'permission_error')
  assert.equal(stack.fake.requests.length, before, 'a model outside the allowlist is never looked up')

  const pull = await fetch(`${stack.url}/api/pull`, { method: 'POST', headers, body: '{"model":"llama3.2"}' })
  assert.equal(pull.status, 401, 'reading is not managing')
  await pull.arrayBuffer()
})

/** The sample body with every model it names replaced. */
function withModel (spec: RouteSpec, model: string): { path: string, init: RequestInit } {
  const { path, init } = sampleRequest(spec)
  if (spec.modelAt === 'param') return { path: path.replace('llama3.2', encodeURIComponent(model)), init }
  if (spec.modelAt === 'multipart') return { path, init: { ...init, body: String(init.body).replace('whisper', model) } }
  const body = JSON.parse(String(init.body)) as Record<string, unknown>
  if (spec.modelAt === 'copy') body.destination = model
  else if ('name' in body) body.name = model
  else body.model = model
  return { path, init: { ...init, body: JSON.stringify(body) } }
}

test('a model allowlist applies on every route that names a model, in each dialect', async (t) => {
  const harness = await pluginHarness(t, { plugins: [authPlugin], routes: routeTable, config: namedKeys })
  const modelRoutes = routeTable.filter(r => r.modelAt !== undefined)
  assert.ok(modelRoutes.length >= 20)
  for (const spec of modelRoutes) {
    const label = `${spec.method} ${spec.path}`
    const allowed = withModel(spec, spec.modelAt === 'copy' ? 'llama3.2-backup' : 'LLAMA3.2:latest')
    let before = harness.reached.length
    const ok = await harness.app.inject(injectionOf(allowed.path, withHeaders(allowed.init, bearer(KEYS.limited))))
    assert.equal(harness.reached.length, before + 1, `${label} with an allowed model reaches the route (${ok.statusCode} ${ok.body})`)

    const refused = withModel(spec, 'qwen3:8b')
    before = harness.reached.length
    const response = await harness.app.inject(injectionOf(refused.path, withHeaders(refused.init, bearer(KEYS.limited))))
    assert.equal(response.statusCode, 403, label)
    const body = response.json()
    if (spec.path === '/v1/messages') assert.equal(body.error.type, 'permission_error')
    else if (spec.path.startsWith('/v1/')) assert.equal(body.error.type, 'permission_error')
    else assert.match(body.error, /may not use the model "qwen3:8b"/)
    assert.equal(harness.reached.length, before, `${label} with a refused model never reaches the route`)
  }
})

test('create checks the model it is made from, so a forbidden model cannot be copied in', async (t) => {
  const harness = await pluginHarness(t, { plugins: [authPlugin], routes: routeTable, config: namedKeys })
  const response = await harness.app.inject({ method: 'POST', url: '/api/create', headers: bearer(KEYS.limited), payload: JSON.stringify({ model: 'llama3.2-mine', from: 'qwen3:8b', stream: false }) })
  assert.equal(response.statusCode, 403)
  assert.match(response.json().error, /qwen3:8b/)
  assert.equal(harness.reached.length, 0)
})

test('listings show a key only its allowed models, with a correct Content-Length', async (t) => {
  const stack = await startStack(t, namedKeys)
  const tags = await fetch(`${stack.url}/api/tags`, { headers: bearer(KEYS.limited) })
  const tagsText = await tags.text()
  assert.equal(Number(tags.headers.get('content-length')), Buffer.byteLength(tagsText))
  assert.deepEqual(JSON.parse(tagsText).models.map((m: { name: string }) => m.name), ['llama3.2:latest'])
  const ps = await jsonOf(await fetch(`${stack.url}/api/ps`, { headers: bearer(KEYS.limited) }))
  assert.ok(ps.models.every((m: { name: string }) => m.name.startsWith('llama3.2')))
  const openai = await jsonOf(await fetch(`${stack.url}/v1/models`, { headers: bearer(KEYS.limited) }))
  assert.deepEqual(openai.data.map((m: { id: string }) => m.id), ['llama3.2:latest'])
  const unfiltered = await jsonOf(await fetch(`${stack.url}/api/tags`, { headers: bearer(KEYS.reader) }))
  assert.ok(unfiltered.models.length >= 4, 'a key without an allowlist sees everything')
  // HEAD tells how long the listing is: for a key with an allowlist, the filtered one's length.
  const head = await fetch(`${stack.url}/api/tags`, { method: 'HEAD', headers: bearer(KEYS.limited) })
  assert.equal(head.status, 200)
  assert.equal(Number(head.headers.get('content-length')), Buffer.byteLength(tagsText))
  const headAll = await fetch(`${stack.url}/api/tags`, { method: 'HEAD', headers: bearer(KEYS.reader) })
  assert.equal(Number(headAll.headers.get('content-length')), Buffer.byteLength(JSON.stringify(unfiltered)))
})
