// The key stage alone (plugins/auth/auth.ts), at the plugin level: a route's access, the ways a
// key is presented, keys refused in each dialect, and naming a host.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import authPlugin from '../plugins/auth/auth.js'
import { proxyRoutes, routeTable, type RouteSpec } from '../routes/route-table.js'
import { bareKey, bearer, KEYS, namedKey, TOKENS, xApiKey } from './fixtures/keys.js'
import { injectionOf, pluginHarness, tableRows } from './plugin-harness.js'
import { sampleRequest, withHeaders } from './samples.js'

type TokenName = 'none' | 'wrong' | 'generate' | 'model'

/** Which seed token may use a route, straight from the route's access in the table. */
function allowed (spec: RouteSpec, token: TokenName): boolean {
  switch (spec.access) {
    case 'public': return true
    case 'generate': return token === 'generate'
    case 'models:read': return token === 'generate' || token === 'model'
    default: return token === 'model'
  }
}

const headerFor: Record<TokenName, Record<string, string>> = {
  none: {},
  wrong: bearer(TOKENS.other),
  generate: bearer(TOKENS.generate),
  model: bareKey(TOKENS.model) // the seed's bare form
}

test('every route of the table lets in exactly the tokens its access allows', async (t) => {
  const harness = await pluginHarness(t, { plugins: [authPlugin], routes: routeTable })
  for (const spec of routeTable) {
    for (const token of ['none', 'wrong', 'generate', 'model'] as const) {
      const { path, init } = sampleRequest(spec)
      const before = harness.reached.length
      const response = await harness.app.inject(injectionOf(path, withHeaders(init, headerFor[token])))
      const label = `${spec.method} ${spec.path} with ${token} token`
      if (allowed(spec, token)) {
        assert.equal(response.statusCode, 200, `${label}: ${response.body}`)
        assert.equal(harness.reached.length, before + 1, `${label} reaches the route`)
      } else {
        assert.equal(response.statusCode, 401, `${label}: ${response.body}`)
        assert.equal(response.headers['www-authenticate'], 'Bearer, Basic realm="ollama-proxy", charset="UTF-8"', label)
        assert.equal(harness.reached.length, before, `${label} never reaches the route`)
        assert.match(String(response.headers['content-type']), /application\/json/)
        if (spec.method === 'HEAD') continue
        const body = response.json()
        if (spec.path.startsWith('/v1/messages')) assert.equal(body.error.type, 'authentication_error', label)
        else if (spec.path.startsWith('/v1/')) assert.equal(body.error.type, 'authentication_error', label)
        else assert.equal(typeof body.error, 'string', label)
      }
    }
  }
})

test('the key may come as Bearer (any case), bare, or x-api-key', async (t) => {
  const { app } = await pluginHarness(t, { plugins: [authPlugin], routes: tableRows('GET /api/tags') })
  // The literal shapes are the point here.
  for (const headers of [
    { authorization: `Bearer ${TOKENS.generate}` } as Record<string, string>,
    { authorization: `bearer ${TOKENS.generate}` },
    { authorization: `BEARER   ${TOKENS.generate}` },
    { authorization: TOKENS.generate },
    { 'x-api-key': TOKENS.generate }
  ]) {
    const response = await app.inject({ url: '/api/tags', headers })
    assert.equal(response.statusCode, 200, JSON.stringify(Object.keys(headers)))
  }
  for (const headers of [{ authorization: 'Bearer' } as Record<string, string>, { authorization: 'Bearer ' }, { authorization: `Basic ${TOKENS.generate}` }, { 'x-api-key': '' }]) {
    const response = await app.inject({ url: '/api/tags', headers })
    assert.equal(response.statusCode, 401, JSON.stringify(headers))
  }
})

test('tokens may be configured as sha256 digests, mixed with plaintext', async (t) => {
  const { createHash } = await import('node:crypto')
  const secret = 'hashed-secret-token-0123456789abcdef'
  const digest = 'sha256:' + createHash('sha256').update(secret).digest('hex')
  const { app } = await pluginHarness(t, { plugins: [authPlugin], routes: tableRows('GET /api/tags'), config: { auth: { generate_tokens: [digest, TOKENS.generate] } } })
  for (const token of [secret, TOKENS.generate]) {
    const response = await app.inject({ url: '/api/tags', headers: bearer(token) })
    assert.equal(response.statusCode, 200)
  }
  const response = await app.inject({ url: '/api/tags', headers: bearer(digest) })
  assert.equal(response.statusCode, 401, 'the digest itself is not a key')
})

/** The error message of an error body in any dialect. */
function messageOf (body: any): string {
  return typeof body.error === 'string' ? body.error : body.error.message
}

const DIALECTS = [
  { dialect: 'native', path: '/api/chat', body: { model: 'llama3.2', messages: [] } },
  { dialect: 'openai', path: '/v1/chat/completions', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] } },
  { dialect: 'anthropic', path: '/v1/messages', body: { model: 'llama3.2', max_tokens: 1, messages: [{ role: 'user', content: 'hi' }] } }
] as const

test('missing, invalid, ambiguous and expired keys are refused in each dialect, before the route runs and never echoed', async (t) => {
  const EXPIRES = Date.UTC(2030, 0, 1)
  let now = EXPIRES - 1
  const expiring = namedKey('app', ['generate'], { expires_at: '2029-12-31' })
  const harness = await pluginHarness(t, {
    plugins: [authPlugin],
    routes: tableRows('POST /api/chat', 'POST /v1/chat/completions', 'POST /v1/messages'),
    config: { auth: { keys: [expiring] } },
    clock: () => now
  })
  const refusals = [
    { what: 'missing', headers: {}, status: 401, message: /^missing API key: send "Authorization: Bearer <key>"$/ },
    { what: 'invalid', headers: bearer(TOKENS.other), status: 401, message: /^invalid API key$/ },
    { what: 'ambiguous', headers: { ...bearer(TOKENS.generate), ...xApiKey(TOKENS.model) }, status: 400, message: /^two different API keys were sent/ },
    { what: 'expired', headers: xApiKey(KEYS.app), status: 401, message: /^this key expired at 2030-01-01T00:00:00\.000Z$/ }
  ]
  const types: Record<number, string> = { 400: 'invalid_request_error', 401: 'authentication_error' }
  for (const { dialect, path, body } of DIALECTS) {
    now = EXPIRES - 1
    const live = await harness.app.inject({ method: 'POST', url: path, headers: xApiKey(KEYS.app), payload: body })
    assert.equal(live.statusCode, 200, `${dialect}: the key is good until it expires, with no reload`)
    now = EXPIRES
    for (const { what, headers, status, message } of refusals) {
      const before = harness.reached.length
      const response = await harness.app.inject({ method: 'POST', url: path, headers, payload: body })
      const label = `${what} key, ${dialect}`
      assert.equal(response.statusCode, status, `${label}: ${response.body}`)
      assert.equal(response.headers['www-authenticate'], status === 401 ? 'Bearer, Basic realm="ollama-proxy", charset="UTF-8"' : undefined, label)
      const answer = response.json()
      assert.match(messageOf(answer), message, label)
      if (dialect === 'native') assert.equal(typeof answer.error, 'string', label)
      else if (dialect === 'openai') assert.equal(answer.error.type, types[status], label)
      else assert.deepEqual([answer.type, answer.error.type], ['error', types[status]], label)
      for (const secret of [KEYS.app, TOKENS.other, TOKENS.generate, TOKENS.model]) assert.ok(!response.body.includes(secret), `${label}: no key in the answer`)
      assert.equal(harness.reached.length, before, `${label}: the route never runs`)
    }
  }
})

test('a key without the route\'s scope is refused naming the scope, and the exchange still names the key (for the log)', async (t) => {
  const harness = await pluginHarness(t, { plugins: [authPlugin], routes: [...tableRows('POST /api/pull'), proxyRoutes.metrics] })
  const pull = await harness.app.inject({ method: 'POST', url: '/api/pull', headers: bearer(TOKENS.generate), payload: { model: 'llama3.2' } })
  assert.equal(pull.statusCode, 401)
  assert.equal(pull.json().error, 'this key may not use this route (it needs the models:admin scope)')
  const metrics = await harness.app.inject({ url: '/metrics', headers: bearer(TOKENS.generate) })
  assert.equal(metrics.statusCode, 401)
  assert.match(metrics.json().error, /needs the metrics scope/)
  await harness.endedCount(2)
  assert.deepEqual(harness.ended.map(exchange => exchange.key?.kind), ['generate', 'generate'])
  assert.equal(harness.reached.length, 0)
})

test('naming a host (X-Ollama-Host, ?host=): models:admin and a configured name, checked before any body is read', async (t) => {
  const harness = await pluginHarness(t, {
    plugins: [authPlugin],
    routes: [...tableRows('POST /api/chat', 'GET /api/tags'), proxyRoutes.metrics],
    config: {
      auth: { keys: [namedKey('gen', ['generate']), namedKey('admin', ['generate', 'models:admin']), namedKey('reader', ['metrics'])] },
      service: { upstreams: [{ url: 'http://127.0.0.1:9', name: 'gpu0' }, { url: 'http://127.0.0.1:9', name: 'gpu1' }] }
    }
  })
  const chat = { model: 'llama3.2', messages: [] }
  const namings = [{ how: 'X-Ollama-Host', header: { 'x-ollama-host': 'gpu1' }, query: '' }, { how: '?host=', header: {}, query: '?host=gpu1' }]
  for (const { how, header, query } of namings) {
    const refused = await harness.app.inject({ method: 'POST', url: `/api/chat${query}`, headers: { ...bearer(KEYS.gen), ...header }, payload: chat })
    assert.equal(refused.statusCode, 403, how)
    assert.equal(refused.json().error, 'naming an Ollama host (X-Ollama-Host, ?host=) needs a key with the models:admin scope')
    const unknown = await harness.app.inject({ url: `/api/tags${query.replace('gpu1', 'gpu9')}`, headers: { ...bearer(KEYS.admin), ...(how === 'X-Ollama-Host' ? { 'x-ollama-host': 'gpu9' } : {}) } })
    assert.equal(unknown.statusCode, 404, how)
    assert.equal(unknown.json().error, 'no Ollama host named "gpu9"')
    const admin = await harness.app.inject({ method: 'POST', url: `/api/chat${query}`, headers: { ...bearer(KEYS.admin), ...header }, payload: chat })
    assert.equal(admin.statusCode, 200, `${how}: an admin key may name a configured host`)
  }
  // The proxy's own answers (hosts: 'proxy') go to no host: a name there is no routing.
  const metrics = await harness.app.inject({ url: '/metrics?host=gpu9', headers: { ...bearer(KEYS.reader), 'x-ollama-host': 'gpu9' } })
  assert.equal(metrics.statusCode, 200, metrics.body)
  assert.equal(harness.reached.length, 3)
})
