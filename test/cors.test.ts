import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bearer, startStack, TOKENS } from './helper.js'

test('a preflight needs no key and allows Authorization, DELETE and the SDK headers', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/delete`, {
    method: 'OPTIONS',
    headers: { origin: 'http://app.example', 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization,content-type,x-stainless-os' }
  })
  assert.equal(response.status, 204)
  assert.equal(response.headers.get('access-control-allow-origin'), '*')
  assert.match(response.headers.get('access-control-allow-methods') ?? '', /DELETE/)
  const allowed = (response.headers.get('access-control-allow-headers') ?? '').toLowerCase()
  for (const header of ['authorization', 'content-type', 'x-stainless-os', 'x-api-key']) assert.ok(allowed.includes(header), header)
  assert.equal(stack.fake.requests.length, 0, 'Ollama never sees a preflight')
})

test('a 401 carries the CORS headers so the page can read it', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: { origin: 'http://app.example' }, body: '{}' })
  assert.equal(response.status, 401)
  assert.equal(response.headers.get('access-control-allow-origin'), '*')
  assert.match(response.headers.get('access-control-expose-headers') ?? '', /X-Request-Id/i)
})

test('with an origin allowlist, listed origins are echoed and others get no CORS grant', async (t) => {
  const stack = await startStack(t, { cors: { origins: ['http://allowed.example'] } })
  const allowed = await fetch(`${stack.url}/api/version`, { headers: { ...bearer(TOKENS.generate), origin: 'http://allowed.example' } })
  assert.equal(allowed.headers.get('access-control-allow-origin'), 'http://allowed.example')
  assert.match(allowed.headers.get('vary') ?? '', /Origin/i)
  await allowed.arrayBuffer()
  const refused = await fetch(`${stack.url}/api/version`, { headers: { ...bearer(TOKENS.generate), origin: 'http://other.example' } })
  assert.equal(refused.headers.get('access-control-allow-origin'), null)
  await refused.arrayBuffer()
  const preflight = await fetch(`${stack.url}/api/chat`, { method: 'OPTIONS', headers: { origin: 'http://other.example', 'access-control-request-method': 'POST' } })
  assert.equal(preflight.headers.get('access-control-allow-origin'), null)
  await preflight.arrayBuffer()
})
