import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import authPlugin from '../plugins/auth/auth.js'
import admissionPlugin from '../plugins/http/admission.js'
import methodNotAllowed from '../routes/method-not-allowed.js'
import { routeTable } from '../routes/route-table.js'
import { bearer, TOKENS } from './fixtures/keys.js'
import { jsonOf, startStack } from './helper.js'
import { pluginHarness } from './plugin-harness.js'

const gen = bearer(TOKENS.generate)
const admin = bearer(TOKENS.model)

async function post (url: string, body: string, headers = gen, method = 'POST'): Promise<{ status: number, body: any }> {
  const response = await fetch(url, { method, headers: { ...headers, 'content-type': 'application/json' }, body })
  return { status: response.status, body: JSON.parse(await response.text()) }
}

/** The key stage and the body readers of every route (no Ollama): `post` as above, by inject. */
async function bodyStage (t: TestContext) {
  const harness = await pluginHarness(t, { plugins: [authPlugin], routes: routeTable })
  return {
    harness,
    post: async (path: string, body: string | Buffer, headers = gen, method: 'POST' | 'DELETE' = 'POST', type: string | undefined = 'application/json'): Promise<{ status: number, body: any }> => {
      const response = await harness.app.inject({ method, url: path, headers: { ...headers, ...(type !== undefined ? { 'content-type': type } : {}) }, payload: body })
      return { status: response.statusCode, body: response.json() }
    }
  }
}

test('invalid bodies get 400 naming the field, and never reach Ollama', async (t) => {
  const { harness, post } = await bodyStage(t)
  const cases: Array<[string, string, RegExp]> = [
    ['/api/chat', '{}', /model/],
    ['/api/chat', '{"model":""}', /model/],
    ['/api/chat', '{"model":"m","messages":"hi"}', /messages/],
    ['/api/generate', '{"model":"m","prompt":5}', /prompt/],
    ['/api/generate', '{"model":5}', /model/],
    ['/api/embeddings', '[]', /body/],
    ['/v1/chat/completions', '{"model":"m","messages":[]}', /messages/],
    ['/v1/messages', '{"model":"m","messages":[{"role":"user","content":"x"}]}', /max_tokens/]
  ]
  for (const [path, body, field] of cases) {
    const result = await post(path, body)
    assert.equal(result.status, 400, `${path} ${body}`)
    const message = path.startsWith('/v1/messages') ? result.body.error.message : path.startsWith('/v1/') ? result.body.error.message : result.body.error
    assert.match(message, field, `${path} ${body}: ${message}`)
  }
  for (const [path, body] of [['/api/pull', '{}'], ['/api/pull', '{"name":""}'], ['/api/copy', '{"source":"a"}'], ['/api/delete', '{"model":""}']]) {
    const result = await post(path, body, admin, path === '/api/delete' ? 'DELETE' : 'POST')
    assert.equal(result.status, 400, `${path} ${body}`)
  }
  assert.match((await post('/api/pull', '{}', admin)).body.error, /'model' or 'name'/)
  assert.equal(harness.reached.length, 0)
})

test('the deprecated name alias is accepted wherever Ollama accepts it', async (t) => {
  const stack = await startStack(t)
  for (const path of ['/api/pull', '/api/push', '/api/show', '/api/create']) {
    const body = path === '/api/create' ? '{"name":"mario","from":"llama3.2","stream":false}' : '{"name":"llama3.2","stream":false}'
    const result = await post(stack.url + path, body, admin)
    assert.equal(result.status, 200, `${path}: ${JSON.stringify(result.body)}`)
  }
})

test('no defaults are added and no types coerced: Ollama sees what the client sent', async (t) => {
  const stack = await startStack(t)
  const body = '{"model":"llama3.2","prompt":"hi","options":{"num_ctx":"8192"},"stream":false}'
  const result = await post(`${stack.url}/api/generate`, body)
  assert.equal(result.status, 200)
  assert.equal(stack.fake.last('/api/generate')?.body.toString(), body)
  const typed = await post(`${stack.url}/api/generate`, '{"model":"llama3.2","prompt":["not","a","string"]}')
  assert.equal(typed.status, 400, 'an array is not silently turned into a string')
})

test('malformed, nested, bomb and non-UTF-8 bodies get 400 in dialect and the service stays up', async (t) => {
  const { harness, post } = await bodyStage(t)
  const bodies: Array<[string, string | Buffer]> = [
    ['malformed', '{"model": "m", '],
    ['trailing garbage', '{"model":"m"} x'],
    ['deeply nested', '{"model":"m","options":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}'],
    ['container bomb', '{"model":"m","x":[' + '[],'.repeat(1_200_000) + '[]]}'],
    ['not UTF-8', Buffer.concat([Buffer.from('{"model":"m","prompt":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')])]
  ]
  for (const [label, body] of bodies) {
    for (const path of ['/api/generate', '/v1/completions', '/v1/messages']) {
      // As fetch sends a string body: text/plain (JSON routes read any Content-Type).
      const { status, body: parsed } = await post(path, body, gen, 'POST', typeof body === 'string' ? 'text/plain;charset=UTF-8' : undefined)
      assert.equal(status, 400, `${label} on ${path}`)
      if (path === '/api/generate') assert.equal(typeof parsed.error, 'string', label)
      else if (path === '/v1/messages') assert.equal(parsed.error.type, 'invalid_request_error', label)
      else assert.equal(parsed.error.type, 'invalid_request_error', label)
    }
  }
  assert.equal(harness.reached.length, 0)
  const after = await post('/api/generate', '{"model":"llama3.2","prompt":"hi","stream":false}')
  assert.equal(after.status, 200, 'the next request still works')
})

test('path params are validated before forwarding', async (t) => {
  const stack = await startStack(t)
  const badDigest = await fetch(`${stack.url}/api/blobs/sha256:xyz`, { method: 'HEAD', headers: admin })
  assert.equal(badDigest.status, 400)
  const badModel = await fetch(`${stack.url}/v1/models/..%2F..%2Fapi%2Fpull`, { headers: gen })
  assert.equal(badModel.status, 400)
  assert.equal((await jsonOf(badModel)).error.type, 'invalid_request_error')
  const good = await fetch(`${stack.url}/v1/models/llama3.2`, { headers: gen })
  assert.equal(good.status, 200)
  await good.arrayBuffer()
  assert.equal(stack.fake.last()?.path, '/v1/models/llama3.2')
  assert.equal(stack.fake.requests.length, 1)
})

test('unknown routes are 404 JSON and a wrong method on a known path is 405 JSON', async (t) => {
  const harness = await pluginHarness(t, { plugins: [admissionPlugin, authPlugin, methodNotAllowed], routes: routeTable })
  const { app } = harness
  const missing = await app.inject({ url: '/api/nothing', headers: gen })
  assert.equal(missing.statusCode, 404)
  assert.equal(typeof missing.json().error, 'string')
  const v1missing = await app.inject({ method: 'POST', url: '/v1/images/generations', headers: gen })
  assert.equal(v1missing.statusCode, 404)
  assert.equal(v1missing.json().error.type, 'not_found_error')
  const wrong = await app.inject({ url: '/api/chat', headers: gen })
  assert.equal(wrong.statusCode, 405)
  assert.equal(wrong.headers.allow, 'POST')
  assert.match(wrong.json().error, /not allowed/)
  const put = await app.inject({ method: 'PUT', url: `/api/blobs/sha256:${'a'.repeat(64)}`, headers: { 'content-type': 'application/octet-stream' }, payload: 'x' })
  assert.equal(put.statusCode, 405)
  assert.equal(harness.reached.length, 0)
})

test('the proxy\'s own routes answer a wrong method with 405 JSON and Allow, as Ollama\'s do; the admin page\'s paths only while it is on', async (t) => {
  const stack = await startStack(t)
  const cases = [
    { method: 'POST', url: '/proxy/me', allow: 'GET' },
    { method: 'DELETE', url: '/proxy/keys', allow: 'GET, POST' },
    { method: 'GET', url: '/proxy/keys/web-app', allow: 'PATCH, DELETE' },
    { method: 'GET', url: '/proxy/keys/web-app/rotate', allow: 'POST' },
    { method: 'POST', url: '/proxy/usage', allow: 'GET' },
    { method: 'HEAD', url: '/healthz', allow: 'GET' },
    { method: 'PUT', url: '/metrics', allow: 'GET' },
    { method: 'POST', url: '/proxy/ui/', allow: 'GET' }
  ] as const
  for (const { method, url, allow } of cases) {
    const response = await stack.app.inject({ method, url, headers: gen })
    assert.equal(response.statusCode, 405, `${method} ${url}: ${response.body}`)
    assert.equal(response.headers.allow, allow, `${method} ${url}`)
    if (method !== 'HEAD') assert.match(response.json().error, new RegExp(`^method ${method} not allowed on `))
  }
  const off = await startStack(t, { ui: { enabled: false } })
  const page = await off.app.inject({ method: 'POST', url: '/proxy/ui/' })
  assert.equal(page.statusCode, 404, 'no admin page: its paths are unknown, whatever the method')
  assert.equal(stack.fake.requests.length + off.fake.requests.length, 0)
})
