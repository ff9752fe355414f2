import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RawClient } from './raw-http.js'
import { jsonOf, startProxy, startStack, testConfig, waitUntil } from './helper.js'

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
