import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import { bearer, startStack, TOKENS, waitUntil } from './helper.js'

const gen = bearer(TOKENS.generate)

// The GPU's only stop signal is a closed connection (ollama-api.md §5): when the client leaves,
// the proxy must close its upstream request at once, whether or not Ollama has answered yet.
// The fake's answers take a minute, longer than the test may run: only the client's leaving can
// close them. "At once" is checked against a bound far above any scheduling delay on a busy machine.
const PROMPTLY_MS = 5000

for (const stream of [true, false]) {
  test(`a client leaving before Ollama's first byte closes the upstream request (stream: ${stream})`, async (t) => {
    const stack = await startStack(t)
    const closed = stack.fake.waitForEarlyClose('/api/chat', 55_000)
    const controller = new AbortController()
    const response = fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      headers: gen,
      body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream, fake: { first_byte_delay_ms: 60_000 } }),
      signal: controller.signal
    })
    response.catch(() => {})
    await stack.fake.waitForRequest('/api/chat', 55_000)
    const abortedAt = performance.now()
    controller.abort()
    const request = await closed
    assert.ok(request.closedAt! - abortedAt < PROMPTLY_MS, `Ollama saw the close ${Math.round(request.closedAt! - abortedAt)} ms after the client left`)
    await waitUntil('the request to be logged', () => stack.logs.requestLines().length > 0)
    const line = stack.logs.requestLines().at(-1)
    assert.equal(line?.status, 499)
    assert.equal(line?.aborted, true)
  })
}

test('a client leaving mid-stream closes the upstream request', async (t) => {
  const stack = await startStack(t)
  const closed = stack.fake.waitForEarlyClose('/api/generate', 55_000)
  const controller = new AbortController()
  const response = await fetch(`${stack.url}/api/generate`, {
    method: 'POST', headers: gen, body: JSON.stringify({ model: 'llama3.2', prompt: 'hi', fake: { chunks: 1000, delay_ms: 60 } }), signal: controller.signal
  })
  const first = await response.body!.getReader().read()
  assert.equal(first.done, false, 'the stream had started')
  const abortedAt = performance.now()
  controller.abort()
  const request = await closed
  assert.ok(request.closedAt! - abortedAt < PROMPTLY_MS)
  assert.ok(!request.finished)
})

test('a client leaving mid-upload of a blob closes the upstream upload', async (t) => {
  const stack = await startStack(t)
  const digest = 'sha256:' + 'b'.repeat(64)
  const closed = stack.fake.waitForEarlyClose(`/api/blobs/${digest}`, 55_000)
  const controller = new AbortController()
  let sent = 0
  const body = new ReadableStream({
    async pull (stream) {
      // A few chunks, then nothing more until the client gives up: the upload can only end by the abort.
      if (sent >= 4) await once(controller.signal, 'abort')
      if (controller.signal.aborted) {
        stream.close()
        return
      }
      sent++
      stream.enqueue(new Uint8Array(64 * 1024))
    }
  })
  const upload = fetch(`${stack.url}/api/blobs/${digest}`, { method: 'POST', headers: bearer(TOKENS.model), body, signal: controller.signal, duplex: 'half' } as RequestInit)
  upload.catch(() => {})
  const arrived = await stack.fake.waitForRequest(`/api/blobs/${digest}`, 55_000)
  await waitUntil('part of the upload to reach Ollama', () => arrived.bodyBytes > 0)
  const abortedAt = performance.now()
  controller.abort()
  const request = await closed
  assert.ok(request.closedAt! - abortedAt < PROMPTLY_MS)
  assert.ok(!stack.fake.blobs.has(digest.replace(':', '-')) && !stack.fake.blobs.has(digest), 'the blob was not stored')
})
