import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import authPlugin from '../plugins/auth/auth.js'
import { startFakeOllama, type FakeOllama } from './fake-ollama.js'
import { authWith, bearer, KEYS, namedKey } from './fixtures/keys.js'
import { jsonOf, startProxy, testConfig } from './helper.js'
import { injectionOf, pluginHarness, tableRows } from './plugin-harness.js'
import { routeTable } from '../routes/route-table.js'
import { sampleRequest, withHeaders } from './samples.js'

const { auth: keys } = authWith([
  namedKey('gen', ['generate']),
  namedKey('reader', ['models:read']),
  namedKey('admin', ['generate', 'models:admin']),
  namedKey('limited', ['generate', 'models:admin'], { models: ['llama3.2*'] })
])

/** Config of `count` named hosts (gpu0, gpu1, ...); one host is the plain `base_url`. */
function hostsConfig (urls: string[], service: Record<string, unknown> = {}) {
  const upstreams = urls.map((url, i) => ({ url, name: `gpu${i}`, ...(service.max_concurrent !== undefined ? { max_concurrent: service.max_concurrent } : {}) }))
  const { max_concurrent: _unused, ...rest } = service
  return urls.length === 1 ? { service: { base_url: urls[0] } } : { service: { upstreams, health_interval: 60, refresh_interval: 60, ...rest } }
}

async function startHosts (t: TestContext, count: number, service: Record<string, unknown> = {}) {
  const fakes: FakeOllama[] = []
  for (let i = 0; i < count; i++) fakes.push(await startFakeOllama())
  t.after(async () => { for (const fake of fakes) await fake.close() })
  const proxy = await startProxy(t, testConfig(fakes[0].url, { auth: keys, ...hostsConfig(fakes.map(fake => fake.url), service) }))
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
    // The key stage alone: no host is ever called, so the hosts need not exist.
    const harness = await pluginHarness(t, {
      plugins: [authPlugin],
      routes: tableRows('POST /api/chat', 'GET /api/tags', 'POST /api/show', 'GET /v1/models', 'POST /api/pull'),
      config: { auth: keys, ...hostsConfig(Array.from({ length: hosts }, () => 'http://127.0.0.1:9')) }
    })
    const name = hosts === 1 ? 'gpu1-does-not-exist' : 'gpu1'
    for (const { how, header, query } of namings) {
      for (const key of [KEYS.gen, KEYS.reader]) {
        for (const { path, init } of requests) {
          const before = harness.reached.length
          const headers = { ...bearer(key), ...(how === 'X-Ollama-Host' ? { 'x-ollama-host': name } : header) }
          const response = await harness.app.inject(injectionOf(path + query.replace('gpu1', name), { ...init, headers }))
          const label = `${hosts} host(s), ${how}, ${path}, key ${key.slice(0, 8)}`
          const text = response.body
          // 401 when the key lacks the route's scope at all; otherwise the naming itself is refused.
          if (response.statusCode === 401) {
            assert.ok(path === '/api/pull' || (path === '/api/chat' && key === KEYS.reader), `${label}: ${text}`)
          } else {
            assert.equal(response.statusCode, 403, `${label}: ${text}`)
            assert.match(text, /models:admin/, label)
          }
          assert.equal(harness.reached.length, before, `${label}: nothing reaches Ollama`)
        }
      }
    }
  }
})

test('an upload that names a host without models:admin is refused in its dialect and never reaches Ollama', async (t) => {
  const harness = await pluginHarness(t, {
    plugins: [authPlugin],
    routes: tableRows('POST /v1/audio/transcriptions'),
    config: { auth: keys, ...hostsConfig(['http://127.0.0.1:9', 'http://127.0.0.1:9']) }
  })
  const { path, init } = sampleRequest(routeTable.find(r => r.path === '/v1/audio/transcriptions')!)
  const response = await harness.app.inject(injectionOf(path, withHeaders(init, { ...bearer(KEYS.gen), 'x-ollama-host': 'gpu0' })))
  assert.equal(response.statusCode, 403)
  assert.equal(response.json().error.type, 'permission_error', 'the refusal speaks the OpenAI dialect')
  assert.equal(harness.reached.length, 0)
})

test('an admin key reaches the named host only, and X-Ollama-Host is not forwarded', async (t) => {
  const { fakes, url } = await startHosts(t, 2)
  for (const { how, header, query } of namings) {
    for (const { path, init } of requests) {
      const before = fakes.map(f => f.count(path))
      const response = await fetch(url + path + query, { ...init, headers: { ...bearer(KEYS.admin), ...header } })
      assert.equal(response.status, 200, `${how} ${path}: ${await response.text()}`)
      assert.equal(response.headers.get('x-ollama-upstream'), 'gpu1', `${how} ${path}`)
      assert.deepEqual(fakes.map(f => f.count(path)), [before[0], before[1] + 1], `${how} ${path} went to gpu1 only`)
      assert.equal(fakes[1].last(path)?.headers['x-ollama-host'], undefined)
    }
  }
  const unknown = await fetch(`${url}/api/tags`, { headers: { ...bearer(KEYS.admin), 'x-ollama-host': 'gpu9' } })
  assert.equal(unknown.status, 404)
  await unknown.arrayBuffer()
})

test('a named host\'s listings are filtered by the key\'s allowlist, in both dialects', async (t) => {
  const { url } = await startHosts(t, 2)
  const headers = { ...bearer(KEYS.limited), 'x-ollama-host': 'gpu0' }
  const tags = await fetch(`${url}/api/tags`, { headers })
  const text = await tags.text()
  assert.equal(Number(tags.headers.get('content-length')), Buffer.byteLength(text))
  assert.deepEqual(JSON.parse(text).models.map((m: { name: string }) => m.name), ['llama3.2:latest'])
  const openai = await jsonOf(await fetch(`${url}/v1/models`, { headers }))
  assert.deepEqual(openai.data.map((m: { id: string }) => m.id), ['llama3.2:latest'])
  const ps = await jsonOf(await fetch(`${url}/api/ps?host=gpu1`, { headers: bearer(KEYS.limited) }))
  assert.ok(ps.models.every((m: { name: string }) => m.name.startsWith('llama3.2')))
})

test('a request to a named host takes one of its slots: with the slot busy and no queue, 503', async (t) => {
  const { fakes, url } = await startHosts(t, 2, { max_concurrent: 1, queue_size: 0 })
  const body = (delay: number) => JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false, fake: { first_byte_delay_ms: delay } })
  const headers = { ...bearer(KEYS.admin), 'x-ollama-host': 'gpu0' }
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
    const response = await fetch(url + path, { headers: bearer(KEYS.gen) })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('x-ollama-upstream'), 'gpu0,gpu1,gpu2', path)
    await response.arrayBuffer()
  }
  // A host that does not answer is not named.
  await fakes[1].close()
  const response = await fetch(`${url}/api/tags`, { headers: bearer(KEYS.gen) })
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('x-ollama-upstream'), 'gpu0,gpu2')
  await response.arrayBuffer()
  assert.ok(app.upstreams.hosts.length === 3)
})
