// Issue 21: with redis.url, a key's `concurrent` limit and a host's max_concurrent hold for every
// replica together. Two proxies in this process share one real redis-server and one fake Ollama.
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { startFakeOllama, type FakeOllama } from './fake-ollama.js'
import { bearer, KEYS } from './fixtures/keys.js'
import { LogCapture, startProxy, testConfig, waitUntil } from './helper.js'
import { redisAvailable, startRedis } from './redis-server.js'

const skip = redisAvailable() ? false : 'redis-server not found: install Redis to run these tests'
const KEY = KEYS.app

async function twoReplicas (t: TestContext, fake: FakeOllama, redisUrl: string, limits: Record<string, number>, service: Record<string, unknown> = {}) {
  const config = testConfig(fake.url, {
    auth: { keys: [{ name: 'app', key: KEY, scopes: ['generate'], limits }] },
    service: { base_url: fake.url, ...service },
    redis: { url: redisUrl, prefix: `replicas-${Math.random().toString(36).slice(2)}:` }
  })
  const logs = [new LogCapture(), new LogCapture()]
  // Each replica has a usage database of its own, as in production (a database takes one proxy).
  const replicas = [await startProxy(t, { ...config, usage: { ...config.usage } }, logs[0]), await startProxy(t, { ...config, usage: { ...config.usage } }, logs[1])]
  for (const log of logs) await waitUntil('redis to be used', () => log.text.includes('slot caps are shared'))
  return replicas
}

function chat (url: string, fake: Record<string, unknown>): Promise<Response> {
  return fetch(`${url}/api/chat`, { method: 'POST', headers: bearer(KEY), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: false, fake }) })
}

test('with Redis, a key\'s concurrent limit holds across replicas, and a slot comes back when its request ends', { skip }, async (t) => {
  const redis = await startRedis()
  t.after(async () => { await redis.stop() })
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const [a, b] = await twoReplicas(t, fake, redis.url, { concurrent: 1 })
  const held = chat(a.url, { chunks: 2, delay_ms: 300 })
  await fake.waitForRequest('/api/chat')
  const refused = await chat(b.url, { chunks: 1 })
  assert.equal(refused.status, 429, 'the other replica sees the slot taken')
  await refused.arrayBuffer()
  await (await held).arrayBuffer()
  const after = await chat(b.url, { chunks: 1 })
  assert.equal(after.status, 200, 'released at once when the request ended')
  await after.arrayBuffer()
})

test('with Redis, a host\'s max_concurrent holds across replicas: the second replica\'s request waits for the slot', { skip }, async (t) => {
  const redis = await startRedis()
  t.after(async () => { await redis.stop() })
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const [a, b] = await twoReplicas(t, fake, redis.url, {}, { max_concurrent: 1, queue_size: 10 })
  const answers = await Promise.all([
    chat(a.url, { chunks: 2, delay_ms: 100 }), chat(b.url, { chunks: 2, delay_ms: 100 }),
    chat(a.url, { chunks: 2, delay_ms: 100 }), chat(b.url, { chunks: 2, delay_ms: 100 })
  ])
  assert.deepEqual(answers.map(r => r.status), [200, 200, 200, 200])
  await Promise.all(answers.map(async r => await r.arrayBuffer()))
  assert.equal(fake.maxActive, 1, 'Ollama never worked on two at once, whichever replica sent them')
})
