import assert from 'node:assert/strict'
import { test } from 'node:test'
import { capViolation, readNumCtx, type CapViolation, type RequestCaps } from '../plugins/limits/caps.js'
import { parseJsonBody } from '../plugins/http/json-body.js'
import { routeTable, type RouteSpec } from '../routes/route-table.js'

const CAPS: RequestCaps = { numCtx: 8192, keepAliveSeconds: 1800, unload: false }
const NO_CAPS: RequestCaps = { numCtx: null, keepAliveSeconds: null, unload: true }

/** The native routes whose Ollama structs carry keep_alive and options, with a body each accepts. */
const CARRIERS: Record<string, string> = {
  '/api/chat': '"model":"llama3.2","messages":[{"role":"user","content":"hi"}]',
  '/api/generate': '"model":"llama3.2","prompt":"hi"',
  '/api/embed': '"model":"nomic-embed-text","input":"hi"',
  '/api/embeddings': '"model":"nomic-embed-text","prompt":"hi"'
}

/** The Go view of a body on a route, as the proxy reads it before forwarding. */
function viewOf (spec: RouteSpec, text: string): unknown {
  const parsed = parseJsonBody(Buffer.from(text), spec.goStruct)
  assert.ok(parsed.ok, `${spec.path} ${text}: ${parsed.ok ? '' : parsed.message}`)
  return parsed.value
}

test('keep_alive and options are read on exactly the routes whose Ollama struct has them', () => {
  const reading = routeTable.filter(spec => spec.goStruct !== undefined && Object.hasOwn(spec.goStruct, 'keep_alive')).map(spec => spec.path)
  assert.deepEqual(reading.sort(), Object.keys(CARRIERS).sort())
  const withOptions = routeTable.filter(spec => spec.goStruct !== undefined && Object.hasOwn(spec.goStruct, 'options')).map(spec => spec.path)
  assert.deepEqual(withOptions.sort(), Object.keys(CARRIERS).sort())
})

// [fields added to the body, the cap broken under CAPS or null]
const cases: Array<[string, CapViolation['cap'] | null]> = [
  ['', null],
  ['"keep_alive":"5m"', null],
  ['"keep_alive":300', null],
  ['"keep_alive":1e3', null],
  ['"keep_alive":1800', null],
  ['"keep_alive":"30m"', null],
  ['"keep_alive":1800.5', 'keep_alive'],
  ['"keep_alive":"30m0.000000001s"', 'keep_alive'],
  ['"keep_alive":"1h"', 'keep_alive'],
  ['"KEEP_ALIVE":"1h"', 'keep_alive'],
  ['"Keep_Alive":-1', 'keep_alive'],
  ['"\\u212aeep_alive":-1', 'keep_alive'],
  ['"keep_alive":"-1s"', 'keep_alive'],
  ['"keep_alive":-1', 'keep_alive'],
  ['"keep_alive":1e10', 'keep_alive'],
  ['"keep_alive":0', 'unload'],
  ['"keep_alive":"0"', 'unload'],
  ['"keep_alive":"0s"', 'unload'],
  ['"keep_alive":"-0s"', 'unload'],
  ['"keep_alive":1e-10', 'unload'],
  ['"keep_alive":null', null],
  ['"keep_alive":-1,"keep_alive":"5m"', null],
  ['"keep_alive":"5m","KEEP_ALIVE":-1', 'keep_alive'],
  ['"keep_alive":-1,"keep_alive":null', null],
  ['"keepalive":-1', null],
  ['"keep_alive":"300"', null],
  ['"keep_alive":"-1"', null],
  ['"keep_alive":true', null],
  ['"options":{"num_ctx":8192}', null],
  ['"options":{"num_ctx":8192.9}', null],
  ['"options":{"num_ctx":8193}', 'num_ctx'],
  ['"options":{"num_ctx":131072}', 'num_ctx'],
  ['"options":{"num_ctx":1e5}', 'num_ctx'],
  ['"OPTIONS":{"num_ctx":131072}', 'num_ctx'],
  ['"options":{"NUM_CTX":131072}', null],
  ['"options":{"Num_Ctx":131072}', null],
  ['"options":{"num_ctx":null}', null],
  ['"options":{"num_ctx":"131072"}', null],
  ['"options":{"num_ctx":-5}', null],
  ['"options":{"num_ctx":131072,"num_ctx":2048}', null],
  ['"options":{"num_ctx":2048,"num_ctx":131072}', 'num_ctx'],
  ['"options":null', null],
  ['"options":{"num_ctx":131072},"options":null', null],
  ['"options":[131072]', null],
  ['"options":{"temperature":0.2,"num_ctx":16384}', 'num_ctx'],
  ['"keep_alive":-1,"options":{"num_ctx":131072}', 'keep_alive'],
  ['"keep_alive":"10m","options":{"num_ctx":4096}', null]
]

test('caps on every route that carries the field, read as Ollama reads it', () => {
  for (const [path, base] of Object.entries(CARRIERS)) {
    const spec = routeTable.find(s => s.path === path && s.method === 'POST')!
    for (const [fields, expected] of cases) {
      const text = `{${base}${fields === '' ? '' : ','}${fields}}`
      const view = viewOf(spec, text)
      assert.equal(capViolation(view, CAPS)?.cap ?? null, expected, `${path} ${fields}`)
      assert.equal(capViolation(view, NO_CAPS), undefined, `${path} ${fields}: no caps, nothing refused`)
    }
  }
})

test('options given twice is refused before any cap (Go would merge the two maps)', () => {
  const chat = routeTable.find(s => s.path === '/api/chat')!
  const parsed = parseJsonBody(Buffer.from(`{${CARRIERS['/api/chat']},"options":{"num_ctx":1},"Options":{"num_ctx":131072}}`), chat.goStruct)
  assert.equal(parsed.ok, false)
  assert.match(parsed.ok ? '' : parsed.message, /"options" is given more than once/)
})

test('the OpenAI and Anthropic routes carry neither keep_alive nor num_ctx to Ollama: never refused', () => {
  const fields = '"keep_alive":-1,"options":{"num_ctx":131072}'
  const bodies: Record<string, string> = {
    '/v1/chat/completions': '"model":"llama3.2","messages":[{"role":"user","content":"hi"}]',
    '/v1/completions': '"model":"llama3.2","prompt":"hi"',
    '/v1/embeddings': '"model":"nomic-embed-text","input":"hi"',
    '/v1/responses': '"model":"llama3.2","input":"hi"',
    '/v1/messages': '"model":"llama3.2","max_tokens":10,"messages":[{"role":"user","content":"hi"}]'
  }
  for (const [path, base] of Object.entries(bodies)) {
    const spec = routeTable.find(s => s.path === path)!
    assert.equal(capViolation(viewOf(spec, `{${base},${fields}}`), CAPS), undefined, path)
  }
})

test('each cap alone; messages name the cap and the largest value allowed', () => {
  const generate = routeTable.find(s => s.path === '/api/generate')!
  const view = (fields: string) => viewOf(generate, `{${CARRIERS['/api/generate']},${fields}}`)
  const unloadOnly: RequestCaps = { numCtx: null, keepAliveSeconds: null, unload: false }
  assert.equal(capViolation(view('"keep_alive":-1'), unloadOnly), undefined, 'forever is no unload')
  assert.equal(capViolation(view('"keep_alive":0'), unloadOnly)?.cap, 'unload')
  assert.equal(capViolation(view('"keep_alive":1e10'), unloadOnly)?.cap, 'unload', 'past int64: an unload on amd64')
  assert.equal(capViolation(view('"keep_alive":1e10'), NO_CAPS), undefined)
  const keepOnly: RequestCaps = { numCtx: null, keepAliveSeconds: 60, unload: true }
  assert.equal(capViolation(view('"keep_alive":0'), keepOnly), undefined, 'unload allowed')
  assert.equal(capViolation(view('"keep_alive":"1m"'), keepOnly), undefined)
  assert.equal(capViolation(view('"keep_alive":"61s"'), keepOnly)?.cap, 'keep_alive')

  const longer = capViolation(view('"keep_alive":"2h"'), CAPS)!
  assert.match(longer.message, /keep_alive "2h".*caps\.keep_alive.*1800 s/)
  const forever = capViolation(view('"keep_alive":-1'), CAPS)!
  assert.match(forever.message, /forever.*caps\.keep_alive.*1800 s/)
  const unload = capViolation(view('"keep_alive":0'), CAPS)!
  assert.match(unload.message, /unloads the model.*caps\.unload/)
  const context = capViolation(view('"options":{"num_ctx":131072}'), CAPS)!
  assert.match(context.message, /options\.num_ctx 131072.*caps\.num_ctx.*8192/)
  const long = capViolation(view(`"keep_alive":"${'9'.repeat(200)}h"`), CAPS)
  assert.equal(long, undefined, 'an overflowing duration string is Ollama\'s 400')
  const shownLong = capViolation(view(`"keep_alive":"${'1'.repeat(6)}h${'0'.repeat(100)}s"`), CAPS)!
  assert.ok(shownLong.message.length < 200, 'the client\'s value is shown cut short')
})

test('num_ctx read from options as Ollama does (map keys exact, null skipped, numbers truncated)', () => {
  assert.deepEqual(readNumCtx(undefined), { kind: 'absent' })
  assert.deepEqual(readNumCtx({}), { kind: 'absent' })
  assert.deepEqual(readNumCtx({ NUM_CTX: 5 }), { kind: 'absent' })
  assert.deepEqual(readNumCtx({ num_ctx: null }), { kind: 'absent' })
  assert.deepEqual(readNumCtx({ num_ctx: 4096.7 }), { kind: 'value', tokens: 4096 })
  assert.deepEqual(readNumCtx({ num_ctx: -4096.7 }), { kind: 'value', tokens: -4096 })
  assert.deepEqual(readNumCtx({ num_ctx: true }), { kind: 'invalid' })
  assert.deepEqual(readNumCtx({ num_ctx: Infinity }), { kind: 'invalid' })
  assert.deepEqual(readNumCtx('x'), { kind: 'invalid' })
  assert.deepEqual(readNumCtx([]), { kind: 'invalid' })
})
