import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import authPlugin from '../plugins/auth/auth.js'
import admissionPlugin from '../plugins/http/admission.js'
import corsPlugin from '../plugins/http/cors.js'
import { routeTable } from '../routes/route-table.js'
import { bearer, TOKENS } from './fixtures/keys.js'
import { pluginHarness } from './plugin-harness.js'

/** CORS, admission and the key stage, in the app's order, over every route of the table (no Ollama). */
async function corsStages (t: TestContext, config: Record<string, unknown> = {}) {
  return await pluginHarness(t, { plugins: [corsPlugin, admissionPlugin, authPlugin], routes: routeTable, config })
}

test('a preflight needs no key and allows Authorization, DELETE and the SDK headers', async (t) => {
  const harness = await corsStages(t)
  const response = await harness.app.inject({
    method: 'OPTIONS',
    url: '/api/delete',
    headers: { origin: 'http://app.example', 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization,content-type,x-stainless-os,x-api-key' }
  })
  assert.equal(response.statusCode, 204)
  assert.equal(response.headers['access-control-allow-origin'], '*')
  assert.match(String(response.headers['access-control-allow-methods'] ?? ''), /DELETE/)
  const allowed = String(response.headers['access-control-allow-headers'] ?? '').toLowerCase()
  for (const header of ['authorization', 'content-type', 'x-stainless-os', 'x-api-key']) assert.ok(allowed.includes(header), header)
  assert.equal(harness.reached.length, 0, 'Ollama never sees a preflight')
})

// Ollama's own CORS list (server/routes.go GenerateRoutes at the referenced commit), the browser
// SDKs' headers (openai-node and anthropic-sdk-typescript in the browser) and the proxy's own.
const OLLAMA_ALLOWED = ['Authorization', 'Content-Type', 'User-Agent', 'Accept', 'X-Requested-With', 'OpenAI-Beta',
  'x-stainless-arch', 'x-stainless-async', 'x-stainless-custom-poll-interval', 'x-stainless-helper-method',
  'x-stainless-lang', 'x-stainless-os', 'x-stainless-package-version', 'x-stainless-poll-helper',
  'x-stainless-retry-count', 'x-stainless-runtime', 'x-stainless-runtime-version', 'x-stainless-timeout']
const SDK_HEADERS = ['x-api-key', 'anthropic-version', 'anthropic-beta', 'anthropic-dangerous-direct-browser-access',
  'x-stainless-stream-helper', 'x-stainless-helper', 'idempotency-key', 'openai-organization', 'openai-project', 'x-request-id']
const PROXY_HEADERS = ['X-Ollama-Host']

test('preflights allow every header Ollama allows, the SDKs send and the proxy reads, on every kind of route', async (t) => {
  const harness = await corsStages(t)
  const routes: Array<[string, string]> = [['/api/chat', 'POST'], ['/v1/chat/completions', 'POST'], ['/v1/messages', 'POST'], ['/api/tags', 'GET'], ['/api/delete', 'DELETE'], ['/api/pull', 'POST']]
  for (const [path, method] of routes) {
    for (const header of [...OLLAMA_ALLOWED, ...SDK_HEADERS, ...PROXY_HEADERS]) {
      const response = await harness.app.inject({
        method: 'OPTIONS',
        url: path,
        headers: { origin: 'http://app.example', 'access-control-request-method': method, 'access-control-request-headers': `${header.toLowerCase()},content-type` }
      })
      assert.equal(response.statusCode, 204, `${method} ${path} ${header}`)
      const allowed = String(response.headers['access-control-allow-headers'] ?? '').toLowerCase().split(',').map(h => h.trim())
      assert.ok(allowed.includes(header.toLowerCase()), `${method} ${path}: ${header} allowed (got ${allowed.join(',')})`)
      assert.match(String(response.headers['access-control-allow-methods'] ?? ''), new RegExp(method))
      assert.equal(response.headers['access-control-allow-credentials'], undefined, 'credentials are never allowed')
      assert.match(String(response.headers.vary ?? ''), /access-control-request-headers/i, 'caches keep preflights apart')
    }
  }
  // All of an Anthropic browser client's headers in one preflight, as Chromium sends them.
  const all = [...OLLAMA_ALLOWED, ...SDK_HEADERS, ...PROXY_HEADERS].map(h => h.toLowerCase()).sort().join(',')
  const response = await harness.app.inject({
    method: 'OPTIONS',
    url: '/v1/messages',
    headers: { origin: 'http://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': all }
  })
  assert.equal(response.statusCode, 204)
  assert.deepEqual(String(response.headers['access-control-allow-headers'] ?? '').split(',').map(h => h.trim()).sort(), all.split(','))
  assert.equal(harness.reached.length, 0, 'Ollama never sees a preflight')
})

test('a 401 carries the CORS headers so the page can read it', async (t) => {
  const { app } = await corsStages(t)
  const response = await app.inject({ method: 'POST', url: '/api/chat', headers: { origin: 'http://app.example' }, payload: '{}' })
  assert.equal(response.statusCode, 401)
  assert.equal(response.headers['access-control-allow-origin'], '*')
  assert.match(String(response.headers['access-control-expose-headers'] ?? ''), /X-Request-Id/i)
})

test('with an origin allowlist, listed origins are echoed and others get no CORS grant', async (t) => {
  const { app } = await corsStages(t, { cors: { origins: ['http://allowed.example'] } })
  const allowed = await app.inject({ url: '/api/version', headers: { ...bearer(TOKENS.generate), origin: 'http://allowed.example' } })
  assert.equal(allowed.statusCode, 200)
  assert.equal(allowed.headers['access-control-allow-origin'], 'http://allowed.example')
  assert.match(String(allowed.headers.vary ?? ''), /Origin/i)
  const refused = await app.inject({ url: '/api/version', headers: { ...bearer(TOKENS.generate), origin: 'http://other.example' } })
  assert.equal(refused.headers['access-control-allow-origin'], undefined)
  const preflight = await app.inject({ method: 'OPTIONS', url: '/api/chat', headers: { origin: 'http://other.example', 'access-control-request-method': 'POST' } })
  assert.equal(preflight.headers['access-control-allow-origin'], undefined)
})
