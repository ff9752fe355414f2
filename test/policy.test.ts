// The policy stage (scopes and model allowlists, in plugins/auth/auth.ts) at the plugin level, after the key stage that gives it
// the key: model allowlists and caps refused in the route's dialect before the route runs, and
// what the stage keeps of the body for the later stages.
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import authPlugin from '../plugins/auth/auth.js'
import { authWith, bearer, KEYS, namedKey } from './fixtures/keys.js'
import { pluginHarness, tableRows, type TestHandler } from './plugin-harness.js'

const ROUTES = tableRows('POST /api/chat', 'POST /api/generate', 'POST /api/embed', 'POST /api/show', 'POST /v1/chat/completions', 'POST /v1/messages', 'GET /v1/models/:model')

/** The key and policy stages alone, with the key "limited" (allowlist llama3.2*) and "app" (these caps, no allowlist). */
async function policyAlone (t: TestContext, caps: Record<string, unknown> = {}, handler?: TestHandler) {
  const keys = [
    namedKey('limited', ['generate', 'models:read'], { models: ['llama3.2*'] }),
    namedKey('app', ['generate', 'models:read'], { caps }),
    namedKey('gen', ['generate'])
  ]
  return await pluginHarness(t, { plugins: [authPlugin], routes: ROUTES, config: authWith(keys), handler })
}

const chat = (model: string, fields: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'hi' }], ...fields })

test('a model outside the key\'s allowlist is refused with 403 naming it, in each dialect, before the route runs', async (t) => {
  const harness = await policyAlone(t)
  const requests = [
    { dialect: 'native', method: 'POST', url: '/api/chat', payload: (model: string) => chat(model), error: (body: any) => body.error },
    { dialect: 'openai', method: 'POST', url: '/v1/chat/completions', payload: (model: string) => chat(model), error: (body: any) => body.error.message },
    { dialect: 'anthropic', method: 'POST', url: '/v1/messages', payload: (model: string) => chat(model, { max_tokens: 5 }), error: (body: any) => body.error.message },
    { dialect: 'openai, model in the path', method: 'GET', url: '/v1/models/:model', payload: undefined, error: (body: any) => body.error.message }
  ] as const
  for (const { dialect, method, url, payload, error } of requests) {
    for (const [model, allowed] of [['llama3.2', true], ['LLAMA3.2:latest', true], ['qwen3:8b', false]] as const) {
      const before = harness.reached.length
      const response = await harness.app.inject({ method, url: url.replace(':model', model), headers: bearer(KEYS.limited), ...(payload !== undefined ? { payload: payload(model) } : {}) })
      const label = `${dialect} ${model}`
      if (allowed) {
        assert.equal(response.statusCode, 200, `${label}: ${response.body}`)
        assert.equal(harness.reached.length, before + 1)
        assert.equal(harness.reached.at(-1)?.model, model, `${label}: the exchange names the model as written`)
        continue
      }
      assert.equal(response.statusCode, 403, label)
      assert.equal(error(response.json()), `this key may not use the model "${model}"`, label)
      if (dialect !== 'native') assert.equal(response.json().error.type, 'permission_error', label)
      assert.equal(harness.reached.length, before, `${label} never reaches the route`)
    }
  }
  // A key without an allowlist may use any model.
  const open = await harness.app.inject({ method: 'POST', url: '/api/chat', headers: bearer(KEYS.gen), payload: chat('qwen3:8b') })
  assert.equal(open.statusCode, 200)
})

// [route, body fields, the cap that refuses them]
const capped = { num_ctx: 8192, keep_alive: '30m', unload: false }
const capCases: Array<[string, Record<string, unknown>, string | undefined]> = [
  ['/api/chat', { messages: [{ role: 'user', content: 'x' }], options: { num_ctx: 131072 } }, 'num_ctx'],
  ['/api/generate', { prompt: 'x', options: { num_ctx: 8193 } }, 'num_ctx'],
  ['/api/chat', { messages: [{ role: 'user', content: 'x' }], keep_alive: -1 }, 'keep_alive'],
  ['/api/generate', { prompt: 'x', KEEP_ALIVE: '2h' }, 'keep_alive'],
  ['/api/embed', { input: 'x', keep_alive: 0 }, 'unload'],
  ['/api/chat', { messages: [{ role: 'user', content: 'x' }], keep_alive: '30m', options: { num_ctx: 8192 } }, undefined],
  ['/api/generate', { prompt: 'x', options: { NUM_CTX: 131072 } }, undefined],
  ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], keep_alive: -1, options: { num_ctx: 131072 } }, undefined]
]

test('caps: a request asking more of the GPU than the key\'s caps is refused with 400 naming the cap, and the log line names it', async (t) => {
  const harness = await policyAlone(t, capped)
  for (const [url, fields, cap] of capCases) {
    const before = harness.reached.length
    const ended = harness.ended.length
    const model = url.includes('embed') ? 'nomic-embed-text' : 'llama3.2'
    const response = await harness.app.inject({ method: 'POST', url, headers: bearer(KEYS.app), payload: { model, ...fields } })
    const label = `${url} ${JSON.stringify(fields)}`
    await harness.endedCount(ended + 1)
    if (cap === undefined) {
      assert.equal(response.statusCode, 200, `${label}: ${response.body}`)
      assert.equal(harness.reached.length, before + 1, label)
      assert.equal(harness.ended.at(-1)?.refusedBy, undefined, label)
      continue
    }
    assert.equal(response.statusCode, 400, label)
    assert.match(response.json().error, new RegExp(`caps\\.${cap}`), label)
    assert.equal(harness.reached.length, before, `${label} never reaches the route`)
    assert.equal(harness.ended.at(-1)?.refusedBy, `caps.${cap}`, label)
  }
  const other = await harness.app.inject({ method: 'POST', url: '/api/chat', headers: bearer(KEYS.gen), payload: chat('llama3.2', { keep_alive: -1, options: { num_ctx: 131072 } }) })
  assert.equal(other.statusCode, 200, 'a key without caps is not held to them')
})

test('past the policy, the route sees the body\'s small fields only; the exchange keeps the models named and, on charged routes, a prompt estimate', async (t) => {
  const seen: Array<{ body: unknown, model: string | undefined, models: string[], estimate: number }> = []
  const harness = await policyAlone(t, {}, async (exchange, request) => {
    seen.push({ body: request.body, model: exchange.model, models: exchange.models.map(named => named.name), estimate: exchange.promptEstimate })
    return { reached: true }
  })
  const prompt = 'tell me a story '.repeat(100)
  const long = await harness.app.inject({ method: 'POST', url: '/api/chat', headers: bearer(KEYS.gen), payload: chat('llama3.2', { messages: [{ role: 'user', content: prompt }], stream: false, options: { temperature: 0 } }) })
  assert.equal(long.statusCode, 200)
  const show = await harness.app.inject({ method: 'POST', url: '/api/show', headers: bearer(KEYS.gen), payload: { model: 'qwen3:8b', verbose: true } })
  assert.equal(show.statusCode, 200)
  const [chatSeen, showSeen] = seen
  const small = chatSeen.body as Record<string, unknown>
  assert.equal(small.model, 'llama3.2')
  assert.ok(!('messages' in small) && !('options' in small), `the chat history and options are let go: ${JSON.stringify(small)}`)
  assert.equal(chatSeen.model, 'llama3.2')
  assert.deepEqual(chatSeen.models, ['llama3.2'])
  assert.ok(chatSeen.estimate >= Buffer.byteLength(prompt) / 4, `a prompt of ${Buffer.byteLength(prompt)} bytes is estimated at ${chatSeen.estimate} tokens`)
  assert.equal(showSeen.model, 'qwen3:8b')
  assert.equal(showSeen.estimate, 0, 'a route that charges no tokens estimates none')
})
