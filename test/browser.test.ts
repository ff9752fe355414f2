// The proxy as a real browser sees it: a page on another loopback origin calls it with fetch,
// so Chromium itself enforces CORS (preflight, readable error bodies, allowlist refusals) and
// reads the NDJSON stream incrementally. Skipped when Debian's Chromium is not installed.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import { chromium, type Browser, type Page } from 'playwright-core'
import { bearer, TOKENS, xApiKey } from './fixtures/keys.js'
import { startStack, waitUntil, type Stack } from './helper.js'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-quic', '--no-first-run'
]

const PAGE_HTML = '<!doctype html><html><head><meta charset="utf-8"><title>proxy browser test</title></head><body>proxy browser test</body></html>'

/** A tiny page server on its own loopback port: a different origin from the proxy. */
async function startPageServer (t: TestContext): Promise<string> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      res.end(PAGE_HTML)
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('not found')
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => resolve()))
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** Everything the page saw of one fetch, as plain data. */
interface PageResult {
  ok: boolean
  status?: number
  contentType?: string | null
  requestId?: string | null
  text?: string
  /** ms since the fetch started, one per chunk read from the body. */
  chunkTimes?: number[]
  errorName?: string
  errorMessage?: string
}

interface PageCall { url: string, key: string, body: unknown, headers?: Record<string, string> }

/** Runs fetch inside the page and reads the body chunk by chunk, timing each chunk. */
async function callFromPage (page: Page, call: PageCall): Promise<PageResult> {
  return await page.evaluate(async ({ url, key, body, headers }: PageCall): Promise<PageResult> => {
    const started = performance.now()
    let response: Response
    try {
      response = await fetch(url, {
        method: 'POST',
        // Runs in the page, where the fixtures are not loaded.
        headers: headers ?? { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body)
      })
    } catch (error) {
      const e = error as Error
      return { ok: false, errorName: e.name, errorMessage: e.message }
    }
    const chunkTimes: number[] = []
    let text = ''
    const decoder = new TextDecoder()
    if (response.body === null) throw new Error('response has no body')
    const reader = response.body.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      chunkTimes.push(performance.now() - started)
      text += decoder.decode(value, { stream: true })
    }
    text += decoder.decode()
    return {
      ok: true,
      status: response.status,
      contentType: response.headers.get('content-type'),
      requestId: response.headers.get('x-request-id'),
      text,
      chunkTimes
    }
  }, call)
}

const chatBody = (fake: Record<string, unknown>) => ({
  model: 'llama3.2',
  messages: [{ role: 'user', content: 'hello from the browser' }],
  fake
})

/** Lines of an NDJSON text, parsed. */
const ndjson = (text: string): Array<Record<string, unknown>> =>
  text.split('\n').filter(line => line.trim() !== '').map(line => JSON.parse(line) as Record<string, unknown>)

function assertNoOriginForwarded (stack: Stack): void {
  for (const rec of stack.fake.requests) {
    assert.equal(rec.headers.origin, undefined, `Ollama must not see an Origin header (${rec.method} ${rec.path})`)
  }
}

/**
 * The proxy's request log as `METHOD path status`, once `expected` lines are there. A marker
 * request from outside the browser is logged after every line already due (lines may be written
 * on socket close), so a line too many shows too.
 */
async function requestLog (stack: Stack, expected: number): Promise<string[]> {
  const read = () => stack.logs.requestLines().filter(line => line.reqId !== 'log-marker').map(line => `${String(line.method)} ${String(line.path)} ${String(line.status)}`)
  await waitUntil(`${expected} request lines`, () => read().length >= expected)
  await (await fetch(`${stack.url}/healthz`, { headers: { 'x-request-id': 'log-marker' } })).arrayBuffer()
  await waitUntil('the marker line', () => stack.logs.requestLines().some(line => line.reqId === 'log-marker'))
  return read()
}

if (!existsSync(CHROMIUM)) {
  test('browser: CORS and streaming through a real Chromium', { skip: `chromium not installed at ${CHROMIUM}` }, () => {})
} else {
  test('browser: CORS and streaming through a real Chromium', { timeout: 240_000 }, async (t) => {
    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 120_000 })
    t.after(async () => { await browser.close() })

    const pageOrigin = await startPageServer(t)
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${pageOrigin}/`)
    assert.equal(await page.evaluate('location.origin'), pageOrigin)

    await t.test('a streamed chat passes the preflight and arrives chunk by chunk', async (t) => {
      const stack = await startStack(t)
      assert.notEqual(new URL(stack.url).origin, pageOrigin, 'the proxy must be cross-origin to the page')
      const result = await callFromPage(page, {
        url: `${stack.url}/api/chat`,
        key: TOKENS.generate,
        body: chatBody({ chunks: 5, delay_ms: 200 })
      })
      assert.equal(result.ok, true, `fetch failed: ${result.errorName ?? ''} ${result.errorMessage ?? ''}`)
      assert.equal(result.status, 200)
      assert.match(result.contentType ?? '', /application\/x-ndjson/)
      assert.ok(result.requestId, 'X-Request-Id is exposed to the page')

      const times = result.chunkTimes ?? []
      assert.ok(times.length >= 3, `expected several body chunks, got ${times.length}: ${JSON.stringify(times)}`)
      const spread = times[times.length - 1] - times[0]
      assert.ok(spread >= 600, `chunks should be spread over time, spread ${spread.toFixed(0)} ms: ${JSON.stringify(times)}`)
      const gaps = times.slice(1).filter((time, i) => time - times[i] >= 100).length
      assert.ok(gaps >= 3, `expected at least 3 pauses of >= 100 ms between chunks: ${JSON.stringify(times)}`)

      const lines = ndjson(result.text ?? '')
      assert.equal(lines.length, 6, 'five content chunks and the final line')
      assert.equal(lines[lines.length - 1].done, true)
      for (const line of lines.slice(0, -1)) assert.equal(line.done, false)

      const forwarded = stack.fake.requests.filter(rec => rec.path === '/api/chat')
      assert.equal(forwarded.length, 1, 'one chat request reached Ollama (never the preflight)')
      assert.equal(forwarded[0].method, 'POST')
      assert.equal(stack.fake.count('/api/chat', 'OPTIONS'), 0)
      assert.deepEqual(await requestLog(stack, 2), ['OPTIONS /api/chat 204', 'POST /api/chat 200'], 'the browser sent a preflight first')
      assertNoOriginForwarded(stack)
    })

    await t.test('an Anthropic browser client\'s headers and X-Ollama-Host pass the preflight', async (t) => {
      const stack = await startStack(t)
      // What @anthropic-ai/sdk sends from a browser (dangerouslyAllowBrowser), with Claude Code's
      // placeholder Bearer beside the real key, plus the proxy's own routing header.
      const hostName = stack.app.upstreams.hosts[0].name
      const result = await callFromPage(page, {
        url: `${stack.url}/v1/messages`,
        key: TOKENS.generate,
        body: { model: 'llama3.2', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
        headers: {
          ...bearer('ollama'),
          ...xApiKey(TOKENS.generate),
          'Content-Type': 'application/json',
          'anthropic-version': '2023-06-01',
          'anthropic-dangerous-direct-browser-access': 'true',
          'x-stainless-lang': 'js',
          'x-stainless-async': 'false',
          'x-stainless-retry-count': '0',
          'x-stainless-timeout': '600',
          'x-stainless-helper-method': 'stream',
          'X-Ollama-Host': hostName
        }
      })
      assert.equal(result.ok, true, `fetch failed: ${result.errorName ?? ''} ${result.errorMessage ?? ''}`)
      // Naming a host needs models:admin: the page can read the proxy's refusal.
      assert.equal(result.status, 403, result.text)
      assert.match(result.text ?? '', /models:admin/)
      assert.equal(stack.fake.count('/v1/messages'), 0)

      const admin = await callFromPage(page, {
        url: `${stack.url}/api/show`,
        key: TOKENS.model,
        body: { model: 'llama3.2' },
        headers: { ...bearer(TOKENS.model), 'Content-Type': 'application/json', 'X-Ollama-Host': hostName, 'x-stainless-poll-helper': 'x' }
      })
      assert.equal(admin.ok, true, `fetch failed: ${admin.errorName ?? ''} ${admin.errorMessage ?? ''}`)
      assert.equal(admin.status, 200, admin.text)
      assertNoOriginForwarded(stack)
    })

    await t.test('a wrong key gives a 401 the page can read', async (t) => {
      const stack = await startStack(t)
      const result = await callFromPage(page, {
        url: `${stack.url}/api/chat`,
        key: TOKENS.other,
        body: chatBody({ chunks: 2, delay_ms: 5 })
      })
      assert.equal(result.ok, true, `fetch failed: ${result.errorName ?? ''} ${result.errorMessage ?? ''}`)
      assert.equal(result.status, 401)
      assert.match(result.contentType ?? '', /application\/json/)
      const body = JSON.parse(result.text ?? '') as Record<string, unknown>
      assert.equal(typeof body.error, 'string')
      assert.ok((body.error as string).length > 0)
      assert.equal(stack.fake.count('/api/chat'), 0, 'a refused key never reaches Ollama')
      assertNoOriginForwarded(stack)
    })

    await t.test('an allowlist without the page origin makes the browser refuse the call', async (t) => {
      const stack = await startStack(t, { cors: { origins: ['http://allowed.example'] } })
      const result = await callFromPage(page, {
        url: `${stack.url}/api/chat`,
        key: TOKENS.generate,
        body: chatBody({ chunks: 2, delay_ms: 5 })
      })
      assert.equal(result.ok, false, `the browser should refuse, got status ${String(result.status)}`)
      assert.equal(result.errorName, 'TypeError')
      assert.equal(stack.fake.count('/api/chat'), 0, 'Ollama saw no chat request')
      // A POST, had the browser sent one, was answered before the page saw the refusal: its line is due.
      assert.deepEqual(await requestLog(stack, 1), ['OPTIONS /api/chat 204'], 'only the preflight reached the proxy')
      assertNoOriginForwarded(stack)
    })

    await t.test('an allowlist with the page origin lets the same call through', async (t) => {
      const stack = await startStack(t, { cors: { origins: ['http://allowed.example', pageOrigin] } })
      const result = await callFromPage(page, {
        url: `${stack.url}/api/chat`,
        key: TOKENS.generate,
        body: chatBody({ chunks: 3, delay_ms: 20 })
      })
      assert.equal(result.ok, true, `fetch failed: ${result.errorName ?? ''} ${result.errorMessage ?? ''}`)
      assert.equal(result.status, 200)
      const lines = ndjson(result.text ?? '')
      assert.equal(lines.length, 4)
      assert.equal(lines[lines.length - 1].done, true)
      assert.equal(stack.fake.count('/api/chat', 'POST'), 1)
      assertNoOriginForwarded(stack)
    })
  })
}
