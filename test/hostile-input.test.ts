import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import { bearer, bearerLine, TOKENS } from './fixtures/keys.js'
import { startStack, waitUntil } from './helper.js'

/**
 * Sends raw bytes and returns everything the proxy wrote back before closing. Every exchange here
 * ends with the proxy closing (Connection: close, or a parse error); `waitMs` only stops a hang.
 */
async function rawExchange (url: string, payload: string | Buffer, waitMs = 30_000): Promise<string> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let answer = ''
    const finish = () => { socket.destroy(); resolve(answer) }
    const timer = setTimeout(finish, waitMs)
    socket.on('data', chunk => { answer += chunk.toString('latin1') })
    socket.on('end', () => { clearTimeout(timer); finish() })
    socket.on('close', () => { clearTimeout(timer); resolve(answer) })
    socket.on('error', err => { clearTimeout(timer); if (answer !== '') resolve(answer); else reject(err) })
    socket.write(payload)
  })
}

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1])

test('path tricks never reach a route the key may not use', async (t) => {
  const stack = await startStack(t)
  const tricks = [
    '/api/chat/../pull', '/sys/../api/pull', '//api/pull', '/API/PULL', '/Api/Pull', '/api/pull/', '/api/pull//',
    '/api/%70ull', '/api/%50ULL', '/api/chat/..%2fpull', '/api/chat/..%2Fpull', '/api/chat%2f..%2fpull', '/api%2fpull',
    '/api/%2570ull', '/api/chat/%252e%252e/pull', '/api/./pull', '/api/chat/%2e%2e/pull', '/sys/pull', '/api/pull;x',
    '/api/pull%00', '/api/pull?x=/api/chat', '/api/delete', '/./api/pull', '/%61pi/pull'
  ]
  for (const path of tricks) {
    for (const method of ['POST', 'DELETE']) {
      const answer = await rawExchange(stack.url,
        `${method} ${path} HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nContent-Type: application/json\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{"model":"llama"}`)
      const status = statusOf(answer)
      assert.ok(status >= 400 && status < 500, `${method} ${path} -> ${status}`)
    }
  }
  assert.equal(stack.fake.count('/api/pull'), 0)
  assert.equal(stack.fake.count('/api/delete'), 0)
  assert.equal(stack.fake.requests.length, 0)
})

test('a path Fastify refuses before routing (bad percent-encoding, a segment over 100 characters) is a JSON error in dialect with its log line', async (t) => {
  const stack = await startStack(t)
  const cases: Array<[string, number, (body: any) => string]> = [
    ['/api/%ZZ', 400, body => body.error],
    ['/v1/models/%ZZ', 400, body => body.error.message],
    [`/v1/models/${'a'.repeat(120)}`, 414, body => body.error.message],
    ['/v1/messages/%ZZ', 400, body => body.error.message]
  ]
  for (const [path, status, message] of cases) {
    const answer = await fetch(stack.url + path, { headers: { authorization: `Bearer ${TOKENS.generate}` } })
    assert.equal(answer.status, status, path)
    assert.match(answer.headers.get('content-type') ?? '', /^application\/json/)
    const id = answer.headers.get('x-request-id')
    assert.ok(id !== null, `${path}: the id of its log line`)
    assert.match(message(await answer.json()), /percent-encoding|longer than 100 characters/, path)
    await waitUntil(`${path} logged`, () => stack.logs.requestLines().some(line => line.reqId === id && line.status === status))
  }
  assert.equal(stack.fake.requests.length, 0)
})

test('request smuggling attempts get 400 and Ollama never sees a second request', async (t) => {
  const stack = await startStack(t)
  const smuggled = 'POST /api/pull HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{"model":"evil"}'
  const attempts = [
    // Content-Length and Transfer-Encoding together
    `POST /api/generate HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    // duplicate Content-Length
    `POST /api/generate HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nContent-Length: 30\r\nContent-Length: 5\r\n\r\n{"model":"m","prompt":"x"}    ${smuggled}`,
    // bad chunk size
    `POST /api/generate HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{"model":"m"}\r\n0\r\n\r\n${smuggled}`,
    // obfuscated Transfer-Encoding
    `POST /api/generate HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\n{}\n${smuggled}`,
    // chunk size overflow
    `POST /api/generate HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{}\r\n0\r\n\r\n`
  ]
  for (const attempt of attempts) {
    const answer = await rawExchange(stack.url, attempt)
    assert.equal(statusOf(answer), 400, attempt.split('\r\n').slice(2, 5).join(' | ') + ' -> ' + answer.split('\r\n')[0])
  }
  assert.equal(stack.fake.count('/api/pull'), 0)
  assert.equal(stack.fake.count('/api/generate'), 0)
  const after = await fetch(`${stack.url}/healthz`)
  assert.equal(after.status, 200)
})

test('header abuse: oversized headers 431, CR/LF 400, many headers and a huge key handled; never logged', async (t) => {
  const stack = await startStack(t)
  const huge = 'k'.repeat(20_000)
  const oversized = await rawExchange(stack.url, `GET /api/tags HTTP/1.1\r\nHost: x\r\n${bearerLine(huge)}\r\n\r\n`)
  assert.equal(statusOf(oversized), 431)
  const manyHeaders = Array.from({ length: 500 }, (_, i) => `X-H${i}: v`).join('\r\n')
  const many = await rawExchange(stack.url, `GET /api/tags HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\n${manyHeaders}\r\nConnection: close\r\n\r\n`)
  assert.equal(statusOf(many), 200)
  const crlf = await rawExchange(stack.url, `GET /api/tags HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\rX-Injected: 1\r\n\r\n`)
  assert.equal(statusOf(crlf), 400)
  const nul = await rawExchange(stack.url, 'GET /api/tags HTTP/1.1\r\nHost: x\r\nX-Evil: a\u0000b\r\n\r\n')
  assert.equal(statusOf(nul), 400)
  // What the parser refused is said in a JSON error, and each gets one log line with its code.
  const bodyOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: string }
  assert.deepEqual(bodyOf(oversized), { error: 'request headers are larger than 16 KiB' })
  assert.match(bodyOf(crlf).error, /^malformed HTTP request \(HPE_[A-Z_]+\)$/)
  assert.match(bodyOf(nul).error, /^malformed HTTP request \(HPE_[A-Z_]+\)$/)
  await waitUntil('a log line per malformed request', () => stack.logs.entries().filter(e => e.msg === 'malformed request').length === 3)
  const malformed = stack.logs.entries().filter(e => e.msg === 'malformed request')
  assert.deepEqual(malformed.map(e => e.status), [431, 400, 400])
  assert.ok(malformed.every(e => typeof e.error === 'string' && e.remoteAddress === '127.0.0.1'))
  // No Host in HTTP/1.1: a JSON error and a request line too (HTTP/1.0 needs none).
  const hostless = await rawExchange(stack.url, `GET /api/tags HTTP/1.1\r\n${bearerLine(TOKENS.generate)}\r\nX-Request-Id: no-host\r\n\r\n`)
  assert.equal(statusOf(hostless), 400)
  assert.deepEqual(bodyOf(hostless), { error: 'the request has no Host header, which HTTP/1.1 requires' })
  await waitUntil('the request line', () => stack.logs.requestLines().some(e => e.reqId === 'no-host' && e.status === 400))
  assert.equal(statusOf(await rawExchange(stack.url, `GET /api/tags HTTP/1.0\r\n${bearerLine(TOKENS.generate)}\r\n\r\n`)), 200)
  const bigKey = 'q'.repeat(8000)
  const response = await fetch(`${stack.url}/api/tags`, { headers: { ...bearer(bigKey), 'x-request-id': 'big-key' } })
  assert.equal(response.status, 401)
  await response.arrayBuffer()
  await waitUntil('the request line', () => stack.logs.requestLines().some(e => e.reqId === 'big-key'))
  assert.ok(!stack.logs.text.includes('q'.repeat(40)))
  assert.ok(!stack.logs.text.includes('k'.repeat(40)))
  const forwarded = stack.fake.last('/api/tags')
  assert.ok(forwarded !== undefined)
  assert.equal(forwarded.headers.authorization, undefined)
  assert.equal((await fetch(`${stack.url}/healthz`)).status, 200)
})

test('a client that dribbles its headers is cut off after headers_timeout; slow bodies are fine', async (t) => {
  const stack = await startStack(t, { server: { headers_timeout: 1 } })
  const { hostname, port } = new URL(stack.url)
  const started = performance.now()
  const closedAfter = await new Promise<number>((resolve) => {
    const socket = connect(Number(port), hostname)
    socket.write('GET /api/tags HTTP/1.1\r\nHost: x\r\n')
    const drip = setInterval(() => socket.write('X-Slow: 1\r\n'), 200)
    socket.on('data', () => {})
    socket.on('close', () => { clearInterval(drip); resolve(performance.now() - started) })
    socket.on('error', () => {})
  })
  // headers_timeout is 1 s here; the bound tells it from the 30 s default on a busy machine.
  assert.ok(closedAfter < 15_000, `closed after ${Math.round(closedAfter)} ms`)

  const slowBody = await new Promise<number>((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const body = '{"model":"llama3.2","prompt":"hi","stream":false}'
    socket.write(`POST /api/generate HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`)
    let i = 0
    const drip = setInterval(() => {
      socket.write(body.slice(i, i + 10))
      i += 10
      if (i >= body.length) clearInterval(drip)
    }, 500)
    let answer = ''
    socket.on('data', chunk => { answer += chunk.toString() })
    socket.on('close', () => { clearInterval(drip); resolve(statusOf(answer)) })
    socket.on('error', reject)
  })
  assert.equal(slowBody, 200, 'a body sent slowly over 2.5 s is still served')
})

test('a CONNECT request and an expectation other than 100-continue get a JSON error and one log line each, never a silent close or a bare answer', async (t) => {
  const stack = await startStack(t)
  const tunnel = await rawExchange(stack.url, `CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n${bearerLine(TOKENS.generate)}\r\n\r\n`)
  assert.equal(statusOf(tunnel), 405, tunnel)
  assert.match(tunnel, /content-type: application\/json/i)
  assert.deepEqual(JSON.parse(tunnel.slice(tunnel.indexOf('\r\n\r\n') + 4)), { error: 'the proxy opens no tunnels (CONNECT)' })

  const body = JSON.stringify({ model: 'llama3.2', prompt: 'x', stream: false })
  const expectation = await rawExchange(stack.url, `POST /api/generate HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nExpect: 200-ok\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`)
  assert.equal(statusOf(expectation), 417, expectation)
  assert.match(expectation, /content-type: application\/json/i)
  assert.match(expectation.slice(expectation.indexOf('\r\n\r\n') + 4), /"error":"Expect: only 100-continue is supported"/)
  assert.equal(stack.fake.count('/api/generate'), 0, 'Ollama never sees it')

  await waitUntil('a log line for each', () => stack.logs.entries().filter(e => e.status === 405 || e.status === 417).length === 2)
  const lines = stack.logs.entries().filter(e => e.status === 405 || e.status === 417)
  assert.deepEqual(lines.map(e => [e.msg, e.status]), [['malformed request', 405], ['request', 417]])
  assert.ok(!stack.logs.text.includes(TOKENS.generate), 'the key is never logged')
})

test('an absolute-form request target (RFC 9112, 3.2.2) is routed by its path; user:password in it never reaches the log line', async (t) => {
  const stack = await startStack(t)
  const target = `http://${TOKENS.generate}:${TOKENS.model}@x/api/tags`
  const answer = await rawExchange(stack.url, `GET ${target} HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nConnection: close\r\n\r\n`)
  assert.equal(statusOf(answer), 200)
  assert.equal(stack.fake.last('/api/tags')?.path, '/api/tags', 'Ollama gets the path alone')
  await waitUntil('the request\'s log line', () => stack.logs.requestLines().length === 1)
  assert.equal(stack.logs.requestLines()[0].path, 'http://x/api/tags')
  assert.ok(!stack.logs.text.includes(TOKENS.generate) && !stack.logs.text.includes(TOKENS.model), 'no key in the log')
})

test('two Host header lines are refused with 400 and a log line (RFC 9112, 3.2): a front and the proxy could read different hosts', async (t) => {
  const stack = await startStack(t)
  for (const hosts of [['a', 'b'], ['a', 'a']]) {
    const answer = await rawExchange(stack.url, `GET /api/tags HTTP/1.1\r\n${hosts.map(h => `Host: ${h}\r\n`).join('')}${bearerLine(TOKENS.generate)}\r\n\r\n`)
    assert.equal(statusOf(answer), 400, answer)
    assert.deepEqual(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), { error: 'the request has more than one Host header; send one' })
  }
  assert.equal(stack.fake.count('/api/tags'), 0)
  await waitUntil('a log line each', () => stack.logs.requestLines().length === 2)
  assert.deepEqual(stack.logs.requestLines().map(e => e.status), [400, 400])
})
