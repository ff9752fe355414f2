import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { startFakeOllama, type FakeOllama } from './fake-ollama.js'
import { bearer, jsonOf, startProxy, testConfig, TOKENS, waitUntil } from './helper.js'

const gen = bearer(TOKENS.generate)
const admin = bearer(TOKENS.model)

async function startCluster (t: TestContext, hosts: number, service: Record<string, unknown> = {}, maxConcurrent?: number) {
  const fakes: FakeOllama[] = []
  for (let i = 0; i < hosts; i++) fakes.push(await startFakeOllama())
  t.after(async () => { for (const fake of fakes) await fake.close() })
  const upstreams = fakes.map((fake, i) => ({ url: fake.url, name: `gpu${i}`, ...(maxConcurrent !== undefined ? { max_concurrent: maxConcurrent } : {}) }))
  const config = testConfig(fakes[0].url, { service: { upstreams, health_interval: 0.2, refresh_interval: 60, ...service } })
  const proxy = await startProxy(t, config)
  await proxy.app.hostHealth.refreshAll()
  return { fakes, ...proxy }
}

const chat = (model: string, fake: Record<string, unknown> = {}) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], stream: false, fake })

async function deleteOn (fake: FakeOllama, model: string): Promise<void> {
  const response = await fetch(`${fake.url}/api/delete`, { method: 'DELETE', body: JSON.stringify({ model }) })
  assert.equal(response.status, 200)
}

test('inference goes to a host that has the model', async (t) => {
  const { fakes, url, app } = await startCluster(t, 2)
  await deleteOn(fakes[0], 'qwen3:8b')
  await app.hostHealth.refreshAll()
  for (let i = 0; i < 5; i++) {
    const response = await fetch(`${url}/api/chat`, { method: 'POST', headers: gen, body: chat('qwen3:8b') })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('x-ollama-upstream'), 'gpu1')
    await response.arrayBuffer()
  }
  assert.equal(fakes[0].count('/api/chat'), 0)
  assert.equal(fakes[1].count('/api/chat'), 5)
  assert.equal(fakes[1].last('/api/chat')?.headers.host, new URL(fakes[1].url).host, 'Host names the chosen upstream')
})

test('a host where the model is already loaded is preferred', async (t) => {
  const { fakes, url, app } = await startCluster(t, 3)
  fakes[0].loaded.clear()
  fakes[2].loaded.clear()
  await app.hostHealth.refreshAll()
  for (let i = 0; i < 6; i++) {
    const response = await fetch(`${url}/api/generate`, { method: 'POST', headers: gen, body: JSON.stringify({ model: 'llama3.2', prompt: 'x', stream: false }) })
    assert.equal(response.headers.get('x-ollama-upstream'), 'gpu1')
    await response.arrayBuffer()
  }
  assert.deepEqual(fakes.map(f => f.count('/api/generate')), [0, 6, 0])
})

test('under concurrency the least busy host takes the next request', async (t) => {
  const { fakes, url, app } = await startCluster(t, 2, {}, 3)
  // Answers that never come while the test runs: all six are in flight at once, however slow the machine.
  const controllers = Array.from({ length: 6 }, () => new AbortController())
  const calls = controllers.map(async controller => await fetch(`${url}/api/chat`, { method: 'POST', headers: gen, body: chat('llama3.2', { first_byte_delay_ms: 60_000 }), signal: controller.signal }).catch(() => undefined))
  await waitUntil('six requests to reach Ollama', () => fakes[0].count('/api/chat') + fakes[1].count('/api/chat') === 6)
  assert.deepEqual(fakes.map(f => f.count('/api/chat')), [3, 3])
  assert.deepEqual(app.upstreams.hosts.map(h => h.inFlight), [3, 3])
  for (const controller of controllers) controller.abort()
  await Promise.all(calls)
})

test('when every host is full, requests queue; a full queue is 503 and a long wait 504', async (t) => {
  const { fakes, url, app } = await startCluster(t, 2, { queue_size: 1, queue_timeout: 3 }, 1)
  const holders = [0, 1].map(() => new AbortController())
  const busy = holders.map(async controller => await fetch(`${url}/api/chat`, { method: 'POST', headers: gen, body: chat('llama3.2', { first_byte_delay_ms: 60_000 }), signal: controller.signal }).catch(() => undefined))
  await waitUntil('both hosts to be busy', () => fakes.every(f => f.count('/api/chat') === 1))
  const queued = fetch(`${url}/api/chat`, { method: 'POST', headers: gen, body: chat('llama3.2') })
  await waitUntil('the request to queue', () => app.upstreams.queued === 1)
  const rejected = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: gen, body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }) })
  assert.equal(rejected.status, 503)
  assert.equal(rejected.headers.get('retry-after'), '1')
  assert.equal((await jsonOf(rejected)).error.type, 'api_error')
  const waited = await queued
  assert.equal(waited.status, 504)
  assert.match((await jsonOf(waited)).error, /no Ollama host was free/)
  assert.deepEqual(fakes.map(f => f.count('/api/chat')), [1, 1], 'neither refused request reached Ollama')
  for (const controller of holders) controller.abort()
  await Promise.all(busy)
  await waitUntil('the slots to free', () => app.upstreams.hosts.every(h => h.inFlight === 0))
  const later = await fetch(`${url}/api/chat`, { method: 'POST', headers: gen, body: chat('llama3.2') })
  assert.equal(later.status, 200, 'a request is served once a slot frees')
  await later.arrayBuffer()
})

test('a queued request is served as soon as a slot frees', async (t) => {
  const { fakes, url, app } = await startCluster(t, 2, { queue_size: 4, queue_timeout: 50 }, 1)
  const calls = Array.from({ length: 4 }, () => fetch(`${url}/api/chat`, { method: 'POST', headers: gen, body: chat('llama3.2', { first_byte_delay_ms: 300 }) }))
  for (const response of await Promise.all(calls)) {
    assert.equal(response.status, 200)
    await response.arrayBuffer()
  }
  const counts = fakes.map(f => f.count('/api/chat'))
  assert.equal(counts[0] + counts[1], 4)
  assert.ok(counts.every(c => c >= 1), `both hosts served: ${counts.join(', ')}`)
  assert.equal(app.upstreams.queued, 0)
})

test('a host killed mid-run: no request fails that had not started streaming; it comes back', async (t) => {
  const { fakes, url, app } = await startCluster(t, 2)
  const port = fakes[0].port
  const statuses: number[] = []
  for (let i = 0; i < 30; i++) {
    if (i === 10) await fakes[0].close()
    const response = await fetch(`${url}/api/chat`, { method: 'POST', headers: gen, body: chat('llama3.2') })
    statuses.push(response.status)
    await response.arrayBuffer()
  }
  assert.deepEqual(statuses.filter(s => s !== 200), [])
  assert.equal(app.upstreams.byName('gpu0')?.healthy, false)

  const revived = await startFakeOllama({ port })
  t.after(async () => { await revived.close() })
  await waitUntil('a health check to pass', () => app.upstreams.byName('gpu0')?.healthy === true)
  assert.equal(app.upstreams.byName('gpu0')?.healthy, true, 'the host is back after a passed health check')
  for (let i = 0; i < 6; i++) {
    const response = await fetch(`${url}/api/chat`, { method: 'POST', headers: gen, body: chat('llama3.2') })
    await response.arrayBuffer()
  }
  assert.ok(revived.count('/api/chat') > 0, 'traffic reaches the revived host')
})

test('a slow first byte (504) does not take a host out; only a failed connection does', async (t) => {
  const { url, app } = await startCluster(t, 2, { first_byte_timeout: 1 })
  const response = await fetch(`${url}/api/chat`, { method: 'POST', headers: gen, body: chat('llama3.2', { first_byte_delay_ms: 60_000 }) })
  assert.equal(response.status, 504)
  await response.arrayBuffer()
  assert.deepEqual(app.upstreams.hosts.map(h => h.healthy), [true, true])
})

test('listings are the deduplicated union of the healthy hosts', async (t) => {
  const { fakes, url } = await startCluster(t, 2)
  await deleteOn(fakes[0], 'qwen3:8b')
  const copied = await fetch(`${fakes[1].url}/api/copy`, { method: 'POST', body: JSON.stringify({ source: 'llama3.2', destination: 'only-on-gpu1' }) })
  assert.equal(copied.status, 200)
  const tags = await jsonOf(await fetch(`${url}/api/tags`, { headers: gen }))
  const names = tags.models.map((m: { name: string }) => m.name).sort()
  assert.deepEqual(names, [...new Set(names)], 'no duplicates')
  assert.ok(names.includes('qwen3:8b') && names.includes('only-on-gpu1:latest') && names.includes('llama3.2:latest'))
  const openai = await jsonOf(await fetch(`${url}/v1/models`, { headers: gen }))
  assert.equal(openai.object, 'list')
  assert.ok(openai.data.some((m: { id: string }) => m.id === 'only-on-gpu1:latest'))
  const ps = await jsonOf(await fetch(`${url}/api/ps`, { headers: gen }))
  assert.equal(ps.models.length, 1)
})

test('model management: a named host, or every host with the answer saying which', async (t) => {
  const { fakes, url } = await startCluster(t, 2)
  const named = await fetch(`${url}/api/pull`, { method: 'POST', headers: { ...admin, 'x-ollama-host': 'gpu1' }, body: '{"model":"llama3.2"}' })
  assert.equal(named.headers.get('x-ollama-upstream'), 'gpu1')
  assert.match(await named.text(), /"status":"success"/)
  assert.deepEqual(fakes.map(f => f.count('/api/pull')), [0, 1])

  const viaQuery = await fetch(`${url}/api/copy?host=gpu0`, { method: 'POST', headers: admin, body: '{"source":"llama3.2","destination":"b0"}' })
  assert.equal(viaQuery.status, 200)
  await viaQuery.arrayBuffer()
  assert.deepEqual(fakes.map(f => f.count('/api/copy')), [1, 0])

  const everywhere = await fetch(`${url}/api/pull`, { method: 'POST', headers: admin, body: '{"model":"llama3.2"}' })
  assert.equal(everywhere.headers.get('x-ollama-upstream'), 'gpu0,gpu1')
  const lines = (await everywhere.text()).trim().split('\n').map(l => JSON.parse(l))
  assert.ok(lines.some(l => l.host === 'gpu0' && l.status === 'success'))
  assert.ok(lines.some(l => l.host === 'gpu1' && l.status === 'success'))
  assert.deepEqual(fakes.map(f => f.count('/api/pull')), [1, 2])

  const deleted = await fetch(`${url}/api/delete`, { method: 'DELETE', headers: admin, body: '{"model":"qwen3:8b"}' })
  assert.equal(deleted.status, 200)
  assert.equal(deleted.headers.get('x-ollama-upstream'), 'gpu0,gpu1')
  const again = await fetch(`${url}/api/delete`, { method: 'DELETE', headers: admin, body: '{"model":"qwen3:8b"}' })
  assert.equal(again.status, 404)
  const outcome = await jsonOf(again)
  assert.equal(outcome.hosts.gpu0.status, 404)

  const unknown = await fetch(`${url}/api/pull`, { method: 'POST', headers: { ...admin, 'x-ollama-host': 'gpu9' }, body: '{"model":"x"}' })
  assert.equal(unknown.status, 404)
  await unknown.arrayBuffer()
  const blob = await fetch(`${url}/api/blobs/sha256:${'a'.repeat(64)}`, { method: 'POST', headers: admin, body: 'x' })
  assert.equal(blob.status, 400, 'an upload must name its host')
  await blob.arrayBuffer()
})

test('per-host state in /readyz and /metrics', async (t) => {
  const { fakes, url, app } = await startCluster(t, 2)
  await fakes[1].close()
  await app.hostHealth.checkAll()
  await app.hostHealth.checkAll()
  const ready = await jsonOf(await fetch(`${url}/readyz`))
  assert.equal(ready.status, 'ready', 'ready while one host is healthy')
  assert.deepEqual(ready.upstreams.map((h: { name: string, ready: boolean }) => [h.name, h.ready]), [['gpu0', true], ['gpu1', false]])
  const metrics = await (await fetch(`${url}/metrics`, { headers: admin })).text()
  assert.match(metrics, /ollama_proxy_upstream_healthy\{host="gpu0"\} 1/)
  assert.match(metrics, /ollama_proxy_upstream_healthy\{host="gpu1"\} 0/)
  await fakes[0].close()
  await app.hostHealth.checkAll()
  await app.hostHealth.checkAll()
  const down = await fetch(`${url}/readyz`)
  assert.equal(down.status, 503)
})

test('unnamed upstreams get neutral names by position: no address reaches /readyz, X-Ollama-Upstream or fan-out answers', async (t) => {
  const fakes = [await startFakeOllama(), await startFakeOllama()]
  t.after(async () => { for (const fake of fakes) await fake.close() })
  const config = testConfig(fakes[0].url, { service: { upstreams: fakes.map(f => ({ url: f.url })), refresh_interval: 60 } })
  assert.deepEqual(config.service.upstreams.map(u => u.name), ['host-1', 'host-2'])
  const { url, app } = await startProxy(t, config)
  await app.hostHealth.refreshAll()
  const ports = fakes.map(f => new URL(f.url).port)
  const leaks = (text: string) => ports.some(port => text.includes(port)) || text.includes('127.0.0.1')

  const ready = await fetch(`${url}/readyz`)
  const readyText = await ready.text()
  assert.deepEqual(JSON.parse(readyText).upstreams.map((h: { name: string }) => h.name), ['host-1', 'host-2'])
  assert.ok(!leaks(readyText), readyText)

  const chatted = await fetch(`${url}/api/chat`, { method: 'POST', headers: gen, body: chat('llama3.2') })
  assert.equal(chatted.status, 200)
  assert.match(chatted.headers.get('x-ollama-upstream') ?? '', /^host-[12]$/)
  await chatted.arrayBuffer()

  await fakes[1].close()
  const deleted = await fetch(`${url}/api/delete`, { method: 'DELETE', headers: admin, body: '{"model":"llama3.2"}' })
  assert.equal(deleted.headers.get('x-ollama-upstream'), 'host-1,host-2')
  const deletedText = await deleted.text()
  assert.match(deletedText, /host-2/, 'the failed host is named in the fan-out answer')
  assert.ok(!leaks(deletedText), deletedText)

  assert.throws(() => testConfig(fakes[0].url, { service: { upstreams: [{ url: fakes[0].url }, { url: fakes[1].url, name: 'host-1' }] } }), /distinct name.*host-1, host-2/)
})
