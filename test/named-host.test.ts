import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { startFakeOllama, type FakeOllama } from './fake-ollama.js'
import { jsonOf, startProxy, testConfig } from './helper.js'
import { routeTable } from '../routes/route-table.js'
import { sampleRequest, withHeaders } from './samples.js'

const KEYS = {
  generate: 'named-host-generate-key-00000000001',
  reader: 'named-host-reader-key-0000000000002',
  admin: 'named-host-admin-key-00000000000003',
  limitedAdmin: 'named-host-limited-admin-key-000004'
}

const keys = {
  generate_tokens: [],
  model_tokens: [],
  keys: [
    { name: 'gen', key: KEYS.generate, scopes: ['generate'] },
    { name: 'reader', key: KEYS.reader, scopes: ['models:read'] },
    { name: 'admin', key: KEYS.admin, scopes: ['generate', 'models:admin'] },
    { name: 'limited-admin', key: KEYS.limitedAdmin, scopes: ['generate', 'models:admin'], models: ['llama3.2*'] }
  ]
}

const auth = (key: string) => ({ authorization: `Bearer ${key}` })

async function startHosts (t: TestContext, count: number, service: Record<string, unknown> = {}) {
  const fakes: FakeOllama[] = []
  for (let i = 0; i < count; i++) fakes.push(await startFakeOllama())
  t.after(async () => { for (const fake of fakes) await fake.close() })
  const upstreams = fakes.map((fake, i) => ({ url: fake.url, name: `gpu${i}`, ...(service.max_concurrent !== undefined ? { max_concurrent: service.max_concurrent } : {}) }))
  const { max_concurrent: _unused, ...rest } = service
  const extra = count === 1 ? { service: { base_url: fakes[0].url } } : { service: { upstreams, health_interval: 60, refresh_interval: 60, ...rest } }
  const proxy = await startProxy(t, testConfig(fakes[0].url, { auth: keys, ...extra }))
  await proxy.app.hostHealth.refreshAll()
  return { fakes, ...proxy }
}

const requests: Array<{ path: string, init: RequestInit }> = [
  { path: '/api/chat', init: { method: 'POST', body: '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false}' } },
  { path: '/api/tags', init: { method: 'GET' } },
  { path: '/api/show', init: { method: 'POST', body: '{"model":"llama3.2"}' } },
  { path: '/v1/models', init: { method: 'GET' } },
  { path: '/api/pull', init: { method: 'POST', body: '{"model":"llama3.2","stream":false}' } }
]

const namings: Array<{ how: string, header: Record<string, string>, query: string }> = [
  { how: 'X-Ollama-Host', header: { 'x-ollama-host': 'gpu1' }, query: '' },
  { how: '?host=', header: {}, query: '?host=gpu1' }
]

test('naming a host needs models:admin: 403 for other keys, before anything reaches Ollama', async (t) => {
  for (const hosts of [2, 1]) {
    const { fakes, url } = await startHosts(t, hosts)
    const name = hosts === 1 ? 'gpu1-does-not-exist' : 'gpu1'
    for (const { how, header, query } of namings) {
      for (const key of [KEYS.generate, KEYS.reader]) {
        for (const { path, init } of requests) {
          const before = fakes.map(f => f.requests.length)
          const headers = { ...auth(key), ...(how === 'X-Ollama-Host' ? { 'x-ollama-host': name } : header) }
          const response = await fetch(url + path + query.replace('gpu1', name), { ...init, headers })
          const label = `${hosts} host(s), ${how}, ${path}, key ${key.slice(11, 20)}`
          const text = await response.text()
          // 401 when the key lacks the route's scope at all; otherwise the naming itself is refused.
          if (response.status === 401) {
            assert.ok(path === '/api/pull' || (path === '/api/chat' && key === KEYS.reader), `${label}: ${text}`)
          } else {
            assert.equal(response.status, 403, `${label}: ${text}`)
            assert.match(text, /models:admin/, label)
          }
          assert.deepEqual(fakes.map(f => f.requests.length), before, `${label}: nothing reaches Ollama`)
        }
      }
    }
  }
})

test('an upload that names a host without models:admin is refused in its dialect and never reaches Ollama', async (t) => {
  const { fakes, url } = await startHosts(t, 2)
  const { path, init } = sampleRequest(routeTable.find(r => r.path === '/v1/audio/transcriptions')!)
  const response = await fetch(url + path, withHeaders(init, { ...auth(KEYS.generate), 'x-ollama-host': 'gpu0' }))
  assert.equal(response.status, 403)
  assert.equal((await jsonOf(response)).error.type, 'permission_error', 'the refusal speaks the OpenAI dialect')
  assert.equal(fakes.reduce((n, f) => n + f.count('/v1/audio/transcriptions'), 0), 0)
})

test('an admin key reaches the named host only, and X-Ollama-Host is not forwarded', async (t) => {
  const { fakes, url } = await startHosts(t, 2)
  for (const { how, header, query } of namings) {
    for (const { path, init } of requests) {
      const before = fakes.map(f => f.count(path))
      const response = await fetch(url + path + query, { ...init, headers: { ...auth(KEYS.admin), ...header } })
      assert.equal(response.status, 200, `${how} ${path}: ${await response.text()}`)
      assert.equal(response.headers.get('x-ollama-upstream'), 'gpu1', `${how} ${path}`)
      assert.deepEqual(fakes.map(f => f.count(path)), [before[0], before[1] + 1], `${how} ${path} went to gpu1 only`)
      assert.equal(fakes[1].last(path)?.headers['x-ollama-host'], undefined)
    }
  }
  const unknown = await fetch(`${url}/api/tags`, { headers: { ...auth(KEYS.admin), 'x-ollama-host': 'gpu9' } })
  assert.equal(unknown.status, 404)
  await unknown.arrayBuffer()
})

test('a named host\'s listings are filtered by the key\'s allowlist, in both dialects', async (t) => {
  const { url } = await startHosts(t, 2)
  const headers = { ...auth(KEYS.limitedAdmin), 'x-ollama-host': 'gpu0' }
  const tags = await fetch(`${url}/api/tags`, { headers })
  const text = await tags.text()
  assert.equal(Number(tags.headers.get('content-length')), Buffer.byteLength(text))
  assert.deepEqual(JSON.parse(text).models.map((m: { name: string }) => m.name), ['llama3.2:latest'])
  const openai = await jsonOf(await fetch(`${url}/v1/models`, { headers }))
  assert.deepEqual(openai.data.map((m: { id: string }) => m.id), ['llama3.2:latest'])
  const ps = await jsonOf(await fetch(`${url}/api/ps?host=gpu1`, { headers: auth(KEYS.limitedAdmin) }))
  assert.ok(ps.models.every((m: { name: string }) => m.name.startsWith('llama3.2')))
})

test('a request to a named host takes one of its slots: with the slot busy and no queue, 503', async (t) => {
  const { fakes, url } = await startHosts(t, 2, { max_concurrent: 1, queue_size: 0 })
  const body = (delay: number) => JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false, fake: { first_byte_delay_ms: delay } })
  const headers = { ...auth(KEYS.admin), 'x-ollama-host': 'gpu0' }
  const first = fetch(`${url}/api/chat`, { method: 'POST', headers, body: body(1500) })
  await fakes[0].waitForRequest('/api/chat')
  const second = await fetch(`${url}/api/chat`, { method: 'POST', headers, body: body(0) })
  assert.equal(second.status, 503, await second.text())
  assert.equal(second.headers.get('retry-after'), '1')
  const elsewhere = await fetch(`${url}/api/chat`, { method: 'POST', headers: { ...headers, 'x-ollama-host': 'gpu1' }, body: body(0) })
  assert.equal(elsewhere.status, 200, 'the other host\'s slot is free')
  await elsewhere.arrayBuffer()
  const done = await first
  assert.equal(done.status, 200)
  await done.arrayBuffer()
  assert.equal(fakes[0].count('/api/chat'), 1, 'the refused request never reached the busy host')
})

test('merged listings name the hosts they were merged from in X-Ollama-Upstream', async (t) => {
  const { fakes, url, app } = await startHosts(t, 3)
  for (const path of ['/api/tags', '/api/ps', '/v1/models']) {
    const response = await fetch(url + path, { headers: auth(KEYS.generate) })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('x-ollama-upstream'), 'gpu0,gpu1,gpu2', path)
    await response.arrayBuffer()
  }
  // A host that does not answer is not named.
  await fakes[1].close()
  const response = await fetch(`${url}/api/tags`, { headers: auth(KEYS.generate) })
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('x-ollama-upstream'), 'gpu0,gpu2')
  await response.arrayBuffer()
  assert.ok(app.upstreams.hosts.length === 3)
})
