import assert from 'node:assert/strict'
import { test } from 'node:test'
import { undercountsCachedTokens } from '../plugins/upstream/host-health.js'
import { exposedAddresses, isLoopback } from '../plugins/upstream/exposure.js'
import { startFakeOllama } from './fake-ollama.js'
import { RawClient } from './raw-http.js'
import { bearer, TOKENS } from './fixtures/keys.js'
import { jsonOf, LogCapture, startProxy, startStack, testConfig, waitUntil } from './helper.js'

test('/healthz answers without a key and without calling Ollama', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/healthz`)
  assert.equal(response.status, 200)
  assert.deepEqual(await jsonOf(response), { status: 'ok' })
  assert.equal(stack.fake.requests.length, 0)
})

test('/readyz and GET / answer from the health checks: 200 while Ollama answers, 503/502 once a check fails', async (t) => {
  const stack = await startStack(t)
  const ready = await fetch(`${stack.url}/readyz`)
  assert.equal(ready.status, 200)
  assert.equal((await jsonOf(ready)).status, 'ready')
  const root = await fetch(`${stack.url}/`)
  assert.equal(root.status, 200)
  assert.equal(await root.text(), 'Ollama is running')
  assert.match(root.headers.get('content-type') ?? '', /^text\/plain/)
  assert.equal(stack.fake.requests.length, 0, 'no upstream request per probe')
  await stack.fake.close()
  await stack.app.hostHealth.checkAll()
  await stack.app.hostHealth.checkAll()
  const down = await fetch(`${stack.url}/readyz`)
  assert.equal(down.status, 503)
  assert.equal(typeof (await jsonOf(down)).error, 'string')
  const rootDown = await fetch(`${stack.url}/`)
  assert.equal(rootDown.status, 502)
  assert.deepEqual(await jsonOf(rootDown), { error: 'Ollama is unreachable' })
})

test('a thousand keyless probes pipelined in one write cost no upstream request', async (t) => {
  const stack = await startStack(t)
  const checksBefore = stack.fake.checks.length
  const client = await RawClient.open(stack.url)
  t.after(() => { client.destroy() })
  client.socket.write('GET /readyz HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n'.repeat(500))
  for (let i = 0; i < 1000; i++) assert.equal((await client.answer()).status, 200)
  assert.equal(stack.fake.requests.length, 0)
  assert.ok(stack.fake.checks.length - checksBefore <= 6, 'only the health checks themselves reached Ollama')
  await waitUntil('the probes to be logged', () => stack.logs.requestLines().length >= 1000)
})

test('/readyz waits for the first health check; a hanging Ollama is not ready once the check gives up (2 s)', async (t) => {
  const { createServer } = await import('node:http')
  const hanging = createServer(() => {})
  await new Promise<void>(resolve => hanging.listen(0, '127.0.0.1', resolve))
  t.after(() => { hanging.closeAllConnections(); hanging.close() })
  const address = hanging.address() as { port: number }
  const proxy = await startProxy(t, testConfig(`http://127.0.0.1:${address.port}`))
  const started = performance.now()
  const response = await fetch(`${proxy.url}/readyz`)
  assert.equal(response.status, 503)
  await response.arrayBuffer()
  const took = performance.now() - started
  // The first check's own 2 s timeout decided it: not sooner, and long before the test would time out.
  assert.ok(took >= 1500 && took < 15_000, `${Math.round(took)} ms`)
})

test('health checks do not queue behind client streams (service.max_connections: 1)', async (t) => {
  const stack = await startStack(t, { service: { max_connections: 1 } })
  const controller = new AbortController()
  t.after(() => { controller.abort() })
  const stream = await fetch(`${stack.url}/api/chat`, {
    method: 'POST',
    signal: controller.signal,
    headers: bearer(TOKENS.generate),
    body: JSON.stringify({ model: 'llama3.2', messages: [], fake: { chunks: 100_000, delay_ms: 10 } })
  })
  assert.equal(stream.status, 200)
  const checksBefore = stack.fake.checks.length
  await stack.app.hostHealth.checkAll()
  assert.ok(stack.fake.checks.length > checksBefore, 'the check reached Ollama while the stream holds the only client connection')
  assert.equal(stack.app.upstreams.hosts[0].healthy, true)
  assert.equal((await fetch(`${stack.url}/readyz`)).status, 200)
  controller.abort()
})

test('an Ollama older than 0.30.1 (cached prompt tokens left out of its counts) is warned about once', async (t) => {
  const logs = new LogCapture()
  const old = await startFakeOllama({ version: '0.30.0' })
  t.after(async () => { await old.close() })
  const proxy = await startProxy(t, testConfig(old.url), logs)
  await proxy.app.hostHealth.checked()
  await proxy.app.hostHealth.checkAll()
  const warnings = logs.entries().filter(e => e.level === 40 && String(e.msg).includes('may leave cached prompt tokens out'))
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0].version, '0.30.0')

  const currentLogs = new LogCapture()
  const current = await startFakeOllama()
  t.after(async () => { await current.close() })
  const fine = await startProxy(t, testConfig(current.url), currentLogs)
  await fine.app.hostHealth.checked()
  assert.ok(!currentLogs.text.includes('cached prompt tokens'))
})

test('undercountsCachedTokens reads versions as Ollama prints them', () => {
  const cases: Array<[string | undefined, boolean]> = [['0.30.0', true], ['0.30.0-rc3', true], ['0.29.9', true], ['v0.1.48', true], ['0.30.1', false], ['0.33.0', false], ['1.0.0', false], ['unknown', false], [undefined, false]]
  for (const [version, expected] of cases) assert.equal(undercountsCachedTokens(version), expected, String(version))
})

test('an Ollama listening on every address of the machine is found where the proxy reaches it on loopback', async (t) => {
  const { Agent } = await import('undici')
  const agent = new Agent()
  t.after(async () => { await agent.close() })
  // 127.0.0.2 stands in for another address of this machine: every 127/8 address is local.
  const open = await startFakeOllama({ host: '0.0.0.0' })
  t.after(async () => { await open.close() })
  const host = { url: `http://127.0.0.1:${open.port}`, basePath: '' }
  assert.deepEqual(await exposedAddresses(agent, host, ['127.0.0.2']), [`127.0.0.2:${open.port}`])
  const loopbackOnly = await startFakeOllama({ host: '127.0.0.1' })
  t.after(async () => { await loopbackOnly.close() })
  assert.deepEqual(await exposedAddresses(agent, { url: `http://127.0.0.1:${loopbackOnly.port}`, basePath: '' }, ['127.0.0.2']), [])
  for (const [name, loopback] of [['localhost', true], ['127.0.0.1', true], ['127.8.9.10', true], ['[::1]', true], ['ollama', false], ['192.0.2.2', false], ['10.0.0.1', false]] as const) {
    assert.equal(isLoopback(name), loopback, name)
  }
})
