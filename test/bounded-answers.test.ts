import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { gzipSync } from 'node:zlib'
import { startFakeOllama, type FakeOllama, type RawAnswer } from './fake-ollama.js'
import { authWith, bearer, KEYS, namedKey, TOKENS } from './fixtures/keys.js'
import { jsonOf, startProxy, startStack, testConfig } from './helper.js'
import { LineSplitter, MAX_ANSWER_BYTES, MAX_LINE_BYTES, MAX_LISTING_BYTES, UnreadableAnswer } from '../plugins/upstream/bounded-read.js'

const limited = bearer(KEYS.limited)
const admin = bearer(TOKENS.model)
const keys = authWith([namedKey('limited', ['generate', 'models:read'], { models: ['llama3.2'] })], ['generate', 'model'])
const HIDDEN = 'hidden-model-the-key-may-not-see'
const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' }

function listingOf (path: string): unknown {
  const names = ['llama3.2:latest', `${HIDDEN}:latest`]
  return path === '/v1/models'
    ? { object: 'list', data: names.map(id => ({ id, object: 'model', created: 0, owned_by: 'library' })) }
    : { models: names.map(name => ({ name, model: name, size: 1, digest: 'x' })) }
}

/** `total` bytes of `fill` in 64 KiB pieces after `head`; `produced.bytes` says how far the reader got. */
function * bigBody (head: string, fill: string, total: number, produced: { bytes: number }, tail = ''): Generator<Buffer> {
  yield Buffer.from(head)
  const piece = Buffer.alloc(64 * 1024, fill)
  for (let sent = 0; sent < total; sent += piece.length) {
    produced.bytes += piece.length
    yield piece
  }
  if (tail !== '') yield Buffer.from(tail)
}

/** The faults a front or a broken host can put on a listing, as raw answers. */
function listingFaults (path: string): Array<[string, () => RawAnswer]> {
  return [
    ['gzip', () => ({ headers: { ...JSON_TYPE, 'content-encoding': 'gzip' }, chunks: [gzipSync(JSON.stringify(listingOf(path)))] })],
    ['malformed', () => ({ headers: JSON_TYPE, chunks: [JSON.stringify(listingOf(path)).slice(0, -3)] })],
    ['no list', () => ({ headers: JSON_TYPE, chunks: [JSON.stringify([listingOf(path)])] })],
    ['oversized', () => ({ headers: JSON_TYPE, chunks: bigBody(`{"models":[{"name":"${HIDDEN}"}],"pad":"`, 'x', MAX_LISTING_BYTES + 1, { bytes: 0 }, '"}') })]
  ]
}

test('the line splitter keeps only the unfinished tail and refuses a line past its cap', () => {
  const splitter = new LineSplitter(16)
  assert.deepEqual(splitter.push(Buffer.from('ab')).map(String), [])
  assert.deepEqual(splitter.push(Buffer.from('c\nde\n\nf')).map(String), ['abc', 'de', ''])
  assert.deepEqual(splitter.push(Buffer.from('g\n')).map(String), ['fg'])
  assert.equal(splitter.finish(), undefined)
  splitter.push(Buffer.from('tail'))
  assert.equal(String(splitter.finish()), 'tail')

  const capped = new LineSplitter(MAX_LINE_BYTES)
  const piece = Buffer.alloc(64 * 1024, 'x')
  let pushed = 0
  assert.throws(() => {
    for (; pushed < 48 * 1024 * 1024; pushed += piece.length) capped.push(piece)
  }, (err: Error) => err instanceof UnreadableAnswer && /longer than 1048576 bytes/.test(err.message))
  assert.ok(pushed <= MAX_LINE_BYTES, `refused after ${pushed} bytes, not after the whole 48 MiB`)
})

test('listings for an allowlisted key fail closed (502) when Ollama\'s answer cannot be read', async (t) => {
  const stack = await startStack(t, keys)
  for (const path of ['/api/tags', '/api/ps', '/v1/models']) {
    for (const [fault, answer] of listingFaults(path)) {
      stack.fake.rawAnswers.set(path, answer())
      const response = await fetch(stack.url + path, { headers: { ...limited, 'accept-encoding': 'gzip' } })
      const text = await response.text()
      assert.equal(response.status, 502, `${path} ${fault}`)
      assert.ok(!text.includes(HIDDEN), `${path} ${fault}: the unfiltered listing never reaches the client`)
      assert.match(text, /cannot read/, `${path} ${fault}`)
      assert.equal(stack.fake.last(path)?.headers['accept-encoding'], 'identity', `${path}: Ollama is asked for identity`)
    }
    stack.fake.rawAnswers.set(path, { headers: JSON_TYPE, chunks: [JSON.stringify(listingOf(path))] })
    const readable = await fetch(stack.url + path, { headers: limited })
    assert.equal(readable.status, 200, `${path} readable`)
    assert.ok(!(await readable.text()).includes(HIDDEN), `${path}: filtered`)
    stack.fake.rawAnswers.delete(path)
  }
  // The service stays healthy afterwards.
  const tags = await fetch(`${stack.url}/api/tags`, { headers: limited })
  assert.equal(tags.status, 200)
  assert.deepEqual((await jsonOf(tags)).models.map((m: { name: string }) => m.name), ['llama3.2:latest'])
})

test('an oversized listing is cut off after the cap, not read to the end', async (t) => {
  const stack = await startStack(t, keys)
  const produced = { bytes: 0 }
  stack.fake.rawAnswers.set('/api/tags', { headers: JSON_TYPE, chunks: bigBody('{"models":[],"pad":"', 'x', 256 * 1024 * 1024, produced, '"}') })
  const response = await fetch(`${stack.url}/api/tags`, { headers: limited })
  assert.equal(response.status, 502)
  assert.match((await jsonOf(response)).error, /larger than 16777216 bytes/)
  await stack.fake.waitForEarlyClose('/api/tags')
  assert.ok(produced.bytes < MAX_LISTING_BYTES + 32 * 1024 * 1024, `the fake wrote ${produced.bytes} of 256 MiB before the proxy hung up`)
})

async function startCluster (t: TestContext) {
  const fakes: FakeOllama[] = [await startFakeOllama(), await startFakeOllama()]
  t.after(async () => { for (const fake of fakes) await fake.close() })
  const upstreams = fakes.map((fake, i) => ({ url: fake.url, name: `gpu${i}` }))
  const config = testConfig(fakes[0].url, { ...keys, service: { upstreams, health_interval: 60, refresh_interval: 60 } })
  const proxy = await startProxy(t, config)
  return { fakes, ...proxy }
}

test('merged listings: a host whose answer cannot be read makes the listing 502, for every key', async (t) => {
  const { fakes, url, app, logs } = await startCluster(t)
  for (const path of ['/api/tags', '/api/ps', '/v1/models']) {
    for (const [fault, answer] of listingFaults(path)) {
      fakes[1].rawAnswers.set(path, answer())
      for (const headers of [limited, bearer(TOKENS.generate)]) {
        const response = await fetch(url + path, { headers })
        const text = await response.text()
        assert.equal(response.status, 502, `${path} ${fault}`)
        assert.ok(!text.includes(HIDDEN), `${path} ${fault}`)
        assert.match(text, /could not read the model listing/)
      }
      assert.equal(fakes[1].last(path)?.headers['accept-encoding'], 'identity')
    }
    fakes[1].rawAnswers.delete(path)
  }
  // The background refresh reads listings under the same cap and says why it could not.
  fakes[1].rawAnswers.set('/api/tags', listingFaults('/api/tags')[3][1]())
  await app.hostHealth.refresh(app.upstreams.hosts[1])
  assert.ok(logs.entries().some(e => e.msg === 'could not read a model listing' && /larger than/.test(String(e.reason))))
})

test('fan-out: a 48 MiB progress line is refused after 1 MiB, the other host\'s stream goes on', async (t) => {
  const { fakes, url } = await startCluster(t)
  const produced = { bytes: 0 }
  const NDJSON = { 'content-type': 'application/x-ndjson' }
  fakes[1].rawAnswers.set('/api/pull', { headers: NDJSON, chunks: bigBody('{"status":"pulling manifest"}\n{"status":"', 'x', 48 * 1024 * 1024, produced, '"}\n{"status":"success"}\n') })
  const started = performance.now()
  const response = await fetch(`${url}/api/pull`, { method: 'POST', headers: admin, body: '{"model":"llama3.2"}' })
  assert.equal(response.status, 200)
  const lines = (await response.text()).trim().split('\n').map(line => JSON.parse(line) as Record<string, unknown>)
  assert.ok(lines.some(l => l.host === 'gpu0' && l.status === 'success'), 'the healthy host streamed to the end')
  assert.ok(lines.some(l => l.host === 'gpu1' && l.status === 'pulling manifest'))
  const refused = lines.find(l => l.host === 'gpu1' && typeof l.error === 'string')
  assert.match(String(refused?.error), /longer than 1048576 bytes/)
  assert.ok(!lines.some(l => l.host === 'gpu1' && l.status === 'success'))
  assert.ok(lines.every(l => JSON.stringify(l).length < 2048), 'no giant line reaches the client')
  await fakes[1].waitForEarlyClose('/api/pull')
  assert.ok(produced.bytes < 32 * 1024 * 1024, `the host wrote ${produced.bytes} bytes of 48 MiB before the proxy hung up`)
  t.diagnostic(`48 MiB line refused in ${Math.round(performance.now() - started)} ms after ${produced.bytes} bytes`)
})

test('fan-out: an oversized or compressed single answer is that host\'s 502, named in the outcome', async (t) => {
  const { fakes, url } = await startCluster(t)
  const cases: Array<[string, RawAnswer, RegExp]> = [
    ['oversized', { headers: JSON_TYPE, chunks: bigBody('{"error":"', 'x', MAX_ANSWER_BYTES + 1, { bytes: 0 }, '"}') }, /larger than 1048576 bytes/],
    ['gzip', { headers: { ...JSON_TYPE, 'content-encoding': 'gzip' }, chunks: [gzipSync('{}')] }, /compressed \(gzip\)/]
  ]
  for (const [name, answer, message] of cases) {
    fakes[1].rawAnswers.set('/api/copy', answer)
    const response = await fetch(`${url}/api/copy`, { method: 'POST', headers: admin, body: '{"source":"llama3.2","destination":"copy-' + name + '"}' })
    assert.equal(response.status, 502, name)
    const outcome = await jsonOf(response)
    assert.equal(outcome.hosts.gpu0.status, 200, name)
    assert.equal(outcome.hosts.gpu1.status, 502, name)
    assert.match(outcome.hosts.gpu1.error, message, name)
  }
})
