import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { test } from 'node:test'
import { bareKey, bearer, TOKENS } from './fixtures/keys.js'
import { startStack } from './helper.js'

const MiB = 1024 * 1024

/** Streams `size` bytes of a repeating pattern as a chunked upload, with backpressure, and reports the status. */
async function chunkedUpload (url: string, size: number, headers: Record<string, string>): Promise<{ status: number, body: string }> {
  const target = new URL(url)
  const block = Buffer.alloc(MiB)
  for (let i = 0; i < block.length; i++) block[i] = i % 251
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { ...headers, 'transfer-encoding': 'chunked' } }, res => {
      let body = ''
      res.on('data', chunk => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    let sent = 0
    const pump = () => {
      while (sent < size) {
        sent += block.length
        if (!req.write(block)) {
          req.once('drain', pump)
          return
        }
      }
      req.end()
    }
    pump()
  })
}

function digestOf (size: number): string {
  const block = Buffer.alloc(MiB)
  for (let i = 0; i < block.length; i++) block[i] = i % 251
  const hash = createHash('sha256')
  for (let sent = 0; sent < size; sent += MiB) hash.update(block)
  return 'sha256:' + hash.digest('hex')
}

test('a 256 MiB chunked blob upload streams through and Ollama verifies its digest', async (t) => {
  const stack = await startStack(t)
  const size = 256 * MiB
  const digest = digestOf(size)
  const result = await chunkedUpload(`${stack.url}/api/blobs/${digest}`, size, { ...bearer(TOKENS.model), 'content-type': 'application/json' })
  assert.equal(result.status, 201, result.body)
  assert.equal(stack.fake.blobs.get(digest), size)
  const seen = stack.fake.last()
  assert.equal(seen?.path, `/api/blobs/${digest}`)
  assert.equal(seen?.bodyBytes, size)
  assert.equal(seen?.headers.authorization, undefined)

  const wrong = await chunkedUpload(`${stack.url}/api/blobs/sha256:${'0'.repeat(64)}`, 2 * MiB, bearer(TOKENS.model))
  assert.equal(wrong.status, 400)
  assert.match(JSON.parse(wrong.body).error, /digest mismatch/)

  const exists = await fetch(`${stack.url}/api/blobs/${digest}`, { method: 'HEAD', headers: bearer(TOKENS.model) })
  assert.equal(exists.status, 200)
})

test('curl -T style uploads with Expect: 100-continue work (Expect is not forwarded)', async (t) => {
  const stack = await startStack(t)
  const payload = Buffer.from('gguf bytes '.repeat(1000))
  const digest = 'sha256:' + createHash('sha256').update(payload).digest('hex')
  const target = new URL(`${stack.url}/sys/blobs/${digest}`)
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: 'POST',
      headers: { ...bareKey(TOKENS.model), expect: '100-continue', 'content-length': payload.length }
    }, res => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)) })
    req.on('continue', () => req.end(payload))
    req.on('error', reject)
  })
  assert.equal(status, 201)
  assert.equal(stack.fake.last()?.headers.expect, undefined)
  assert.equal(stack.fake.blobs.get(digest), payload.length)
})

test('a blob upload with a generate key is refused before any byte is read', async (t) => {
  const stack = await startStack(t)
  const result = await chunkedUpload(`${stack.url}/api/blobs/sha256:${'1'.repeat(64)}`, 8 * MiB, bearer(TOKENS.generate))
  assert.equal(result.status, 401)
  assert.equal(stack.fake.requests.length, 0)
})

test('upload_limit, when configured, refuses larger uploads with 413', async (t) => {
  const stack = await startStack(t, { server: { upload_limit: MiB } })
  const declared = await fetch(`${stack.url}/api/blobs/sha256:${'2'.repeat(64)}`, { method: 'POST', headers: bearer(TOKENS.model), body: Buffer.alloc(2 * MiB) })
  assert.equal(declared.status, 413)
  await declared.arrayBuffer()
  const chunked = await chunkedUpload(`${stack.url}/api/blobs/sha256:${'3'.repeat(64)}`, 4 * MiB, bearer(TOKENS.model))
  assert.equal(chunked.status, 413, 'a chunked upload is cut off at the limit with 413, not blamed on Ollama')
  assert.match(JSON.parse(chunked.body).error, /configured limit of 1048576 bytes/)
})

test('multipart audio transcriptions are forwarded raw, boundary and all', async (t) => {
  const stack = await startStack(t)
  const form = new FormData()
  form.append('model', 'llama3.2')
  form.append('file', new Blob([Buffer.from('RIFF fake wav')], { type: 'audio/wav' }), 'a.wav')
  const response = await fetch(`${stack.url}/v1/audio/transcriptions`, { method: 'POST', headers: bearer(TOKENS.generate), body: form })
  assert.equal(response.status, 200)
  assert.deepEqual(await response.json(), { text: 'hello world' })
  const seen = stack.fake.last('/v1/audio/transcriptions')
  assert.match(String(seen?.headers['content-type']), /^multipart\/form-data; boundary=/)
  assert.ok(seen?.body.includes('RIFF fake wav'))
})
