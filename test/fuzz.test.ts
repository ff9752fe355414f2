import assert from 'node:assert/strict'
import { test } from 'node:test'
import { routeTable } from '../routes/route-table.js'
import { bearer, TOKENS } from './fixtures/keys.js'
import { startStack, waitUntil } from './helper.js'
import { sampleRequest } from './samples.js'

/** mulberry32: a tiny seeded PRNG, so a failing case can be replayed. */
function random (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const SEED = 20261124
const REQUESTS = 1200
const WRONG = TOKENS.other

test(`fuzz: ${REQUESTS} generated requests across all routes (seed ${SEED})`, async (t) => {
  const stack = await startStack(t)
  const next = random(SEED)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]
  const junkValues: unknown[] = [null, true, 0, -1, 1e308, '', 'x'.repeat(300), [], {}, [[[]]], { model: { model: 'm' } }, '\u0000', '../../etc', '\ud800']

  function mutate (value: unknown, depth = 0): unknown {
    if (depth > 3 || next() < 0.2) return pick(junkValues)
    if (Array.isArray(value)) return value.map(v => mutate(v, depth + 1))
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {}
      for (const [key, field] of Object.entries(value)) {
        if (next() < 0.15) continue
        out[next() < 0.05 ? key.toUpperCase() : key] = next() < 0.3 ? mutate(field, depth + 1) : field
      }
      if (next() < 0.2) out[pick(['options', 'stream', 'keep_alive', 'format', 'think', '__proto__', 'constructor', 'name'])] = pick(junkValues)
      return out
    }
    return next() < 0.5 ? value : pick(junkValues)
  }

  function bodyFor (init: RequestInit): RequestInit['body'] | undefined {
    const roll = next()
    if (init.body === undefined || init.body === '') return roll < 0.1 ? '{"model":"x"}' : undefined
    if (typeof init.body !== 'string') return roll < 0.5 ? init.body as RequestInit['body'] : Buffer.from(Array.from({ length: 64 }, () => Math.floor(next() * 256)))
    if (roll < 0.35) return init.body
    if (roll < 0.75) return init.body.startsWith('{') ? JSON.stringify(mutate(JSON.parse(init.body))) : init.body.replace('model', 'm0del')
    if (roll < 0.85) return init.body.slice(0, Math.floor(next() * init.body.length))
    if (roll < 0.95) return Buffer.from(Array.from({ length: 40 }, () => Math.floor(next() * 256)))
    return '['.repeat(600) + ']'.repeat(600)
  }

  const tokens = [undefined, `Bearer ${TOKENS.generate}`, TOKENS.model, `Bearer ${WRONG}`, 'Bearer', `bEaReR ${TOKENS.model}`, WRONG.slice(0, 5)]
  const paths = ['/api/unknown', '/API/CHAT', '/api//chat', '/api/chat/', '/v1/models/%2e%2e', '/api/blobs/sha256:zz', '/sys/../api/pull', '/%00', '/api/chat?x=' + '%'.repeat(3)]
  const failures: string[] = []
  let index = 0

  async function one (): Promise<void> {
    const spec = pick(routeTable)
    const sample = sampleRequest(spec)
    const path = next() < 0.1 ? pick(paths) : sample.path + (next() < 0.1 ? '?q=' + encodeURIComponent(String(next())) : '')
    const method = next() < 0.1 ? pick(['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'HEAD']) : spec.method
    const headers: Record<string, string> = {}
    const authorization = pick(tokens)
    if (authorization !== undefined) headers.authorization = authorization
    if (next() < 0.1) headers['x-api-key'] = pick([TOKENS.generate, WRONG])
    if (next() < 0.2) headers['content-type'] = pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', 'application/json; charset=latin1', '*/*'])
    if (next() < 0.1) headers.origin = 'http://fuzz.example'
    const body = method === 'GET' || method === 'HEAD' ? undefined : bodyFor(sample.init)
    const label = `#${index++} ${method} ${path}`
    try {
      const response = await fetch(stack.url + path, { method, headers, body, redirect: 'manual' })
      const text = await response.text()
      if (response.status === 500 && text.includes('internal proxy error')) failures.push(`${label}: proxy 500`)
      if (response.status === 502 || response.status === 504) failures.push(`${label}: ${response.status} with Ollama up`)
      if (response.status >= 400 && method !== 'HEAD' && text !== '' && !(response.headers.get('content-type') ?? '').includes('json') && !text.includes('page not found')) {
        failures.push(`${label}: non-JSON error ${response.status} ${text.slice(0, 80)}`)
      }
    } catch (err) {
      failures.push(`${label}: ${String(err)}`)
    }
  }

  const workers = Array.from({ length: 8 }, async () => {
    while (index < REQUESTS) await one()
  })
  await Promise.all(workers)
  assert.deepEqual(failures, [])

  const health = await fetch(`${stack.url}/healthz`)
  assert.equal(health.status, 200, 'still healthy')
  const chat = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: { ...bearer(TOKENS.generate), 'x-request-id': 'fuzz-last' }, body: '{"model":"llama3.2","messages":[],"stream":false}' })
  assert.equal(chat.status, 200, 'still serving')
  await chat.arrayBuffer()
  await waitUntil('every request to be logged', () => stack.logs.requestLines().length >= REQUESTS && stack.logs.requestLines().some(l => l.reqId === 'fuzz-last'))
  const text = stack.logs.text
  for (const secret of [TOKENS.generate, TOKENS.model, WRONG, WRONG.slice(0, 12)]) assert.ok(!text.includes(secret), 'no key in the logs')
  const errors = stack.logs.entries().filter(entry => Number(entry.level) >= 50)
  assert.deepEqual(errors, [], 'no error-level log lines')
  assert.ok(stack.logs.requestLines().length >= REQUESTS)
})
