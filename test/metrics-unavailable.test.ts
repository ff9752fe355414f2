// Alone in its file (each test file is its own process): the resolve hook below makes every later
// import of prom-client in this process fail, as on an installation that lacks it.
import assert from 'node:assert/strict'
import { register } from 'node:module'
import { test } from 'node:test'
import { bearer, jsonOf, startStack, TOKENS, waitUntil } from './helper.js'

const refuseProm = 'export async function resolve (specifier, context, next) {' +
  ' if (specifier === "prom-client") throw Object.assign(new Error("Cannot find package \'prom-client\'"), { code: "ERR_MODULE_NOT_FOUND" });' +
  ' return next(specifier, context) }'
register(`data:text/javascript,${encodeURIComponent(refuseProm)}`)

test('/metrics when prom-client cannot be loaded: a clear 503 on every scrape, the cause logged, the proxy serves on', async (t) => {
  const stack = await startStack(t)
  for (let scrape = 0; scrape < 2; scrape++) {
    const response = await fetch(`${stack.url}/metrics`, { headers: bearer(TOKENS.model) })
    assert.equal(response.status, 503)
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/)
    assert.deepEqual(await jsonOf(response), { error: 'metrics are unavailable: the proxy could not load prom-client (the cause is in its log; it tries again only after a restart)' })
  }
  await waitUntil('the cause to be logged', () => stack.logs.entries().some(entry =>
    entry.msg === 'metrics unavailable: prom-client could not be loaded' && JSON.stringify(entry.err).includes('ERR_MODULE_NOT_FOUND')))

  const chat = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(TOKENS.generate), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { chunks: 2 } }) })
  assert.equal(chat.status, 200)
  await chat.arrayBuffer()
  assert.equal((await fetch(`${stack.url}/healthz`)).status, 200)
})
