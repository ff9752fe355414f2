import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bearer, sleep, startStack, TOKENS } from './helper.js'

const gen = bearer(TOKENS.generate)

// The GPU's only stop signal is a closed connection (ollama-api.md §5): when the client leaves,
// the proxy must close its upstream request at once, whether or not Ollama has answered yet.

async function abortAfter (url: string, body: unknown, ms: number, readFirstChunk = false): Promise<number> {
  const controller = new AbortController()
  const response = fetch(url, { method: 'POST', headers: gen, body: JSON.stringify(body), signal: controller.signal })
  if (readFirstChunk) {
    const reader = (await response).body!.getReader()
    await reader.read()
  } else {
    response.catch(() => {})
  }
  await sleep(ms)
  controller.abort()
  return performance.now()
}

for (const stream of [true, false]) {
  test(`a client leaving before Ollama's first byte closes the upstream request (stream: ${stream})`, async (t) => {
    const stack = await startStack(t)
    const closed = stack.fake.waitForEarlyClose('/api/chat', 5000)
    const abortedAt = await abortAfter(`${stack.url}/api/chat`, {
      model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream, fake: { first_byte_delay_ms: 10_000 }
    }, 300)
    const request = await closed
    assert.ok(request.closedAt! - abortedAt < 1000, `Ollama saw the close ${Math.round(request.closedAt! - abortedAt)} ms after the client left`)
    await sleep(100)
    const line = stack.logs.requestLines().at(-1)
    assert.equal(line?.status, 499)
    assert.equal(line?.aborted, true)
  })
}

test('a client leaving mid-stream closes the upstream request', async (t) => {
  const stack = await startStack(t)
  const closed = stack.fake.waitForEarlyClose('/api/generate', 5000)
  const abortedAt = await abortAfter(`${stack.url}/api/generate`, { model: 'llama3.2', prompt: 'hi', fake: { chunks: 1000, delay_ms: 20 } }, 200, true)
  const request = await closed
  assert.ok(request.closedAt! - abortedAt < 1000)
  assert.ok(!request.finished)
})

test('a client leaving mid-upload of a blob closes the upstream upload', async (t) => {
  const stack = await startStack(t)
  const digest = 'sha256:' + 'b'.repeat(64)
  const closed = stack.fake.waitForEarlyClose(`/api/blobs/${digest}`, 5000)
  const controller = new AbortController()
  let sent = 0
  const body = new ReadableStream({
    async pull (stream) {
      if (controller.signal.aborted || sent > 200) {
        stream.close()
        return
      }
      if (sent > 3) await sleep(100)
      sent++
      stream.enqueue(new Uint8Array(64 * 1024))
    }
  })
  const upload = fetch(`${stack.url}/api/blobs/${digest}`, { method: 'POST', headers: bearer(TOKENS.model), body, signal: controller.signal, duplex: 'half' } as RequestInit)
  upload.catch(() => {})
  await sleep(400)
  const abortedAt = performance.now()
  controller.abort()
  const request = await closed
  assert.ok(request.closedAt! - abortedAt < 1000)
})
