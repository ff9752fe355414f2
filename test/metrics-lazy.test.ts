import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { dirname, sep } from 'node:path'
import { test } from 'node:test'
import { bearer, startStack, TOKENS, waitUntil } from './helper.js'

// Alone in its file (each test file is its own process): any scrape before this test, or any
// static import of prom-client anywhere in the app, would load it before the check.
const require = createRequire(import.meta.url)
const promClientDir = dirname(require.resolve('prom-client')) + sep
const openTelemetryMain = require.resolve('@opentelemetry/api')
const openTelemetryDir = openTelemetryMain.slice(0, openTelemetryMain.lastIndexOf(`${sep}@opentelemetry${sep}api${sep}`)) + `${sep}@opentelemetry${sep}api${sep}`
/** Whether any module from `dir` is in the CommonJS cache, where an ESM import of prom-client lands too. */
const loadedFrom = (dir: string) => Object.keys(require.cache).some(path => path.startsWith(dir))

test('prom-client is loaded on the first /metrics scrape, not at start or by requests', async (t) => {
  assert.ok(require.cache[require.resolve('fastify')] !== undefined, 'the check sees modules the app loaded')
  const stack = await startStack(t)
  const chat = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(TOKENS.generate), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { chunks: 2 } }) })
  assert.equal(chat.status, 200)
  await chat.arrayBuffer()
  await waitUntil('the request to be counted', () => stack.logs.requestLines().length >= 1)
  assert.equal(loadedFrom(promClientDir), false, 'prom-client is not loaded by building the app and serving a request')
  assert.equal(loadedFrom(openTelemetryDir), false, '@opentelemetry/api neither')

  const response = await fetch(`${stack.url}/metrics`, { headers: bearer(TOKENS.model) })
  assert.equal(response.status, 200)
  assert.match(await response.text(), /^ollama_proxy_requests_total\{route="\/api\/chat",method="POST",status="200",key="generate-[0-9a-f]+"\} 1$/m)
  assert.equal(loadedFrom(promClientDir), true, 'the scrape loaded prom-client')
})
