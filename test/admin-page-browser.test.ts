// Issue 22: the admin page in a real Chromium against the proxy and fake Ollama hosts: sign in,
// hosts, requests in flight, keys, charts; mint a key, copy it and use it; change, rotate and
// revoke; a generate key sees only its own usage; a hostile model name stays text. Skipped when
// Debian's Chromium is not installed. With ADMIN_PAGE_SCREENSHOTS=<folder> it also saves the
// README's two screenshots there.
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { chromium, type Page } from 'playwright-core'
import { stringify } from 'yaml'
import { loadConfig } from '../plugins/config/config-loader.js'
import { startFakeOllama } from './fake-ollama.js'
import { bearer, jsonOf, LogCapture, startProxy, waitUntil } from './helper.js'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-quic', '--no-first-run'
]
const SCREENSHOTS = process.env.ADMIN_PAGE_SCREENSHOTS

const ADMIN = 'olp_ops-admin-key-000000000000000000000001'
const WEB_APP = 'olp_web-app-key-00000000000000000000000002'
const STUDENT = 'olp_student-17-key-0000000000000000000003'
const AUDITOR = 'olp_auditor-key-00000000000000000000000004'
const HOSTILE = '<img src=x onerror=alert(1)>'
const DAY_MS = 24 * 60 * 60 * 1000

/** Two fake Ollama hosts and the proxy reading a config file of its own (the key API edits it). */
async function pageStack (t: TestContext) {
  const fakes = [await startFakeOllama(), await startFakeOllama()]
  t.after(async () => { await Promise.all(fakes.map(async fake => { await fake.close() })) })
  const dir = mkdtempSync(join(tmpdir(), 'proxy-admin-page-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'config.yaml')
  writeFileSync(file, stringify({
    auth: {
      keys: [
        { name: 'ops-admin', key: ADMIN, scopes: ['keys:admin', 'usage:read'] },
        { name: 'web-app', key: WEB_APP, scopes: ['generate'], limits: { tokens_per_day: 20000, tokens_per_month: 400000 } },
        { name: 'student-17', key: STUDENT, scopes: ['generate'], models: ['llama3.2*', 'qwen3*'], expires_at: '2099-06-30' },
        { name: 'auditor', key: AUDITOR, scopes: ['usage:read'] }
      ]
    },
    service: { upstreams: fakes.map((fake, i) => ({ url: fake.url, name: `gpu-${i + 1}`, max_concurrent: 2 })) },
    usage: { database: join(dir, 'usage.sqlite') }
  }))
  const offset = { ms: 0 }
  const proxy = await startProxy(t, loadConfig({ path: file, env: {} }), new LogCapture(), false, { clock: () => Date.now() + offset.ms })
  const chat = async (key: string, model: string, tokens = 3, signal?: AbortSignal, delayMs = 0) => await fetch(`${proxy.url}/api/chat`, {
    method: 'POST',
    headers: bearer(key),
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }], stream: false, fake: { prompt_tokens: tokens, chunks: 3, delay_ms: 0, first_byte_delay_ms: delayMs } }),
    signal
  })
  return { ...proxy, fakes, offset, chat }
}

/**
 * Three weeks of traffic, a day at a time on the proxy's clock: which keys used the GPU on which
 * day. Returns the (day, key) and (day, model) pairs that have tokens, one bar each in the charts.
 */
async function seedUsage (stack: Awaited<ReturnType<typeof pageStack>>) {
  const keyBars = new Set<string>()
  const modelBars = new Set<string>()
  for (let daysAgo = 20; daysAgo >= 0; daysAgo--) {
    stack.offset.ms = -daysAgo * DAY_MS
    const day = String(daysAgo)
    const traffic: Array<[string, string, string, string, number]> = [[WEB_APP, 'web-app', 'llama3.2', 'llama3.2:latest', 400 + 37 * (daysAgo % 7)]]
    if (daysAgo % 3 !== 1) traffic.push([STUDENT, 'student-17', 'qwen3:8b', 'qwen3:8b', 250 + 20 * (daysAgo % 5)])
    if (daysAgo % 4 === 0) traffic.push([STUDENT, 'student-17', 'llama3.2', 'llama3.2:latest', 180])
    for (const [key, name, model, shown, tokens] of traffic) {
      const answer = await stack.chat(key, model, tokens)
      assert.equal(answer.status, 200)
      await answer.arrayBuffer()
      keyBars.add(`${day} ${name}`)
      modelBars.add(`${day} ${shown}`)
    }
  }
  stack.offset.ms = 0
  return { keyBars: keyBars.size, modelBars: modelBars.size }
}

/** Everything the page did that a test must see: dialogs, script errors, CSP refusals, URLs asked for. */
function watch (page: Page) {
  const seen = { dialogs: [] as string[], errors: [] as string[], urls: [] as string[] }
  page.on('dialog', dialog => { seen.dialogs.push(dialog.message()); dialog.dismiss().catch(() => {}) })
  page.on('pageerror', error => { seen.errors.push(error.message) })
  page.on('console', message => { if (/Content Security Policy|Refused to/.test(message.text())) seen.errors.push(message.text()) })
  page.on('request', request => { seen.urls.push(request.url()) })
  return seen
}

async function signIn (page: Page, key: string): Promise<void> {
  await page.locator('#sign-in-view').waitFor()
  await page.fill('#key-input', key)
  await page.click('#sign-in-form button[type=submit]')
}

const answered = (page: Page, method: string, path: RegExp) => page.waitForResponse(r => r.request().method() === method && path.test(new URL(r.url()).pathname))

if (!existsSync(CHROMIUM)) {
  test('admin page in a real Chromium', { skip: `chromium not installed at ${CHROMIUM}` }, () => {})
} else {
  test('admin page in a real Chromium', { timeout: 240_000 }, async (t) => {
    const stack = await pageStack(t)
    const bars = await seedUsage(stack)
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 120_000 })
    t.after(async () => { await browser.close() })
    const context = await browser.newContext({ viewport: { width: 1360, height: 940 }, permissions: ['clipboard-read', 'clipboard-write'] })
    const page = await context.newPage()
    const seen = watch(page)
    await page.goto(`${stack.url}/proxy/ui/`)

    // The admin: hosts, a request in flight, keys against their budgets, usage charts.
    await signIn(page, ADMIN)
    await page.locator('#hosts tr[data-host="gpu-1"]').waitFor()
    await page.locator('#hosts tr[data-host="gpu-2"]').waitFor()
    assert.deepEqual(await page.locator('#hosts tr[data-host="gpu-1"] .health').textContent(), 'healthy')
    const waiting = new AbortController()
    t.after(() => { waiting.abort() })
    stack.chat(STUDENT, 'qwen3:8b', 3, waiting.signal, 600_000).catch(() => {})
    await waitUntil('the chat in flight', () => stack.app.openExchanges().some(e => e.route?.path === '/api/chat' && e.upstream !== undefined))
    await page.click('#refresh')
    await page.locator('#requests tbody tr', { hasText: 'student-17' }).waitFor()
    assert.match(await page.locator('#requests tbody tr').first().textContent() ?? '', /student-17qwen3:8bgpu-\d\/api\/chat/)

    for (const name of ['ops-admin', 'web-app', 'student-17', 'auditor']) await page.locator(`#keys tr[data-key="${name}"]`).waitFor()
    assert.match(await page.locator('#keys tr[data-key="web-app"]').textContent() ?? '', /\/ 20,000/)
    assert.match(await page.locator('#keys tr[data-key="student-17"]').textContent() ?? '', /through 2099-06-30 \(UTC\)/, 'a date alone is shown as written')
    await page.locator('#chart-by-key rect.bar').first().waitFor()
    assert.equal(await page.locator('#chart-by-key rect.bar').count(), bars.keyBars, 'one bar per key and day with tokens')
    assert.equal(await page.locator('#chart-by-model rect.bar').count(), bars.modelBars, 'one bar per model and day with tokens')
    assert.deepEqual(await page.locator('#chart-by-key .series-name').allTextContents(), ['web-app', 'student-17'])
    assert.deepEqual(await page.locator('#chart-by-model .series-name').allTextContents(), ['llama3.2:latest', 'qwen3:8b'])
    const content = await page.content()
    for (const secret of [ADMIN, WEB_APP, STUDENT]) assert.equal(content.includes(secret), false, 'no key on the page')
    if (SCREENSHOTS !== undefined) {
      mkdirSync(SCREENSHOTS, { recursive: true })
      await page.screenshot({ path: join(SCREENSHOTS, 'admin-page.png'), fullPage: true })
    }

    // Mint a key in the page, copy it, use it.
    await page.click('#add-key')
    await page.fill('#key-name', 'new-colleague')
    await page.fill('#key-form input[name=tokens_per_day]', '50000')
    await page.fill('#key-expires', '2099-12-31')
    if (SCREENSHOTS !== undefined) await page.screenshot({ path: join(SCREENSHOTS, 'admin-page-add-key.png') })
    const minted = answered(page, 'POST', /^\/proxy\/keys$/)
    await page.click('#key-form-submit')
    assert.equal((await minted).status(), 201)
    await page.locator('#secret-dialog[open]').waitFor()
    const key = await page.inputValue('#secret-value')
    assert.match(key, /^olp_/)
    await page.click('#copy-secret')
    await page.locator('#secret-status', { hasText: 'Copied' }).waitFor()
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), key)
    const used = await stack.chat(key, 'llama3.2')
    assert.equal(used.status, 200, 'the copied key works on /api/chat')
    await used.arrayBuffer()
    await page.click('#secret-dialog .cancel')
    await page.locator('#secret-dialog').waitFor({ state: 'hidden' })
    assert.equal(await page.inputValue('#secret-value'), '', 'the key leaves the page with its dialog')
    await page.locator('#keys tr[data-key="new-colleague"]').waitFor()

    // Change limits and expiry; rotate with a grace.
    await page.locator('#keys tr[data-key="web-app"] button.edit').click()
    assert.equal(await page.inputValue('#key-form input[name=tokens_per_day]'), '20000', 'the form starts from the key')
    await page.fill('#key-form input[name=tokens_per_day]', '30000')
    await page.fill('#key-expires', '2099-01-31')
    const patched = answered(page, 'PATCH', /^\/proxy\/keys\/web-app$/)
    await page.click('#key-form-submit')
    assert.equal((await patched).status(), 200)
    await page.locator('#keys tr[data-key="web-app"]', { hasText: '/ 30,000' }).waitFor()
    const webApp = (await jsonOf(await fetch(`${stack.url}/proxy/keys`, { headers: bearer(ADMIN) }))).keys.find((k: { name: string }) => k.name === 'web-app')
    assert.deepEqual(webApp.limits, { tokens_per_day: 30000, tokens_per_month: 400000 }, 'only the changed limit changed')
    assert.equal(webApp.expires_at, '2099-02-01T00:00:00Z')

    await page.locator('#keys tr[data-key="student-17"] button.rotate').click()
    await page.fill('#rotate-grace', '1h')
    const rotated = answered(page, 'POST', /^\/proxy\/keys\/student-17\/rotate$/)
    await page.click('#rotate-form button[type=submit]')
    assert.equal((await rotated).status(), 200)
    await page.locator('#secret-dialog[open]').waitFor()
    const rotatedKey = await page.inputValue('#secret-value')
    for (const secret of [rotatedKey, STUDENT]) {
      const answer = await stack.chat(secret, 'llama3.2')
      assert.equal(answer.status, 200, 'the new key and, for the grace, the old one')
      await answer.arrayBuffer()
    }
    await page.click('#secret-dialog .cancel')

    // Revoke the minted key: refused at once.
    await page.locator('#keys tr[data-key="new-colleague"] button.revoke').click()
    const revoked = answered(page, 'DELETE', /^\/proxy\/keys\/new-colleague$/)
    await page.click('#revoke-form button[type=submit]')
    assert.equal((await revoked).status(), 200)
    await page.locator('#keys tr[data-key="new-colleague"]').waitFor({ state: 'detached' })
    assert.equal((await stack.chat(key, 'llama3.2')).status, 401, 'a revoked key is refused')

    // A model named like markup, in both of Ollama's listings, stays text.
    const listing = JSON.stringify({ models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest' }, { name: HOSTILE, model: HOSTILE }] })
    for (const path of ['/api/tags', '/api/ps']) stack.fakes[0].rawAnswers.set(path, { headers: { 'content-type': 'application/json; charset=utf-8' }, chunks: [listing] })
    await stack.app.hostHealth.refreshAll()
    await page.click('#refresh')
    await page.locator('#hosts tr[data-host="gpu-1"] .loaded li', { hasText: HOSTILE }).waitFor()
    assert.deepEqual(await page.locator('#hosts tr[data-host="gpu-1"] .loaded li').allTextContents(), [HOSTILE, 'llama3.2:latest'])
    assert.equal(await page.locator('img').count(), 0, 'no element was made of the name')

    // Sign out: the key is forgotten; a generate key sees only its own usage.
    await page.click('#sign-out')
    await page.locator('#sign-in-view').waitFor()
    assert.equal(await page.evaluate('sessionStorage.length'), 0)
    assert.equal(await page.locator('#keys tbody tr').count(), 0, 'nothing read with the key stays')
    const before = seen.urls.length
    await signIn(page, WEB_APP)
    await page.locator('#own-name', { hasText: 'web-app' }).waitFor()
    assert.match(await page.locator('#own-usage').textContent() ?? '', /\/ 30,000/)
    assert.equal(await page.locator('#keys-view').isHidden(), true)
    assert.equal(await page.locator('#status-view').isHidden(), true)
    assert.deepEqual(seen.urls.slice(before).map(url => new URL(url).pathname).filter(path => path !== '/proxy/me'), [], 'a generate key asks for nothing but its own usage')

    // usage:read: everything to see, nothing to change.
    await page.click('#sign-out')
    await signIn(page, AUDITOR)
    await page.locator('#keys tr[data-key="web-app"]').waitFor()
    await page.locator('#chart-by-key rect.bar').first().waitFor()
    assert.equal(await page.locator('#add-key').isHidden(), true)
    assert.equal(await page.locator('#keys button:visible').count(), 0, 'no action for a key without keys:admin')

    await page.click('#sign-out')
    await signIn(page, 'olp_not-a-key-of-this-proxy-0000000000000')
    await page.locator('#sign-in-error', { hasText: 'invalid API key' }).waitFor()

    assert.deepEqual(seen.dialogs, [], 'no dialog fired')
    assert.deepEqual(seen.errors, [], 'no script error, nothing refused by the CSP')
    for (const url of seen.urls) {
      for (const secret of [ADMIN, WEB_APP, STUDENT, AUDITOR, key, rotatedKey]) assert.equal(url.includes(secret), false, `no key in a URL: ${url}`)
    }
  })
}
