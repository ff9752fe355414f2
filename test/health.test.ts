import assert from 'node:assert/strict'
import { test } from 'node:test'
import { jsonOf, startStack } from './helper.js'

test('/healthz answers without a key and without calling Ollama', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/healthz`)
  assert.equal(response.status, 200)
  assert.deepEqual(await jsonOf(response), { status: 'ok' })
  assert.equal(stack.fake.requests.length, 0)
})

test('/readyz is 200 while Ollama answers /api/version and 503 JSON when it does not', async (t) => {
  const stack = await startStack(t)
  const ready = await fetch(`${stack.url}/readyz`)
  assert.equal(ready.status, 200)
  assert.equal((await jsonOf(ready)).status, 'ready')
  assert.equal(stack.fake.last()?.path, '/api/version')
  await stack.fake.close()
  const down = await fetch(`${stack.url}/readyz`)
  assert.equal(down.status, 503)
  assert.equal(typeof (await jsonOf(down)).error, 'string')
})

test('/readyz gives up on a hanging Ollama within about 2 s', async (t) => {
  const { createServer } = await import('node:http')
  const hanging = createServer(() => {})
  await new Promise<void>(resolve => hanging.listen(0, '127.0.0.1', resolve))
  t.after(() => { hanging.closeAllConnections(); hanging.close() })
  const { testConfig, startProxy } = await import('./helper.js')
  const address = hanging.address() as { port: number }
  const proxy = await startProxy(t, testConfig(`http://127.0.0.1:${address.port}`))
  const started = performance.now()
  const response = await fetch(`${proxy.url}/readyz`)
  assert.equal(response.status, 503)
  await response.arrayBuffer()
  const took = performance.now() - started
  // The probe's own 2 s timeout ended it: not sooner, and long before the test would time out.
  assert.ok(took >= 1900 && took < 15_000, `${Math.round(took)} ms`)
})
