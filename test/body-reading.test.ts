import assert from 'node:assert/strict'
import { gzipSync } from 'node:zlib'
import { test } from 'node:test'
import { authWith, bearer, KEYS, namedKey } from './fixtures/keys.js'
import { startStack } from './helper.js'
import { RawClient } from './raw-http.js'

const auth = bearer(KEYS.app)
const allowlisted = (server: Record<string, unknown> = {}) => ({
  ...authWith([namedKey('app', ['generate'], { models: ['llama3.2'] })], ['model']),
  server
})

const BOUNDARY = 'proxy-test-boundary-7f3a'

/** A multipart body built byte by byte, so the test can compare what Ollama received. */
function form (parts: Array<{ name: string, value: string | Buffer, filename?: string, type?: string }>): Buffer {
  const pieces: Buffer[] = []
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename !== undefined ? `; filename="${part.filename}"` : ''}`
    const type = part.type !== undefined ? `Content-Type: ${part.type}\r\n` : ''
    pieces.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`), Buffer.from(part.value), Buffer.from('\r\n'))
  }
  pieces.push(Buffer.from(`--${BOUNDARY}--\r\n`))
  return Buffer.concat(pieces)
}
const audio = { name: 'file', value: Buffer.from('RIFF\x00\x01fake wav bytes'), filename: 'a.wav', type: 'audio/wav' }
const multipart = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }

test('transcriptions: the model comes from ?model= or the form, as Ollama reads it, and is allowlisted', async (t) => {
  const stack = await startStack(t, allowlisted())
  const cases = [
    { what: 'allowed form field', query: '', parts: [{ name: 'model', value: 'llama3.2' }, audio], status: 200 },
    { what: 'allowed form field after the file', query: '', parts: [audio, { name: 'model', value: 'llama3.2:latest' }], status: 200 },
    { what: 'refused form field', query: '', parts: [{ name: 'model', value: 'other' }, audio], status: 403 },
    { what: 'allowed ?model=, no field', query: '?model=llama3.2', parts: [audio], status: 200 },
    { what: 'refused ?model= wins over an allowed field', query: '?model=other', parts: [{ name: 'model', value: 'llama3.2' }, audio], status: 403 },
    { what: 'refused ?model= spelled with +/%', query: '?mod%65l=oth%65r', parts: [{ name: 'model', value: 'llama3.2' }, audio], status: 403 },
    { what: 'a second, refused field is checked too', query: '', parts: [{ name: 'model', value: 'llama3.2' }, { name: 'model', value: 'other' }, audio], status: 403 },
    { what: 'a refused model sent as a file part', query: '', parts: [{ name: 'model', value: 'other', filename: 'm.txt' }, { name: 'model', value: 'llama3.2' }, audio], status: 403 },
    { what: 'no model', query: '', parts: [audio], status: 400 },
    { what: 'empty ?model= (Ollama: model is required)', query: '?model=', parts: [{ name: 'model', value: 'llama3.2' }, audio], status: 400 },
    { what: 'a ";" in the query (Go refuses it)', query: '?a=1;model=other', parts: [{ name: 'model', value: 'llama3.2' }, audio], status: 400 }
  ]
  for (const { what, query, parts, status } of cases) {
    stack.fake.reset()
    const body = form(parts)
    const response = await fetch(`${stack.url}/v1/audio/transcriptions${query}`, { method: 'POST', headers: { ...auth, ...multipart }, body })
    assert.equal(response.status, status, what)
    if (status !== 200) {
      assert.ok((await response.json() as { error: { message: string } }).error.message.length > 0)
      assert.equal(stack.fake.requests.length, 0, `${what}: nothing reached Ollama`)
      continue
    }
    await response.arrayBuffer()
    const seen = stack.fake.last('/v1/audio/transcriptions')
    assert.equal(seen?.headers['content-type'], multipart['content-type'], what)
    assert.ok(seen?.body.equals(body), `${what}: Ollama received the original bytes`)
  }
  // Forms Go and busboy could read differently are refused (each hides "other" from a naive reader).
  const llama = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nllama3.2\r\n`
  const file = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\r\n--${BOUNDARY}--\r\n`
  const ambiguousForms = [
    { what: 'name* overrides name in Go', body: `--${BOUNDARY}\r\nContent-Disposition: form-data; name*=UTF-8''model; name="x"\r\n\r\nother\r\n` + llama + file },
    { what: 'RFC 2231 continuation', body: `--${BOUNDARY}\r\nContent-Disposition: form-data; name*0="mo"; name*1="del"\r\n\r\nother\r\n` + llama + file },
    { what: 'two name parameters', body: `--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"; name="x"\r\n\r\nother\r\n` + llama + file },
    { what: 'quoted-printable value (Go decodes it)', body: `--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=6Fther\r\n` + file },
    { what: 'folded header', body: `--${BOUNDARY}\r\nContent-Disposition: form-data;\r\n name="model"\r\n\r\nother\r\n` + llama + file },
    { what: 'LF-only lines (Go reads them, busboy does not)', body: `--${BOUNDARY}\nContent-Disposition: form-data; name="model"\n\nother\n--${BOUNDARY}--\n` },
    { what: 'a preamble', body: `preamble\r\n${llama}${file}` }
  ]
  for (const { what, body } of ambiguousForms) {
    const response = await fetch(`${stack.url}/v1/audio/transcriptions`, { method: 'POST', headers: { ...auth, ...multipart }, body })
    assert.equal(response.status, 400, what)
    await response.arrayBuffer()
  }
  assert.equal(stack.fake.requests.length, 0)

  const notMultipart = await fetch(`${stack.url}/v1/audio/transcriptions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"model":"llama3.2"}' })
  assert.equal(notMultipart.status, 400)
  await notMultipart.arrayBuffer()
})

test('transcriptions: past server.transcription_limit, 413 before the body is read', async (t) => {
  const stack = await startStack(t, allowlisted({ transcription_limit: 4096 }))
  const big = form([{ name: 'model', value: 'llama3.2' }, { ...audio, value: Buffer.alloc(5000, 1) }])
  const declared = await RawClient.open(stack.url)
  declared.send('POST', '/v1/audio/transcriptions', { ...auth, ...multipart, 'content-length': big.length })
  const answer = await declared.answer()
  assert.equal(answer.status, 413)
  assert.match(JSON.parse(answer.body).error.message, /limit of 4096 bytes/)
  await declared.closed
  const chunked = await fetch(`${stack.url}/v1/audio/transcriptions`, {
    method: 'POST',
    headers: { ...auth, ...multipart },
    body: new ReadableStream({ start (controller) { controller.enqueue(big); controller.close() } }),
    duplex: 'half'
  } as RequestInit)
  assert.equal(chunked.status, 413)
  await chunked.arrayBuffer()
  assert.equal(stack.fake.requests.length, 0)
})

/** `{"model":"llama3.2",...}` and `{"model":"other",...}` compressed by the zstd CLI (level 19, with checksum). */
const ZSTD_ALLOWED = Buffer.from('28b52ffd046805020042c40d11a0ed8527ab2ddf698d0044de5838a03a30d3cc8366de753d6c0b5ba387bb7df1fae5769745ff569df7963d7c0872d861be9e3735bb0c010040ee12050ebac584', 'hex')
const ZSTD_REFUSED = Buffer.from('28b52ffd0468e50100c2430c11b0eba75d3f11c6b634f6a4a081269873026f3c03cd3c329aa933a5659bd14f5d7602bd3f64f7c9c1eb88a9d179a3c92e020052ee820bb30cb3703217', 'hex')

/** A zstd frame (RFC 8878) with window 2^(10+exponent) made of raw or RLE blocks. */
function zstdFrame (exponent: number, blocks: Array<{ raw: Buffer } | { rle: number, size: number }>): Buffer {
  const pieces: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, exponent << 3])]
  blocks.forEach((block, i) => {
    const last = i === blocks.length - 1 ? 1 : 0
    const header = Buffer.alloc(3)
    if ('raw' in block) {
      header.writeUIntLE((block.raw.length << 3) | last, 0, 3)
      pieces.push(header, block.raw)
    } else {
      header.writeUIntLE((block.size << 3) | (1 << 1) | last, 0, 3)
      pieces.push(header, Buffer.from([block.rle]))
    }
  })
  return Buffer.concat(pieces)
}

test('Content-Encoding: zstd is decoded for the checks where Ollama decodes it, and forwarded compressed', async (t) => {
  const stack = await startStack(t, allowlisted())
  const post = async (path: string, body: Uint8Array, encoding: string) =>
    await fetch(`${stack.url}${path}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'content-encoding': encoding }, body: new Uint8Array(body) })

  const anthropic = (model: string) => zstdFrame(10, [{ raw: Buffer.from(`{"model":"${model}","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`) }])
  const cases = [
    { path: '/v1/chat/completions', allowed: ZSTD_ALLOWED, refused: ZSTD_REFUSED },
    { path: '/v1/messages', allowed: anthropic('llama3.2'), refused: anthropic('other') }
  ]
  for (const { path, allowed, refused } of cases) {
    stack.fake.reset()
    const passed = await post(path, allowed, 'zstd')
    await passed.arrayBuffer()
    const seen = stack.fake.last(path)
    assert.ok(seen?.body.equals(allowed), `${path}: Ollama received the compressed bytes`)
    assert.equal(seen?.headers['content-encoding'], 'zstd')
    const stopped = await post(path, refused, 'zstd')
    assert.equal(stopped.status, 403, `${path}: the allowlist applies to the decoded model`)
    await stopped.arrayBuffer()
  }

  stack.fake.reset()
  const refusals = [
    { what: 'zstd where Ollama does not decode it', path: '/api/chat', body: ZSTD_ALLOWED, encoding: 'zstd', status: 415 },
    { what: 'gzip (Ollama decodes none)', path: '/v1/chat/completions', body: gzipSync('{"model":"llama3.2","messages":[]}'), encoding: 'gzip', status: 415 },
    { what: 'ZSTD (Go compares exactly)', path: '/v1/chat/completions', body: ZSTD_ALLOWED, encoding: 'ZSTD', status: 415 },
    { what: 'corrupt zstd', path: '/v1/chat/completions', body: Buffer.concat([ZSTD_ALLOWED.subarray(0, 20), Buffer.alloc(10)]), encoding: 'zstd', status: 400 },
    { what: 'window above Ollama\'s 8 MiB', path: '/v1/chat/completions', body: zstdFrame(14, [{ raw: Buffer.from('{}') }]), encoding: 'zstd', status: 400 },
    { what: 'a bomb: 21 MiB of RLE blocks in under 1 KiB', path: '/v1/chat/completions', body: zstdFrame(10, Array.from({ length: 168 }, () => ({ rle: 0x20, size: 128 * 1024 }))), encoding: 'zstd', status: 413 }
  ]
  for (const { what, path, body, encoding, status } of refusals) {
    const response = await post(path, body, encoding)
    assert.equal(response.status, status, what)
    await response.arrayBuffer()
  }
  assert.equal(stack.fake.requests.length, 0)
})
