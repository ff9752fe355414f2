import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bearer, startStack, TOKENS, waitUntil } from './helper.js'

test('one log line per request with id, route, status, duration, key name, model and upstream timing', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/generate`, { method: 'POST', headers: { ...bearer(TOKENS.generate), 'x-request-id': 'req-42' }, body: '{"model":"llama3.2","prompt":"hi","stream":false}' })
  assert.equal(response.status, 200)
  await response.arrayBuffer()
  await waitUntil('the request line', () => stack.logs.requestLines().some(e => e.reqId === 'req-42'))
  const lines = stack.logs.entries().filter(e => e.reqId === 'req-42')
  assert.equal(lines.length, 1, JSON.stringify(lines))
  const [line] = lines
  assert.equal(line.msg, 'request')
  assert.equal(line.method, 'POST')
  assert.equal(line.route, '/api/generate')
  assert.equal(line.status, 200)
  assert.equal(typeof line.ms, 'number')
  assert.match(String(line.key), /^generate-[0-9a-f]{8}$/)
  assert.equal(line.keyKind, 'generate')
  assert.equal(line.model, 'llama3.2')
  const upstream = line.upstream as Record<string, unknown>
  assert.equal(upstream.status, 200)
  assert.equal(typeof upstream.firstByteMs, 'number')
})

test('no token, right or wrong, ever reaches the log', async (t) => {
  const stack = await startStack(t)
  const wrong = 'wrong-secret-value-7c1d2e3f4a5b6c7d'
  const attempts: Array<Record<string, string>> = [
    bearer(TOKENS.generate), { authorization: TOKENS.model }, bearer(wrong), { 'x-api-key': wrong }, { authorization: wrong.slice(0, 12) }
  ]
  for (const headers of attempts) {
    for (const path of ['/api/tags', '/api/pull', '/nope', '/api/chat']) {
      const response = await fetch(stack.url + path, { method: path === '/api/tags' || path === '/nope' ? 'GET' : 'POST', headers, body: path === '/api/tags' || path === '/nope' ? undefined : '{"model":"llama3.2","stream":false}' })
      await response.arrayBuffer()
    }
  }
  await stack.fake.close()
  const down = await fetch(`${stack.url}/api/tags`, { headers: { ...bearer(TOKENS.generate), 'x-request-id': 'last' } })
  await down.arrayBuffer()
  await waitUntil('the last request line', () => stack.logs.requestLines().some(e => e.reqId === 'last'))
  const text = stack.logs.text
  assert.ok(stack.logs.lines.length >= 21)
  for (const secret of [TOKENS.generate, TOKENS.model, wrong, wrong.slice(0, 12), TOKENS.generate.slice(0, 12), TOKENS.model.slice(4, 20)]) {
    assert.ok(!text.includes(secret), `the log holds ${secret.slice(0, 6)}…`)
  }
})
