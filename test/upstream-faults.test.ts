import assert from 'node:assert/strict'
import { test } from 'node:test'
import { once } from 'node:events'
import { TOKENS, bearer, jsonOf, startStack, waitUntil } from './helper.js'

const gen = bearer(TOKENS.generate)
// Timeouts here are the proxy's own (1-3 s in these configs, 10-600 s by default). Fake answers that
// would end by themselves take far longer than the test may run, and elapsed-time bounds sit well
// above the configured timeout, well below the default: they show which timer fired, on any machine.
const chat = (fake: Record<string, unknown>, stream = true) => JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream, fake })

test('Ollama resetting before its first byte gives 502 JSON; the request id is in the log', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: { ...gen, 'x-request-id': 'reset-1' }, body: chat({ fail: 'reset-before-headers' }) })
  assert.equal(response.status, 502)
  assert.deepEqual(await jsonOf(response), { error: 'Ollama is unreachable' })
  await waitUntil('the request to be logged', () => stack.logs.requestLines().some(l => l.reqId === 'reset-1'))
  const line = stack.logs.requestLines().find(l => l.reqId === 'reset-1')
  assert.equal(line?.status, 502)
  assert.ok((line?.upstream as { error?: string }).error)
  assert.equal((await fetch(`${stack.url}/healthz`)).status, 200)
})

test('Ollama dying mid-stream ends the client\'s stream instead of hanging it', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: gen, body: chat({ fail: 'reset-midstream', chunks: 10, delay_ms: 20 }) })
  assert.equal(response.status, 200)
  const started = performance.now()
  const outcome = await response.text().then(text => ({ ok: true, text }), (err: Error) => ({ ok: false, text: String(err) }))
  assert.ok(performance.now() - started < 20_000, 'the stream ended instead of hanging')
  assert.equal(outcome.ok, false, 'the client sees a truncated stream, not a clean end: ' + outcome.text)
  const next = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: gen, body: chat({}, false) })
  assert.equal(next.status, 200, 'the proxy serves the next request')
  await next.arrayBuffer()
})

test('an error line inside a 200 stream passes through', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/generate`, { method: 'POST', headers: gen, body: JSON.stringify({ model: 'llama3.2', prompt: 'x', fake: { fail: 'error-midstream' } }) })
  assert.equal(response.status, 200)
  const lines = (await response.text()).trim().split('\n').map(l => JSON.parse(l))
  assert.ok('error' in lines.at(-1))
})

test('no first byte within first_byte_timeout gives 504 in dialect', async (t) => {
  const stack = await startStack(t, { service: { first_byte_timeout: 1 } })
  const started = performance.now()
  const native = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: gen, body: chat({ first_byte_delay_ms: 60_000 }) })
  assert.equal(native.status, 504)
  assert.deepEqual(await jsonOf(native), { error: 'Ollama did not answer in time' })
  assert.ok(performance.now() - started < 20_000)
  const openai = await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: gen, body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { first_byte_delay_ms: 60_000 } }) })
  assert.equal(openai.status, 504)
  assert.equal((await jsonOf(openai)).error.type, 'api_error')
  const anthropic = await fetch(`${stack.url}/v1/messages`, { method: 'POST', headers: gen, body: JSON.stringify({ model: 'llama3.2', max_tokens: 5, messages: [{ role: 'user', content: 'x' }], fake: { first_byte_delay_ms: 60_000 } }) })
  assert.equal(anthropic.status, 504)
  assert.equal((await jsonOf(anthropic)).error.type, 'timeout_error')
})

test('a stream silent for longer than idle_timeout is ended; a slow but steady one is not', async (t) => {
  const stack = await startStack(t, { service: { idle_timeout: 3 } })
  const stalled = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: gen, body: chat({ chunks: 3, delay_ms: 60_000 }) })
  assert.equal(stalled.status, 200)
  const started = performance.now()
  const outcome = await stalled.text().then(() => 'completed', () => 'cut')
  assert.equal(outcome, 'cut')
  assert.ok(performance.now() - started < 20_000)
  // Gaps 2.5 s shorter than idle_timeout, so a busy machine's late timers cannot cut it.
  const steady = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: gen, body: chat({ chunks: 8, delay_ms: 500 }) })
  const lines = (await steady.text()).trim().split('\n')
  assert.equal(lines.length, 9, 'a 4 s stream with 500 ms gaps completes: no total timeout')
})

test('Ollama\'s 503 "server busy" passes through and is never retried, GET included', async (t) => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/api/tags?fake_status=503`, { headers: gen })
  assert.equal(response.status, 503)
  await response.arrayBuffer()
  assert.equal(stack.fake.count('/api/tags'), 1)
})

test('an Ollama that never completes the TCP handshake gives 504 after connect_timeout', async (t) => {
  const { spawn, spawnSync } = await import('node:child_process')
  const { connect } = await import('node:net')
  const { startProxy, testConfig } = await import('./helper.js')
  if (spawnSync('python3', ['--version']).status !== 0) {
    t.skip('python3 is needed to hold a listening socket that never accepts')
    return
  }
  // A socket whose accept queue is full drops further SYNs: the connect hangs, as to a dead host.
  const holder = spawn('python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'])
  t.after(() => { holder.kill() })
  const port = await new Promise<number>(resolve => holder.stdout.once('data', data => resolve(Number(String(data).trim()))))
  const fillers = Array.from({ length: 4 }, () => connect(port, '127.0.0.1').on('error', () => {}))
  t.after(() => { for (const socket of fillers) socket.destroy() })
  await once(fillers[0], 'connect') // the accept queue is full: later handshakes hang
  const proxy = await startProxy(t, testConfig(`http://127.0.0.1:${port}`, { service: { connect_timeout: 1 } }))
  const started = performance.now()
  const response = await fetch(`${proxy.url}/api/tags`, { headers: gen })
  assert.equal(response.status, 504)
  assert.deepEqual(await jsonOf(response), { error: 'Ollama did not answer in time' })
  assert.ok(performance.now() - started < 8000, 'connect_timeout (1 s), not the 10 s default')
})
