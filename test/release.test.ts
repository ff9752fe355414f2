// Issue 18: everything a request holds (key slot, host slot, body bytes, the upstream call, its
// log line) is given back however the request ends, pipelined and with Redis included.
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { startFakeOllama } from './fake-ollama.js'
import { bearer, KEYS } from './fixtures/keys.js'
import { LogCapture, startProxy, testConfig, waitUntil } from './helper.js'
import { RawClient } from './raw-http.js'
import { redisAvailable, startRedis } from './redis-server.js'
import { Redis } from 'ioredis'

const KEY = KEYS.app
const auth = bearer(KEY)

/** A proxy with one key (2 at once) and one host (1 slot, a queue), optionally with Redis. */
async function stackFor (t: TestContext, redisUrl?: string) {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const config = testConfig(fake.url, {
    auth: { generate_tokens: [], keys: [{ name: 'app', key: KEY, scopes: ['generate'], limits: { concurrent: 2, requests_per_minute: 1000 } }] },
    service: { base_url: undefined, upstreams: [{ url: fake.url, name: 'gpu', max_concurrent: 1 }], queue_size: 10, queue_timeout: 60 },
    ...(redisUrl !== undefined ? { redis: { url: redisUrl } } : {})
  })
  const logs = new LogCapture()
  const proxy = await startProxy(t, config, logs)
  const held = () => ({
    keySlots: proxy.app.concurrencySlots.count('app'),
    hostSlots: proxy.app.upstreams.hosts[0].inFlight,
    queued: proxy.app.upstreams.queued,
    bodyBytes: proxy.app.bodyBudget.inFlight
  })
  const released = async (lines: number) => {
    await waitUntil(`${lines} log lines and nothing held`, () => logs.requestLines().length >= lines && Object.values(held()).every(n => n === 0))
    assert.deepEqual(held(), { keySlots: 0, hostSlots: 0, queued: 0, bodyBytes: 0 })
    assert.equal(logs.requestLines().length, lines, 'one line per request')
  }
  return { fake, proxy, logs, held, released }
}

function chat (fake: Record<string, unknown>): string {
  return JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], fake })
}

function post (client: RawClient, body: string): void {
  client.send('POST', '/api/chat', { ...auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, body)
}

test('a finished request gives back everything and is logged once', async (t) => {
  const { proxy, released, logs } = await stackFor(t)
  const answer = await fetch(`${proxy.url}/api/chat`, { method: 'POST', headers: auth, body: chat({ chunks: 3 }) })
  assert.equal(answer.status, 200)
  await answer.text()
  await released(1)
  assert.equal(logs.requestLines()[0].status, 200)
})

test('a client that leaves during the model load stops Ollama and gives everything back', async (t) => {
  const { fake, proxy, released, logs } = await stackFor(t)
  const client = await RawClient.open(proxy.url)
  post(client, chat({ first_byte_delay_ms: 60_000 }))
  await fake.waitForRequest('/api/chat')
  client.destroy()
  await fake.waitForEarlyClose('/api/chat')
  await released(1)
  assert.equal(logs.requestLines()[0].status, 499)
})

test('a client that leaves mid-stream stops Ollama and gives everything back', async (t) => {
  const { fake, proxy, released, logs } = await stackFor(t)
  const client = await RawClient.open(proxy.url)
  post(client, chat({ chunks: 5000, delay_ms: 2 }))
  await fake.waitForRequest('/api/chat')
  await waitUntil('the stream to start', () => client.socket.bytesRead > 0)
  client.destroy()
  await fake.waitForEarlyClose('/api/chat')
  await released(1)
  assert.equal(logs.requestLines()[0].status, 499)
})

test('pipelined: the client leaves while the first answer streams; the queued second one is given back too', async (t) => {
  const { fake, proxy, released, logs } = await stackFor(t)
  const client = await RawClient.open(proxy.url)
  // Both in one write; the second waits behind the first on the connection (and for the host slot).
  post(client, chat({ chunks: 5000, delay_ms: 2 }))
  post(client, chat({ chunks: 5000, delay_ms: 2 }))
  await fake.waitForRequest('/api/chat')
  await waitUntil('the second request to queue for the host', () => proxy.app.upstreams.queued === 1)
  await waitUntil('the first stream to start', () => client.socket.bytesRead > 0)
  client.destroy()
  await fake.waitForEarlyClose('/api/chat')
  await released(2)
  assert.deepEqual(logs.requestLines().map(line => line.status), [499, 499])
  assert.equal(fake.count('/api/chat'), 1, 'the queued request never reached Ollama')
})

test('pipelined: both requests reach Ollama; a client that leaves stops both', async (t) => {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const logs = new LogCapture()
  const proxy = await startProxy(t, testConfig(fake.url, { auth: { generate_tokens: [], keys: [{ name: 'app', key: KEY, scopes: ['generate'], limits: { concurrent: 2 } }] } }), logs)
  const client = await RawClient.open(proxy.url)
  post(client, chat({ chunks: 5000, delay_ms: 2 }))
  post(client, chat({ chunks: 5000, delay_ms: 2 }))
  await waitUntil('both requests to reach Ollama', () => fake.count('/api/chat') === 2)
  await waitUntil('the first stream to start', () => client.socket.bytesRead > 0)
  client.destroy()
  await waitUntil('Ollama to see both calls closed', () => fake.requests.filter(r => r.closedEarly).length === 2)
  await waitUntil('two log lines and the key slots back', () => logs.requestLines().length === 2 && proxy.app.concurrencySlots.count('app') === 0)
  assert.deepEqual(logs.requestLines().map(line => line.status), [499, 499])
})

test('a client that leaves while queued for a host frees its place at once', async (t) => {
  const { fake, proxy, released } = await stackFor(t)
  const holder = await RawClient.open(proxy.url)
  post(holder, chat({ chunks: 5000, delay_ms: 2 }))
  await fake.waitForRequest('/api/chat')
  const waiter = await RawClient.open(proxy.url)
  post(waiter, chat({ chunks: 1 }))
  await waitUntil('the second request to queue', () => proxy.app.upstreams.queued === 1)
  waiter.destroy()
  await waitUntil('its place to be freed', () => proxy.app.upstreams.queued === 0)
  assert.equal(proxy.app.upstreams.hosts[0].inFlight, 1, 'the first request still holds its slot')
  holder.destroy()
  await released(2)
})

test('a client that leaves while sending its body gives back the bytes it reserved', async (t) => {
  const { proxy, released } = await stackFor(t)
  const client = await RawClient.open(proxy.url)
  client.send('POST', '/api/chat', { ...auth, 'content-length': 100_000 }, '{"model":"llama3.2",')
  await waitUntil('the body to be reserved', () => proxy.app.bodyBudget.inFlight === 100_000)
  client.destroy()
  await released(1)
})

const skip = redisAvailable() ? false : 'redis-server not found: install Redis to run these tests'

test('with Redis: a client that leaves while the proxy waits for Redis holds no slot and no body afterwards', { skip }, async (t) => {
  const redis = await startRedis()
  t.after(async () => { redis.resume(); await redis.stop() })
  const { proxy, released, logs } = await stackFor(t, redis.url)
  await waitUntil('redis to be used', () => logs.text.includes('redis connected'))
  redis.pause()
  for (let i = 0; i < 3; i++) {
    const client = await RawClient.open(proxy.url)
    post(client, chat({ chunks: 1 }))
    client.destroy()
  }
  const pipelined = await RawClient.open(proxy.url)
  post(pipelined, chat({ chunks: 1 }))
  post(pipelined, chat({ chunks: 1 }))
  pipelined.destroy()
  await waitUntil('every request to be logged', () => logs.requestLines().length === 5)
  redis.resume()
  await released(5)
  // With Redis the key's slots are leases there: none may be left held.
  const client = new Redis(redis.url)
  t.after(() => { client.disconnect() })
  await waitUntil('every lease to be given back', async () => await client.zcard('ollama-proxy:slots:key:app') === 0)
  const holder = await RawClient.open(proxy.url)
  post(holder, chat({ chunks: 5000, delay_ms: 2 }))
  await waitUntil('a running request to hold a lease', async () => await client.zcard('ollama-proxy:slots:key:app') === 1)
  holder.destroy()
  await waitUntil('its lease to be given back', async () => await client.zcard('ollama-proxy:slots:key:app') === 0)
  await released(6)
  // The key is not refused for ever: its slots are free.
  const after = await fetch(`${proxy.url}/api/chat`, { method: 'POST', headers: auth, body: chat({ chunks: 1 }) })
  assert.equal(after.status, 200)
  await after.text()
  await released(7)
})
