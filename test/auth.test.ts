import assert from 'node:assert/strict'
import { test } from 'node:test'
import { routeTable, type RouteSpec } from '../routes/route-table.js'
import { startStack, TOKENS } from './helper.js'
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
  wrong: { authorization: `Bearer ${TOKENS.other}` },
  generate: { authorization: `Bearer ${TOKENS.generate}` },
  model: { authorization: TOKENS.model } // the seed's bare form
}

test('every route of the table lets in exactly the tokens its access allows', async (t) => {
  const stack = await startStack(t)
  for (const spec of routeTable) {
    for (const token of ['none', 'wrong', 'generate', 'model'] as const) {
      const { path, init } = sampleRequest(spec)
      const before = stack.fake.requests.length
      const response = await fetch(stack.url + path, withHeaders(init, headerFor[token]))
      const text = await response.text()
      const label = `${spec.method} ${spec.path} with ${token} token`
      if (allowed(spec, token)) {
        // Ollama may answer 401 itself (/api/me when the server is signed out), never the proxy.
        assert.ok(response.status !== 401 || text.includes('signin_url'), `${label}: ${text}`)
        // `/` is answered from the proxy's health checks; every other route reaches Ollama.
        assert.equal(stack.fake.requests.length, before + (spec.hosts === 'proxy' ? 0 : 1), `${label} reaches Ollama`)
      } else {
        assert.equal(response.status, 401, `${label}: ${text}`)
        assert.equal(response.headers.get('www-authenticate'), 'Bearer, Basic realm="ollama-proxy", charset="UTF-8"', label)
        assert.equal(stack.fake.requests.length, before, `${label} never reaches Ollama`)
        assert.match(response.headers.get('content-type') ?? '', /application\/json/)
        if (spec.method === 'HEAD') continue
        const body = JSON.parse(text)
        if (spec.path.startsWith('/v1/messages')) assert.equal(body.error.type, 'authentication_error', label)
        else if (spec.path.startsWith('/v1/')) assert.equal(body.error.type, 'authentication_error', label)
        else assert.equal(typeof body.error, 'string', label)
      }
    }
  }
})

test('the key may come as Bearer (any case), bare, or x-api-key', async (t) => {
  const stack = await startStack(t)
  for (const headers of [
    { authorization: `Bearer ${TOKENS.generate}` } as Record<string, string>,
    { authorization: `bearer ${TOKENS.generate}` },
    { authorization: `BEARER   ${TOKENS.generate}` },
    { authorization: TOKENS.generate },
    { 'x-api-key': TOKENS.generate }
  ]) {
    const response = await fetch(`${stack.url}/api/tags`, { headers })
    assert.equal(response.status, 200, JSON.stringify(Object.keys(headers)))
    await response.arrayBuffer()
  }
  for (const headers of [{ authorization: 'Bearer' } as Record<string, string>, { authorization: 'Bearer ' }, { authorization: `Basic ${TOKENS.generate}` }, { 'x-api-key': '' }]) {
    const response = await fetch(`${stack.url}/api/tags`, { headers })
    assert.equal(response.status, 401, JSON.stringify(headers))
    await response.arrayBuffer()
  }
})

test('tokens may be configured as sha256 digests, mixed with plaintext', async (t) => {
  const { createHash } = await import('node:crypto')
  const secret = 'hashed-secret-token-0123456789abcdef'
  const digest = 'sha256:' + createHash('sha256').update(secret).digest('hex')
  const stack = await startStack(t, { auth: { generate_tokens: [digest, TOKENS.generate] } })
  for (const token of [secret, TOKENS.generate]) {
    const response = await fetch(`${stack.url}/api/tags`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(response.status, 200)
    await response.arrayBuffer()
  }
  const response = await fetch(`${stack.url}/api/tags`, { headers: { authorization: `Bearer ${digest}` } })
  assert.equal(response.status, 401, 'the digest itself is not a key')
  await response.arrayBuffer()
})
