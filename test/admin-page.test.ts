// Issue 22: the admin page's files at /proxy/ui/: exact names only, the security headers on every
// answer, revalidation, `ui.enabled: false`, and a page that cannot turn a name into markup.
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { extname, join } from 'node:path'
import { test } from 'node:test'
import Fastify from 'fastify'
import adminPage from '../plugins/ui/admin-page.js'
import { CONTENT_TYPES, staticFolder } from '../plugins/ui/static-files.js'
import { packageRoot } from '../plugins/config/config-loader.js'
import { proxyRoutes } from '../routes/route-table.js'
import { dockerfileStages } from './deploy-files.js'
import { LogCapture, startStack, TOKENS } from './helper.js'
import { createLogger } from '../src/logger.js'
import { RawClient, type RawAnswer } from './raw-http.js'

const FOLDER = staticFolder()
const PAGE_FILES = readdirSync(FOLDER)

function assertPageHeaders (headers: Record<string, string | string[] | number | undefined>, what: string): void {
  const csp = String(headers['content-security-policy'])
  for (const directive of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"]) {
    assert.ok(csp.split('; ').includes(directive), `${what}: CSP has ${directive}: ${csp}`)
  }
  assert.equal(/unsafe-inline|unsafe-eval|\*/.test(csp), false, `${what}: no inline script, no eval, no wildcard`)
  assert.equal(headers['x-content-type-options'], 'nosniff', what)
  assert.equal(headers['referrer-policy'], 'no-referrer', what)
  assert.equal(headers['x-frame-options'], 'DENY', what)
}

test('every file of the page is served by its name with its type, the security headers and revalidation; no key needed', async (t) => {
  const stack = await startStack(t)
  assert.ok(PAGE_FILES.includes('index.html') && PAGE_FILES.includes('app.js'), 'the page ships with the package')
  const cases: Array<[string, string]> = [['/proxy/ui/', 'index.html'], ...PAGE_FILES.map((name): [string, string] => [`/proxy/ui/${name}`, name])]
  for (const [path, name] of cases) {
    for (const headers of [{}, { authorization: `Bearer ${TOKENS.other}` }]) {
      const answer = await stack.app.inject({ method: 'GET', url: path, headers })
      assert.equal(answer.statusCode, 200, path)
      assert.equal(answer.headers['content-type'], CONTENT_TYPES[extname(name)], path)
      assert.ok(answer.rawPayload.equals(readFileSync(join(FOLDER, name))), `${path} is ${name}`)
      assert.equal(answer.headers['cache-control'], 'no-cache', path)
      assert.match(String(answer.headers.etag), /^"[A-Za-z0-9_-]{22}"$/, path)
      assertPageHeaders(answer.headers, path)
    }
  }
  assert.equal(stack.fake.requests.length, 0, 'Ollama never sees the page')
})

test('a known ETag answers 304 with the same headers; another one the file', async (t) => {
  const stack = await startStack(t)
  const first = await stack.app.inject({ method: 'GET', url: '/proxy/ui/app.js' })
  const etag = String(first.headers.etag)
  for (const ifNoneMatch of [etag, `"other", ${etag}`, `W/${etag}`, '*']) {
    const again = await stack.app.inject({ method: 'GET', url: '/proxy/ui/app.js', headers: { 'if-none-match': ifNoneMatch } })
    assert.equal(again.statusCode, 304, ifNoneMatch)
    assert.equal(again.body, '')
    assert.equal(again.headers.etag, etag)
    assertPageHeaders(again.headers, `304 for ${ifNoneMatch}`)
  }
  const changed = await stack.app.inject({ method: 'GET', url: '/proxy/ui/app.js', headers: { 'if-none-match': '"an-older-version-of-the-file"' } })
  assert.equal(changed.statusCode, 200)
  assert.equal(changed.body, first.body)
})

test('/proxy/ui redirects to /proxy/ui/ relatively (a path prefix in front is kept)', async (t) => {
  const stack = await startStack(t)
  const answer = await stack.app.inject({ method: 'GET', url: '/proxy/ui' })
  assert.equal(answer.statusCode, 308)
  assert.equal(answer.headers.location, 'ui/')
  assert.equal(new URL(String(answer.headers.location), 'http://box/proxy/ui').pathname, '/proxy/ui/')
  assert.equal(new URL(String(answer.headers.location), 'http://box/ollama/proxy/ui').pathname, '/ollama/proxy/ui/')
  assertPageHeaders(answer.headers, 'the redirect')
})

test('only names of the folder are served: traversal, encodings, other cases and folders are 404 with the headers', async (t) => {
  const stack = await startStack(t)
  const paths = [
    '/proxy/ui/../package.json', '/proxy/ui/../../package.json', '/proxy/ui/%2e%2e/package.json', '/proxy/ui/..%2fpackage.json',
    '/proxy/ui/%2e%2e%2f%2e%2e%2fpackage.json', '/proxy/ui/..%5cpackage.json', '/proxy/ui/%252e%252e%252fpackage.json',
    '/proxy/ui/../ui/admin-page.ts', '/proxy/ui/./index.html', '/proxy/ui//index.html', '/proxy/ui/static/index.html',
    '/proxy/ui/index.html/', '/proxy/ui/INDEX.HTML', '/proxy/ui/index.html%00', '/proxy/ui/index.html%00.js', '/proxy/ui/.',
    '/proxy/ui/..', '/proxy/ui/app.js.map', '/proxy/ui/%2fetc%2fpasswd', '/proxy/ui//etc/passwd', '/proxy/ui/nothing-here.js'
  ]
  const client = await RawClient.open(stack.url)
  t.after(() => { client.destroy() })
  for (const path of paths) {
    client.send('GET', path, {})
    const answer: RawAnswer = await client.answer()
    assert.equal(answer.status, 404, path)
    assert.match(answer.headers['content-type'], /^application\/json/, path)
    assert.equal(typeof JSON.parse(answer.body).error, 'string', path)
    assert.equal(answer.body.includes('"dependencies"') || answer.body.includes('fastify'), false, `${path} leaks nothing`)
    assert.equal(answer.headers['cache-control'], 'no-store', path)
    assertPageHeaders(answer.headers, path)
  }
})

test('ui.enabled: false: the page and its files are 404; the API stays', async (t) => {
  const stack = await startStack(t, { ui: { enabled: false } })
  for (const path of ['/proxy/ui/', '/proxy/ui', '/proxy/ui/app.js', '/proxy/ui/index.html']) {
    const answer = await stack.app.inject({ method: 'GET', url: path })
    assert.equal(answer.statusCode, 404, path)
    assert.equal(answer.headers['content-security-policy'], undefined, `${path}: no page, no page headers`)
  }
  assert.equal((await stack.app.inject({ method: 'GET', url: '/proxy/me', headers: { authorization: `Bearer ${TOKENS.generate}` } })).statusCode, 200)
})

test('the plugin alone: files of known types directly in its folder; an unreadable folder is one error line and no page', async (t) => {
  const folder = mkdtempSync(join(tmpdir(), 'admin-page-files-'))
  t.after(() => { rmSync(folder, { recursive: true, force: true }) })
  writeFileSync(join(folder, 'index.html'), '<!doctype html><title>x</title>')
  writeFileSync(join(folder, 'tool.exe'), 'MZ')
  writeFileSync(join(folder, '.env'), 'SECRET=1')
  mkdirSync(join(folder, 'nested'))
  writeFileSync(join(folder, 'nested', 'inner.js'), 'export {}')
  const build = async (pageFolder: string, logs = new LogCapture()) => {
    const app = Fastify({ loggerInstance: createLogger('info', logs) })
    app.decorate('config', { ui: { enabled: true } } as never)
    await app.register(adminPage, { routes: proxyRoutes, folder: pageFolder })
    t.after(async () => { await app.close() })
    return app
  }
  const app = await build(folder)
  assert.equal((await app.inject('/proxy/ui/')).body, '<!doctype html><title>x</title>')
  for (const path of ['/proxy/ui/tool.exe', '/proxy/ui/.env', '/proxy/ui/nested/inner.js', '/proxy/ui/nested']) {
    assert.equal((await app.inject(path)).statusCode, 404, path)
  }

  const logs = new LogCapture()
  const off = await build(join(folder, 'missing'), logs)
  assert.equal((await off.inject('/proxy/ui/')).statusCode, 404)
  const errors = logs.entries().filter(e => e.level === 50)
  assert.equal(errors.length, 1)
  assert.match(String(errors[0].msg), /admin page's files cannot be read.*ui\.enabled: false/)
  assert.equal(errors[0].folder, join(folder, 'missing'))
})

test('the page cannot run inline code or build markup from strings', () => {
  for (const name of PAGE_FILES) {
    const text = readFileSync(join(FOLDER, name), 'utf8')
    if (name.endsWith('.html')) {
      for (const script of text.match(/<script\b[^>]*>/g) ?? []) assert.match(script, /^<script type="module" src="[a-z-]+\.js">$/, `${name}: scripts are files`)
      assert.equal(/<script\b[^>]*>[^<]/.test(text), false, `${name}: no inline script`)
      assert.equal(/\son[a-z]+\s*=|\sstyle\s*=|javascript:/i.test(text), false, `${name}: no handler or style attributes, no javascript: URLs`)
    }
    if (name.endsWith('.js')) {
      assert.equal(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\('on/.test(text), false, `${name}: text only`)
      assert.equal(/localStorage|document\.cookie/.test(text), false, `${name}: the key stays in sessionStorage`)
    }
  }
})

test('the image ships the page: the runtime stage copies the folder where the plugin looks for it', () => {
  assert.equal(FOLDER, join(packageRoot(), 'plugins', 'ui', 'static'))
  const runtime = dockerfileStages(readFileSync('Dockerfile', 'utf8')).at(-1)!
  assert.ok(runtime.instructions.includes('WORKDIR /app'))
  assert.ok(runtime.instructions.includes('COPY plugins/ui/static ./plugins/ui/static'), 'the static folder is in the image')
})
