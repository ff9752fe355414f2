import assert from 'node:assert/strict'
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import { startFakeOllama, type FakeOllama } from './fake-ollama.js'
import { basic, bearer, TOKENS } from './fixtures/keys.js'
import { jsonOf, LogCapture, startProxy, testConfig } from './helper.js'

const USER = 'proxy'
const PASSWORD = 'p@ss:w0rd/secret'
const EXPECTED_AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`
const PREFIX = '/ollama'

interface Front { url: string, seen: Array<{ path: string, headers: IncomingHttpHeaders }> }

/**
 * A front (nginx-like) that serves Ollama on a sub-path and asks for Basic auth: anything else
 * gets the front's own 401 page or 404, as a real one would.
 */
async function startFront (t: TestContext, fake: FakeOllama): Promise<Front> {
  const target = new URL(fake.url)
  const seen: Front['seen'] = []
  const server = createServer((req, res) => {
    const url = req.url ?? '/'
    seen.push({ path: url, headers: req.headers })
    if (req.headers.authorization !== EXPECTED_AUTH) {
      res.writeHead(401, { 'content-type': 'text/html', 'www-authenticate': 'Basic realm="front"' }).end('<h1>front login</h1>')
      req.resume()
      return
    }
    if (!url.startsWith(PREFIX + '/')) {
      res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>front: not found</h1>')
      req.resume()
      return
    }
    const headers = { ...req.headers, host: target.host }
    delete headers.authorization
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: url.slice(PREFIX.length), headers }, answer => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    upstream.on('error', () => { res.destroy() })
    req.pipe(upstream)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  const port = (server.address() as AddressInfo).port
  return { url: `http://${encodeURIComponent(USER)}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}${PREFIX}/`, seen }
}

function assertNoSecret (text: string, where: string): void {
  for (const secret of [PASSWORD, encodeURIComponent(PASSWORD), EXPECTED_AUTH.slice(6)]) {
    assert.ok(!text.includes(secret), `${where} shows the upstream password`)
  }
}

test('base_url with a path and user:password@: requests go to the sub-path with the proxy\'s Basic auth', async (t) => {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const front = await startFront(t, fake)
  const logs = new LogCapture()
  const config = testConfig(fake.url, { service: { base_url: front.url } })
  const { url } = await startProxy(t, config, logs)

  // The client sends its own key as Basic too: it must not reach the front.
  const chat = await fetch(`${url}/api/chat`, {
    method: 'POST',
    headers: basic(TOKENS.generate, 'me'),
    body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })
  })
  const text = await chat.text()
  assert.equal(chat.status, 200, text)
  assert.ok(text.trim().split('\n').length > 1, 'the answer streamed as NDJSON lines')
  const arrived = front.seen.find(r => r.path === '/ollama/api/chat')
  assert.ok(arrived !== undefined, `the front saw ${front.seen.map(r => r.path).join(', ')}`)
  assert.equal(arrived.headers.authorization, EXPECTED_AUTH, 'the proxy\'s credentials replace the client\'s')
  assert.equal(fake.count('/api/chat'), 1)

  const v1 = await fetch(`${url}/v1/models`, { headers: bearer(TOKENS.generate) })
  assert.equal(v1.status, 200)
  assert.ok((await jsonOf(v1)).data.length > 0)
  assert.ok(front.seen.some(r => r.path === '/ollama/v1/models'))

  const ready = await fetch(`${url}/readyz`)
  const readyText = await ready.text()
  assert.equal(ready.status, 200, readyText)
  assert.ok(front.seen.some(r => r.path === '/ollama/api/version'), 'the readiness probe uses the path too')
  assertNoSecret(readyText, '/readyz')
  assertNoSecret(logs.text, 'the log')
  assert.ok(front.seen.every(r => r.headers.authorization === EXPECTED_AUTH), 'every request the front saw carried the proxy\'s credentials')
})

test('several hosts behind fronts: health checks, model lists, merged listings and fan-out use each host\'s path and credentials', async (t) => {
  const fakes = [await startFakeOllama(), await startFakeOllama()]
  t.after(async () => { for (const fake of fakes) await fake.close() })
  const fronts = [await startFront(t, fakes[0]), await startFront(t, fakes[1])]
  const logs = new LogCapture()
  const upstreams = fronts.map((front, i) => ({ url: front.url, name: `gpu${i}` }))
  const config = testConfig(fakes[0].url, { service: { upstreams, health_interval: 60, refresh_interval: 60 } })
  const { url, app } = await startProxy(t, config, logs)

  await app.hostHealth.refreshAll()
  assert.ok(app.upstreams.hosts.every(h => h.models.size > 0), 'model lists were read through the fronts')
  await app.hostHealth.checkAll()
  assert.ok(app.upstreams.hosts.every(h => h.healthy))

  const tags = await fetch(`${url}/api/tags`, { headers: bearer(TOKENS.generate) })
  assert.equal(tags.status, 200)
  assert.equal(tags.headers.get('x-ollama-upstream'), 'gpu0,gpu1')
  await tags.arrayBuffer()

  const pull = await fetch(`${url}/api/pull`, { method: 'POST', headers: bearer(TOKENS.model), body: '{"model":"llama3.2","stream":false}' })
  assert.equal(pull.status, 200, await pull.text())
  assert.deepEqual(fakes.map(f => f.count('/api/pull')), [1, 1])

  const chat = await fetch(`${url}/api/generate`, { method: 'POST', headers: bearer(TOKENS.generate), body: '{"model":"llama3.2","prompt":"x","stream":false}' })
  assert.equal(chat.status, 200, await chat.text())

  for (const front of fronts) {
    assert.ok(front.seen.length > 0)
    for (const seen of front.seen) {
      assert.ok(seen.path.startsWith('/ollama/api/') || seen.path.startsWith('/ollama/v1/'), seen.path)
      assert.equal(seen.headers.authorization, EXPECTED_AUTH, seen.path)
    }
  }
  assertNoSecret(await (await fetch(`${url}/readyz`)).text(), '/readyz')
  assertNoSecret(logs.text, 'the log')
})

test('a front that refuses the proxy\'s credentials: its answer is passed on, without the password', async (t) => {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const front = await startFront(t, fake)
  const wrong = front.url.replace(encodeURIComponent(PASSWORD), 'wrong')
  const { url } = await startProxy(t, testConfig(fake.url, { service: { base_url: wrong } }))
  const response = await fetch(`${url}/api/tags`, { headers: bearer(TOKENS.generate) })
  assert.equal(response.status, 401, 'the front\'s answer is passed on as it is')
  const text = await response.text()
  assertNoSecret(text, 'the answer')
  assert.ok(!text.includes('wrong'))
  assert.equal(fake.count('/api/tags'), 0)
})

test('a URL with a query or an unparsable one is refused at start without echoing it', () => {
  assert.throws(() => testConfig('http://127.0.0.1:1', { service: { base_url: 'http://u:hunter2@host/ollama?x=1' } }), (err: Error) =>
    /service\.base_url: an Ollama URL takes no query/.test(err.message) && !err.message.includes('hunter2'))
})
