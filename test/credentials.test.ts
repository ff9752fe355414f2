import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { promisify } from 'node:util'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { identify, KeyRing, presentedTokens } from '../plugins/auth/keys.js'
import { bareKey, basic, basicAuthorization, bearer, TOKENS, xApiKey } from './fixtures/keys.js'
import { startStack, testConfig } from './helper.js'

interface Case {
  name: string
  headers: Record<string, string>
  /** 'generate' / 'model': that seed key is used; otherwise the status the proxy answers. */
  outcome: 'generate' | 'model' | 401 | 400
}

// Claude Code sends Ollama's documented placeholder as Bearer and the real key as x-api-key.
// Where the shape itself is the case (no key, an empty one, a malformed Basic), it is written out.
const cases: Case[] = [
  { name: 'Bearer', headers: bearer(TOKENS.generate), outcome: 'generate' },
  { name: 'bare Authorization', headers: bareKey(TOKENS.model), outcome: 'model' },
  { name: 'x-api-key', headers: xApiKey(TOKENS.generate), outcome: 'generate' },
  { name: 'placeholder Bearer + real x-api-key', headers: { ...bearer('ollama'), ...xApiKey(TOKENS.generate) }, outcome: 'generate' },
  { name: 'real Bearer + placeholder x-api-key', headers: { ...bearer(TOKENS.generate), ...xApiKey('ollama') }, outcome: 'generate' },
  { name: 'the same key twice', headers: { ...bearer(TOKENS.model), ...xApiKey(TOKENS.model) }, outcome: 'model' },
  { name: 'two different valid keys', headers: { ...bearer(TOKENS.generate), ...xApiKey(TOKENS.model) }, outcome: 400 },
  { name: 'Basic, key as password', headers: basic(TOKENS.generate, 'anyone'), outcome: 'generate' },
  { name: 'Basic, key as user with no password', headers: { authorization: basicAuthorization(TOKENS.model, '') }, outcome: 'model' },
  { name: 'basic in lower case', headers: { authorization: basicAuthorization('u', TOKENS.generate).replace('Basic', 'basic') }, outcome: 'generate' },
  { name: 'Basic + real x-api-key', headers: { ...basic('ollama', 'u'), ...xApiKey(TOKENS.generate) }, outcome: 'generate' },
  { name: 'Basic with a wrong password', headers: basic(TOKENS.other, 'u'), outcome: 401 },
  { name: 'Basic without a colon', headers: { authorization: `Basic ${Buffer.from(TOKENS.generate).toString('base64')}` }, outcome: 401 },
  { name: 'Basic with the key not encoded', headers: { authorization: `Basic ${TOKENS.generate}` }, outcome: 401 },
  { name: 'two wrong keys', headers: { ...bearer('ollama'), ...xApiKey(TOKENS.other) }, outcome: 401 },
  { name: 'nothing', headers: {}, outcome: 401 },
  { name: 'empty Bearer, empty x-api-key', headers: { authorization: 'Bearer ', 'x-api-key': ' ' }, outcome: 401 }
]

test('which presented key counts: unit table over presentedTokens and identify', () => {
  const config = testConfig('http://127.0.0.1:1')
  const ring = new KeyRing(config.auth)
  for (const { name, headers, outcome } of cases) {
    const identified = identify(ring, headers)
    if (outcome === 'generate' || outcome === 'model') {
      assert.ok('key' in identified, name)
      assert.equal(identified.key.kind, outcome === 'generate' ? 'generate' : 'models', name)
    } else {
      assert.ok('error' in identified, name)
      assert.equal(identified.error === 'ambiguous' ? 400 : 401, outcome, name)
    }
  }
  assert.deepEqual(presentedTokens({ authorization: 'Bearer a', 'x-api-key': 'a' }), ['a'])
  assert.deepEqual(presentedTokens({ ...basic('secret', 'user'), 'x-api-key': 'b' }), ['secret', 'b'])
  // Node keeps the first of two Authorization headers; the raw headers show both.
  const twoHeaders = ['Host', 'x', 'Authorization', `Bearer ${TOKENS.generate}`, 'authorization', `Bearer ${TOKENS.model}`]
  assert.deepEqual(presentedTokens(bearer(TOKENS.generate), twoHeaders), [TOKENS.generate, TOKENS.model])
  assert.equal((identify(ring, bearer(TOKENS.generate), undefined, twoHeaders) as { error?: string }).error, 'ambiguous')
  const sameTwice = ['Authorization', `Bearer ${TOKENS.generate}`, 'AUTHORIZATION', TOKENS.generate]
  assert.ok('key' in identify(ring, bearer(TOKENS.generate), undefined, sameTwice), 'the same key twice is that key')
  assert.deepEqual(presentedTokens(bearer(TOKENS.generate), ['Authorization', `Bearer ${TOKENS.generate}`]), [TOKENS.generate])
})

test('every way of presenting a key, through the proxy; no credential header reaches Ollama', async (t) => {
  const stack = await startStack(t)
  for (const { name, headers, outcome } of cases) {
    const before = stack.fake.requests.length
    // /api/pull tells the two seed keys apart: only the model key may pull.
    const path = outcome === 'model' ? '/api/pull' : '/api/tags'
    const init: RequestInit = path === '/api/pull'
      ? { method: 'POST', headers: { ...headers, 'x-ollama-host': '' }, body: '{"model":"llama3.2","stream":false}' }
      : { headers }
    const response = await fetch(stack.url + path, init)
    const text = await response.text()
    if (typeof outcome === 'number') {
      assert.equal(response.status, outcome, `${name}: ${text}`)
      assert.equal(stack.fake.requests.length, before, `${name}: never reaches Ollama`)
      if (outcome === 400) assert.match(text, /two different API keys/)
      continue
    }
    assert.equal(response.status, 200, `${name}: ${text}`)
    const upstream = stack.fake.last(path)
    assert.ok(upstream !== undefined, name)
    for (const header of ['authorization', 'x-api-key', 'x-ollama-host']) {
      assert.equal(upstream.headers[header], undefined, `${name}: ${header} is not forwarded`)
    }
  }

  // Two Authorization headers (headers given as a flat list are sent as they are).
  const twoHeaders = async (values: string[]) => await new Promise<{ status: number, body: string }>((resolve, reject) => {
    const request = httpRequest(`${stack.url}/api/tags`, { headers: ['Host', 'proxy', ...values.flatMap(value => ['Authorization', value])] }, response => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => { resolve({ status: response.statusCode!, body }) })
    })
    request.on('error', reject).end()
  })
  const before = stack.fake.requests.length
  const different = await twoHeaders([`Bearer ${TOKENS.generate}`, `Bearer ${TOKENS.model}`])
  assert.equal(different.status, 400, different.body)
  assert.match(different.body, /two different API keys .*two Authorization headers/)
  assert.equal(stack.fake.requests.length, before, 'never reaches Ollama')
  assert.equal((await twoHeaders([`Bearer ${TOKENS.generate}`, `Bearer ${TOKENS.generate}`])).status, 200, 'the same key twice is that key')
})

const run = promisify(execFile)

test('a 401 offers Basic too: a client that answers the challenge with Basic (curl --anyauth) gets in', { skip: existsSync('/usr/bin/curl') ? false : 'curl not installed' }, async (t) => {
  const stack = await startStack(t)
  const challenged = await fetch(`${stack.url}/api/tags`)
  assert.equal(challenged.status, 401)
  assert.match(challenged.headers.get('www-authenticate') ?? '', /\bBasic realm="ollama-proxy"/)
  await challenged.arrayBuffer()
  // curl sends nothing first, reads the challenge, and answers it with the strongest scheme it knows.
  const { stdout } = await run('/usr/bin/curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--anyauth', '-u', `someone:${TOKENS.generate}`, `${stack.url}/api/tags`])
  assert.equal(stdout, '200')
})
