// Self-test of the fake Ollama server, over real HTTP.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'
import { performance } from 'node:perf_hooks'
import { startFakeOllama, type FakeOllama } from './fake-ollama.js'
import { contentText } from './fake-ollama-shapes.js'

let fake: FakeOllama

before(async () => { fake = await startFakeOllama() })
after(async () => { await fake.close() })

const post = (path: string, body: unknown, init: RequestInit = {}): Promise<Response> =>
  fetch(fake.url + path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, ...init })

const lines = (text: string): any[] => text.split('\n').filter(l => l !== '').map(l => JSON.parse(l))

interface SseEvent { event?: string, data: string }
function sse (text: string): SseEvent[] {
  return text.split('\n\n').filter(b => b !== '').map(block => {
    const ev: SseEvent = { data: '' }
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) ev.event = line.slice(7)
      else if (line.startsWith('data: ')) ev.data = line.slice(6)
    }
    return ev
  })
}

/** Reads a streamed body chunk by chunk; resolves with what arrived and the error (if the stream broke). */
async function readAll (res: Response, onChunk?: (text: string) => void): Promise<{ text: string, error?: unknown }> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return { text }
      const chunk = decoder.decode(value, { stream: true })
      text += chunk
      onChunk?.(chunk)
    }
  } catch (error) {
    return { text, error }
  }
}

interface RawResponse { status: number, headers: IncomingHttpHeaders, body: string, continued: boolean }

/** node:http request: custom Host, chunked bodies, Expect: 100-continue. */
function raw (path: string, opts: { method?: string, headers?: OutgoingHttpHeaders, chunks?: Buffer[] } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let continued = false
    const req = request(fake.url + path, { method: opts.method ?? 'GET', headers: opts.headers, agent: false })
    const writeBody = (): void => {
      for (const chunk of opts.chunks ?? []) req.write(chunk)
      req.end()
    }
    req.on('continue', () => { continued = true; writeBody() })
    req.on('response', res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, continued })
        req.destroy()
      })
    })
    req.on('error', reject)
    if (opts.headers?.expect === '100-continue') req.flushHeaders()
    else writeBody()
  })
}

const chatBody = (extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hi' }], ...extra })

describe('general routes', () => {
  it('answers /, HEAD /, version, status', async () => {
    const root = await fetch(fake.url + '/')
    assert.equal(root.status, 200)
    assert.equal(root.headers.get('content-type'), 'text/plain; charset=utf-8')
    assert.equal(await root.text(), 'Ollama is running')
    assert.equal((await fetch(fake.url + '/', { method: 'HEAD' })).status, 200)
    const version = await fetch(fake.url + '/api/version')
    assert.equal(version.headers.get('content-type'), 'application/json; charset=utf-8')
    assert.deepEqual(await version.json(), { version: '0.33.0' })
    assert.deepEqual(await (await fetch(fake.url + '/api/status')).json(), { cloud: { disabled: false, source: 'none' } })
  })

  it('404s unknown paths and 405s wrong methods with gin text bodies', async () => {
    const nf = await fetch(fake.url + '/api/nope')
    assert.equal(nf.status, 404)
    assert.equal(nf.headers.get('content-type'), 'text/plain')
    assert.equal(await nf.text(), '404 page not found')
    const na = await fetch(fake.url + '/api/chat')
    assert.equal(na.status, 405)
    assert.equal(await na.text(), '405 method not allowed')
    assert.equal((await fetch(fake.url + '/api/ps', { method: 'HEAD' })).status, 405)
  })

  it('lists tags and ps, shows models', async () => {
    const tags = await (await fetch(fake.url + '/api/tags')).json() as { models: Array<{ name: string }> }
    for (const name of ['llama3.2:latest', 'nomic-embed-text:latest', 'qwen3:8b', 'alice/private:latest']) {
      assert.ok(tags.models.some(m => m.name === name), name)
    }
    const ps = await (await fetch(fake.url + '/api/ps')).json() as { models: Array<{ name: string, size_vram: number }> }
    assert.deepEqual(ps.models.map(m => m.name), ['llama3.2:latest'])
    const show = await post('/api/show', { model: 'LLAMA3.2' })
    assert.equal(show.status, 200)
    assert.equal(((await show.json()) as { details: { family: string } }).details.family, 'llama')
    const missing = await post('/api/show', { name: 'nope' })
    assert.equal(missing.status, 404)
    assert.deepEqual(await missing.json(), { error: "model 'nope' not found" })
  })

  it('enforces the Host and Origin checks of a loopback Ollama', async () => {
    const evil = await raw('/api/version', { headers: { host: 'evil.example.com' } })
    assert.equal(evil.status, 403)
    assert.equal(evil.body, '')
    assert.equal((await raw('/api/version', { headers: { host: 'ollama.internal:11434' } })).status, 200)
    assert.equal((await raw('/api/version', { headers: { origin: 'https://evil.example.com' } })).status, 403)
    const ok = await raw('/api/version', { headers: { origin: 'http://localhost:3000' } })
    assert.equal(ok.headers['access-control-allow-origin'], 'http://localhost:3000')
  })
})

describe('native inference', () => {
  it('streams chat chunks incrementally (first chunk before the last is written)', async () => {
    // 200 ms gaps: wide enough that a busy machine still reads the chunks one by one.
    const res = await post('/api/chat', chatBody({ fake: { chunks: 4, delay_ms: 200 } }))
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson')
    const rec = fake.last('/api/chat')!
    const arrivals: number[] = []
    let finishedAtFirstChunk: boolean | undefined
    const { text, error } = await readAll(res, () => {
      arrivals.push(performance.now())
      finishedAtFirstChunk ??= rec.finished
    })
    assert.equal(error, undefined)
    assert.equal(finishedAtFirstChunk, false)
    assert.ok(arrivals.length >= 3, `expected incremental reads, got ${arrivals.length}`)
    assert.ok(arrivals[arrivals.length - 1] - arrivals[0] >= 500)
    const chunks = lines(text)
    assert.equal(chunks.length, 5)
    assert.equal(chunks.slice(0, 4).map(c => c.message.content).join(''), contentText(4))
    const final = chunks[4]
    assert.equal(final.done, true)
    assert.equal(final.done_reason, 'stop')
    assert.equal(final.prompt_eval_count, 11)
    assert.equal(final.eval_count, 4)
    for (const key of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration']) assert.equal(typeof final[key], 'number')
    assert.ok(rec.finished)
    assert.equal(rec.closedEarly, false)
    assert.deepEqual((rec.json as { fake: unknown }).fake, { chunks: 4, delay_ms: 200 })
  })

  it('answers stream:false with one JSON object', async () => {
    const res = await post('/api/chat', chatBody({ stream: false, fake: { prompt_tokens: 7 } }))
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8')
    const body = await res.json() as Record<string, any>
    assert.equal(body.message.content, contentText(3))
    assert.equal(body.prompt_eval_count, 7)
    assert.equal(body.eval_count, 3)
    const gen = await (await post('/api/generate', { model: 'qwen3:8b', prompt: 'Hi', stream: false })).json() as Record<string, any>
    assert.equal(gen.response, contentText(3))
    assert.ok(Array.isArray(gen.context))
  })

  it('streams generate with context on the final chunk', async () => {
    const res = await post('/api/generate', { model: 'llama3.2', prompt: 'Hi', fake: { chunks: 2 } })
    const chunks = lines(await res.text())
    assert.deepEqual(chunks.map(c => c.done), [false, false, true])
    assert.equal(chunks[0].response, 'Hello')
    assert.ok(Array.isArray(chunks[2].context))
  })

  it('validates models', async () => {
    const noModel = await post('/api/chat', { messages: [] })
    assert.equal(noModel.status, 400)
    assert.deepEqual(await noModel.json(), { error: 'model is required' })
    const unknown = await post('/api/chat', chatBody({ model: 'nope' }))
    assert.equal(unknown.status, 404)
    assert.deepEqual(await unknown.json(), { error: "model 'nope' not found" })
    assert.equal((await post('/api/generate', { prompt: 'x' })).status, 404) // Ollama: model '' not found
    assert.equal((await post('/api/chat', chatBody({ model: 'anything-goes', stream: false, fake: {} }))).status, 200)
    const load = await (await post('/api/generate', { model: 'llama3.2', keep_alive: 0 })).json() as Record<string, unknown>
    assert.equal(load.done_reason, 'unload')
    const empty = await post('/api/chat', '')
    assert.equal(empty.status, 400)
  })

  it('embeds', async () => {
    const embed = await (await post('/api/embed', { model: 'nomic-embed-text', input: ['a', 'b'] })).json() as Record<string, any>
    assert.equal(embed.embeddings.length, 2)
    assert.equal(embed.prompt_eval_count, 11)
    const legacy = await (await post('/api/embeddings', { model: 'nomic-embed-text', prompt: 'a' })).json() as Record<string, any>
    assert.deepEqual(legacy.embedding, embed.embeddings[0])
  })
})

describe('model management', () => {
  it('streams pull progress and adds the model', async () => {
    const res = await post('/api/pull', { name: 'mistral', fake: { chunks: 3, delay_ms: 1 } })
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson')
    const progress = lines(await res.text())
    assert.equal(progress[0].status, 'pulling manifest')
    assert.match(progress[1].status, /^pulling [0-9a-f]{12}$/)
    assert.equal(progress[1].completed, undefined)
    assert.equal(progress[3].completed, progress[3].total)
    assert.deepEqual(progress.slice(-3).map(p => p.status), ['verifying sha256 digest', 'writing manifest', 'success'])
    const tags = await (await fetch(fake.url + '/api/tags')).json() as { models: Array<{ name: string }> }
    assert.ok(tags.models.some(m => m.name === 'mistral:latest'))
    const quiet = await post('/api/pull', { model: 'phi3', stream: false })
    assert.deepEqual(await quiet.json(), { status: 'success' })
  })

  it('reports a missing model inside a 200 stream, or as 500 when not streaming', async () => {
    const res = await post('/api/pull', { model: 'nope' })
    assert.equal(res.status, 200)
    assert.deepEqual(lines(await res.text()), [{ status: 'pulling manifest' }, { error: 'pull model manifest: file does not exist' }])
    const quiet = await post('/api/pull', { model: 'nope', stream: false })
    assert.equal(quiet.status, 500)
    assert.deepEqual(await quiet.json(), { error: 'pull model manifest: file does not exist' })
  })

  it('pushes, creates, copies and deletes', async () => {
    const pushed = lines(await (await post('/api/push', { model: 'alice/private' })).text())
    assert.equal(pushed.at(-1).status, 'success')
    const noSource = await post('/api/create', { model: 'mario' })
    assert.equal(noSource.status, 400)
    assert.deepEqual(await noSource.json(), { error: "neither 'from' or 'files' was specified" })
    const created = lines(await (await post('/api/create', { model: 'mario', from: 'llama3.2' })).text())
    assert.equal(created.at(-1).status, 'success')
    const copied = await post('/api/copy', { source: 'mario', destination: 'backup' })
    assert.equal(copied.status, 200)
    assert.equal(await copied.text(), '')
    const del = (name: string): Promise<Response> => fetch(fake.url + '/api/delete', { method: 'DELETE', body: JSON.stringify({ name }) })
    assert.equal((await del('backup')).status, 200)
    const again = await del('backup')
    assert.equal(again.status, 404)
    assert.deepEqual(await again.json(), { error: "model 'backup' not found" })
  })
})

describe('blobs', () => {
  const data = [randomBytes(64 * 1024), randomBytes(1000), randomBytes(300 * 1024)]
  const digest = 'sha256:' + createHash('sha256').update(Buffer.concat(data)).digest('hex')
  const size = data.reduce((n, b) => n + b.length, 0)

  it('hashes a chunked upload without keeping it', async () => {
    assert.equal((await raw('/api/blobs/' + digest, { method: 'HEAD' })).status, 404)
    const res = await raw('/api/blobs/' + digest, { method: 'POST', headers: { 'content-type': 'application/json' }, chunks: data })
    assert.equal(res.status, 201)
    assert.equal(res.body, '')
    assert.equal(fake.blobs.get(digest), size)
    const rec = fake.last('/api/blobs/' + digest)!
    assert.equal(rec.headers['transfer-encoding'], 'chunked')
    assert.equal(rec.body.length, 0)
    assert.equal(rec.bodyBytes, size)
    assert.equal((await raw('/api/blobs/' + digest, { method: 'HEAD' })).status, 200)
  })

  it('answers 200 without reading the body when the blob exists', async () => {
    const res = await raw('/api/blobs/' + digest, { method: 'POST', headers: { expect: '100-continue' }, chunks: data })
    assert.equal(res.status, 200)
    assert.equal(res.continued, false)
  })

  it('rejects a digest mismatch and a bad digest', async () => {
    const wrong = 'sha256:' + '0'.repeat(64)
    const res = await raw('/api/blobs/' + wrong, { method: 'POST', chunks: data })
    assert.equal(res.status, 400)
    assert.deepEqual(JSON.parse(res.body), { error: `digest mismatch, expected "${wrong}", got "${digest}"` })
    assert.equal(fake.blobs.has(wrong), false)
    assert.equal((await raw('/api/blobs/sha256:xyz', { method: 'POST', chunks: data })).status, 400)
    assert.equal((await raw('/api/blobs/sha256:xyz', { method: 'HEAD' })).status, 400)
  })
})

describe('test controls', () => {
  it('detects an early close by the client', async () => {
    const ac = new AbortController()
    const res = await post('/api/chat', chatBody({ fake: { chunks: 50, delay_ms: 20 } }), { signal: ac.signal })
    const reader = res.body!.getReader()
    await reader.read()
    ac.abort()
    const rec = await fake.waitForEarlyClose('/api/chat')
    assert.equal(rec.closedEarly, true)
    assert.equal(rec.finished, false)
    assert.ok(rec.closedAt! > rec.receivedAt)
  })

  it('reset-before-headers destroys the socket', async () => {
    await assert.rejects(post('/api/chat', chatBody({ fake: { fail: 'reset-before-headers' } })))
    const rec = fake.last('/api/chat')!
    assert.equal(rec.closedEarly, false)
    assert.equal(rec.finished, false)
  })

  it('reset-midstream cuts the stream after 2 chunks', async () => {
    const res = await post('/api/chat', chatBody({ fake: { chunks: 5, fail: 'reset-midstream' } }))
    assert.equal(res.status, 200)
    const { text, error } = await readAll(res)
    assert.ok(error !== undefined, 'body should fail')
    assert.equal(lines(text).length, 2)
    const sseRes = await post('/v1/chat/completions', chatBody({ stream: true, fake: { fail: 'reset-midstream' } }))
    assert.ok((await readAll(sseRes)).error !== undefined)
  })

  it('error-midstream ends the stream with an error line', async () => {
    const res = await post('/api/chat', chatBody({ fake: { chunks: 5, fail: 'error-midstream' } }))
    const chunks = lines(await res.text())
    assert.equal(chunks.length, 3)
    assert.deepEqual(chunks[2], { error: 'an error was encountered while running the model' })
    const quiet = await post('/api/chat', chatBody({ stream: false, fake: { fail: 'error-midstream' } }))
    assert.equal(quiet.status, 500)
    const sseText = await (await post('/v1/chat/completions', chatBody({ stream: true, fake: { chunks: 5, fail: 'error-midstream' } }))).text()
    assert.ok(!sseText.includes('[DONE]'))
  })

  it('hang never answers until the peer closes', async () => {
    fake.reset() // older, never-awaited /api/generate requests would otherwise be returned first
    const waiting = fake.waitForEarlyClose('/api/generate')
    const controller = new AbortController()
    let answered = false
    const call = post('/api/generate', { model: 'llama3.2', prompt: 'x', fake: { fail: 'hang' } }, { signal: controller.signal }).then(() => { answered = true })
    const arrived = await fake.waitForRequest('/api/generate')
    assert.equal(arrived.finished, false)
    controller.abort()
    await assert.rejects(call)
    assert.equal(answered, false, 'no answer came before the peer closed')
    const rec = await waiting
    assert.equal(rec.closedEarly, true)
    assert.ok(rec.closedAt! >= rec.receivedAt)
  })

  it('delays the first byte, overrides status, adds headers', async () => {
    const t0 = performance.now()
    const res = await post('/api/chat', chatBody({ stream: false, fake: { first_byte_delay_ms: 150, chunks: 1 } }))
    assert.ok(performance.now() - t0 >= 140)
    await res.body?.cancel()
    const busy = await post('/api/chat', chatBody({ fake: { status: 503 } }))
    assert.equal(busy.status, 503)
    assert.deepEqual(await busy.json(), { error: 'server busy, please try again.  maximum pending requests exceeded' })
    const oai = await post('/v1/chat/completions', chatBody({ fake: { status: 429, error: 'slow down' } }))
    assert.deepEqual(await oai.json(), { error: { message: 'slow down', type: 'api_error', param: null, code: null } })
    const ant = await post('/v1/messages', { fake: { status: 503 } })
    assert.equal(((await ant.json()) as { error: { type: string } }).error.type, 'overloaded_error')
    const extra = await post('/api/chat', chatBody({ stream: false, fake: { headers: { 'x-extra': '1', 'keep-alive': 'timeout=5' } } }))
    assert.equal(extra.headers.get('x-extra'), '1')
    assert.equal(extra.headers.get('keep-alive'), 'timeout=5')
  })

  it('accepts controls in the query string of GET routes', async () => {
    const res = await fetch(fake.url + '/api/tags?fake_status=500&fake_error=boom')
    assert.equal(res.status, 500)
    assert.deepEqual(await res.json(), { error: 'boom' })
    const t0 = performance.now()
    assert.equal((await fetch(fake.url + '/api/version?fake_first_byte_delay_ms=100')).status, 200)
    assert.ok(performance.now() - t0 >= 90)
    await assert.rejects(fetch(fake.url + '/api/ps?fake_fail=reset-before-headers'))
    assert.equal(fake.last()!.query, '?fake_fail=reset-before-headers')
  })

  it('waits for requests, counts, resets', async () => {
    fake.reset() // older, never-awaited /api/show requests would otherwise be returned first
    const waiting = fake.waitForRequest('/api/show')
    await (await post('/api/show', { model: 'qwen3:8b' })).text()
    const rec = await waiting
    assert.deepEqual(rec.json, { model: 'qwen3:8b' })
    await (await post('/api/show', { model: 'llama3.2' })).text()
    assert.deepEqual((await fake.waitForRequest('/api/show')).json, { model: 'llama3.2' }) // recorded, not yet awaited
    assert.ok(fake.count('/api/show', 'POST') >= 2)
    await assert.rejects(fake.waitForRequest('/api/show', 50))
    fake.reset()
    assert.equal(fake.requests.length, 0)
    assert.equal(fake.count('/api/show'), 0)
  })
})

describe('OpenAI and Anthropic dialects', () => {
  it('answers chat completions with usage', async () => {
    const res = await post('/v1/chat/completions', chatBody({ fake: { chunks: 2 } }))
    const body = await res.json() as Record<string, any>
    assert.equal(body.object, 'chat.completion')
    assert.equal(body.choices[0].message.content, contentText(2))
    assert.deepEqual(body.usage, { prompt_tokens: 11, completion_tokens: 2, total_tokens: 13 })
    const bad = await post('/v1/chat/completions', { model: 'llama3.2', messages: [] })
    assert.deepEqual(await bad.json(), { error: { message: "[] is too short - 'messages'", type: 'invalid_request_error', param: null, code: null } })
    const nf = await post('/v1/chat/completions', chatBody({ model: 'nope' }))
    assert.equal(nf.status, 404)
    assert.equal(((await nf.json()) as { error: { type: string } }).error.type, 'not_found_error')
  })

  it('streams chat completions as SSE with a usage chunk and [DONE]', async () => {
    const res = await post('/v1/chat/completions', chatBody({ stream: true, stream_options: { include_usage: true }, fake: { chunks: 3 } }))
    assert.equal(res.headers.get('content-type'), 'text/event-stream')
    const events = sse(await res.text())
    assert.equal(events.at(-1)!.data, '[DONE]')
    const chunks = events.slice(0, -1).map(e => JSON.parse(e.data))
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: 'Hello' })
    assert.equal(chunks[3].choices[0].finish_reason, 'stop')
    assert.deepEqual(chunks[4].choices, [])
    assert.deepEqual(chunks[4].usage, { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 })
  })

  it('streams completions', async () => {
    const events = sse(await (await post('/v1/completions', { model: 'llama3.2', prompt: 'Say hi', stream: true })).text())
    assert.equal(JSON.parse(events[0].data).object, 'text_completion')
    assert.equal(events.at(-1)!.data, '[DONE]')
  })

  it('streams responses with event lines', async () => {
    const res = await post('/v1/responses', { model: 'llama3.2', input: 'Hi', stream: true, fake: { chunks: 2 } })
    assert.equal(res.headers.get('cache-control'), 'no-cache')
    const events = sse(await res.text())
    assert.deepEqual(events.map(e => e.event), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
      'response.output_text.delta', 'response.output_text.delta', 'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed'])
    const done = JSON.parse(events.at(-1)!.data)
    assert.equal(done.response.usage.output_tokens, 2)
    const plain = await (await post('/v1/responses', { model: 'llama3.2', input: 'Hi' })).json() as Record<string, any>
    assert.equal(plain.output[0].content[0].text, contentText(3))
  })

  it('streams Anthropic messages', async () => {
    const res = await post('/v1/messages', { model: 'llama3.2', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'Hi' }], fake: { chunks: 2, prompt_tokens: 5 } })
    const events = sse(await res.text())
    assert.deepEqual(events.map(e => e.event), ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
    assert.equal(JSON.parse(events[0].data).message.usage.input_tokens, 5)
    assert.equal(JSON.parse(events[5].data).usage.output_tokens, 2)
    const missing = await post('/v1/messages', { model: 'llama3.2', messages: [{ role: 'user', content: 'Hi' }] })
    assert.equal(missing.status, 400)
    const err = await missing.json() as Record<string, any>
    assert.equal(err.type, 'error')
    assert.equal(err.error.message, 'max_tokens is required and must be positive')
  })

  it('lists and retrieves models, embeds, transcribes', async () => {
    const list = await (await fetch(fake.url + '/v1/models')).json() as { data: Array<{ id: string, owned_by: string }> }
    assert.equal(list.data.find(m => m.id === 'alice/private:latest')?.owned_by, 'alice')
    assert.equal(((await (await fetch(fake.url + '/v1/models/llama3.2')).json()) as { id: string }).id, 'llama3.2')
    assert.equal((await fetch(fake.url + '/v1/models/nope')).status, 404)
    const emb = await (await post('/v1/embeddings', { model: 'nomic-embed-text', input: 'a' })).json() as Record<string, any>
    assert.equal(emb.data[0].object, 'embedding')
    const form = new FormData()
    form.append('model', 'llama3.2')
    form.append('file', new Blob([randomBytes(256)]), 'audio.wav')
    const tr = await fetch(fake.url + '/v1/audio/transcriptions', { method: 'POST', body: form })
    assert.deepEqual(await tr.json(), { text: 'hello world' })
    assert.equal((await post('/v1/audio/transcriptions', { model: 'llama3.2' })).status, 400)
  })
})
