import assert from 'node:assert/strict'
import { test } from 'node:test'
import { UsageMeter } from '../plugins/usage/usage-meter.js'
import { bearer, KEYS, TOKENS } from './fixtures/keys.js'
import { startStack, waitUntil, type Stack } from './helper.js'

const gen = bearer(TOKENS.generate)

async function usageLogged (stack: Stack, requestId: string): Promise<unknown> {
  // The request line is written when the answer is done, after its counts were read.
  await waitUntil(`request ${requestId} to be logged`, () => stack.logs.requestLines().some(line => line.reqId === requestId))
  return stack.logs.requestLines().find(line => line.reqId === requestId)?.usage
}

test('token counts are read from native, OpenAI and Anthropic answers, streamed or not', async (t) => {
  const stack = await startStack(t)
  const cases: Array<[string, string, unknown, { promptTokens: number, completionTokens: number }]> = [
    ['native-stream', '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { chunks: 4, prompt_tokens: 17 } }, { promptTokens: 17, completionTokens: 4 }],
    ['native-json', '/api/generate', { model: 'llama3.2', prompt: 'x', stream: false, fake: { chunks: 5 } }, { promptTokens: 11, completionTokens: 5 }],
    ['native-embed', '/api/embed', { model: 'nomic-embed-text', input: ['a', 'b'] }, { promptTokens: 11, completionTokens: 0 }],
    ['openai-json', '/v1/chat/completions', { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { chunks: 2 } }, { promptTokens: 11, completionTokens: 2 }],
    ['openai-sse', '/v1/chat/completions', { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { include_usage: true }, fake: { chunks: 6, prompt_tokens: 9 } }, { promptTokens: 9, completionTokens: 6 }],
    ['openai-completions', '/v1/completions', { model: 'llama3.2', prompt: 'x', fake: { chunks: 3 } }, { promptTokens: 11, completionTokens: 3 }],
    ['responses', '/v1/responses', { model: 'llama3.2', input: 'x', fake: { chunks: 3 } }, { promptTokens: 11, completionTokens: 3 }],
    ['anthropic-json', '/v1/messages', { model: 'llama3.2', max_tokens: 50, messages: [{ role: 'user', content: 'x' }], fake: { chunks: 3 } }, { promptTokens: 11, completionTokens: 3 }],
    ['anthropic-sse', '/v1/messages', { model: 'llama3.2', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'x' }], fake: { chunks: 7, prompt_tokens: 13 } }, { promptTokens: 13, completionTokens: 7 }]
  ]
  for (const [id, path, body, expected] of cases) {
    const response = await fetch(stack.url + path, { method: 'POST', headers: { ...gen, 'x-request-id': id }, body: JSON.stringify(body) })
    assert.equal(response.status, 200, id)
    await response.arrayBuffer()
    const { ollama, ...counts } = await usageLogged(stack, id) as { ollama?: Record<string, number> }
    assert.deepEqual(counts, expected, id)
    if (id.startsWith('native-')) assert.ok((ollama?.totalMs ?? 0) > 0, `${id}: Ollama's own timings are logged too`)
  }
})

test('the scanner ignores counts past 2^53: a broken host cannot charge a key Infinity tokens', () => {
  // Not reported: the estimate (one frame, no prompt text) stands in.
  const cases: Array<[string, { promptTokens: number, completionTokens: number, estimated?: true }]> = [
    ['{"prompt_eval_count":12,"eval_count":' + '9'.repeat(400) + '}', { promptTokens: 12, completionTokens: 0 }],
    ['{"prompt_eval_count":9007199254740993,"eval_count":7}', { promptTokens: 0, completionTokens: 7 }],
    ['{"prompt_eval_count":9007199254740991,"eval_count":7}', { promptTokens: 9007199254740991, completionTokens: 7 }],
    ['{"eval_count":' + '9'.repeat(30) + ',"total_duration":' + '9'.repeat(30) + '}', { promptTokens: 0, completionTokens: 1, estimated: true }]
  ]
  for (const [line, expected] of cases) {
    const meter = new UsageMeter('line', false, 0)
    meter.count(Buffer.from(line + '\n'))
    assert.deepEqual(meter.usage(true), expected, line.slice(0, 60))
  }
})

test('the scanner finds counts split across chunk boundaries', () => {
  const line = '{"done":true,"prompt_eval_count":1234,"eval_count":5678}\n'
  for (let cut = 1; cut < line.length; cut++) {
    const meter = new UsageMeter('line', false, 0)
    meter.count(Buffer.from('{"response":"' + 'x'.repeat(100) + '"}\n'))
    meter.count(Buffer.from(line.slice(0, cut)))
    meter.count(Buffer.from(line.slice(cut)))
    assert.deepEqual(meter.usage(true), { promptTokens: 1234, completionTokens: 5678 }, `cut at ${cut}`)
  }
})

test('/metrics: Prometheus text for model and metrics keys, with per-key token usage', async (t) => {
  const metricsToken = 'metrics-only-token-00000000000000009'
  const stack = await startStack(t, {
    auth: {
      metrics_tokens: [metricsToken],
      keys: [{ name: 'web-app', key: KEYS.app, scopes: ['generate'] }]
    }
  })
  const webApp = bearer(KEYS.app)
  for (let i = 0; i < 2; i++) {
    const response = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: webApp, body: JSON.stringify({ model: 'Llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { chunks: 4 } }) })
    await response.arrayBuffer()
  }
  const denied = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(TOKENS.other), body: '{}' })
  await denied.arrayBuffer()
  // Metrics are counted when a request is done, as its log line is written.
  await waitUntil('the three requests to be done', () => stack.logs.requestLines().length >= 3)

  assert.equal((await fetch(`${stack.url}/metrics`, { headers: gen })).status, 401, 'a generate key may not read metrics')
  assert.equal((await fetch(`${stack.url}/metrics`)).status, 401)
  const onlyMetrics = await fetch(`${stack.url}/api/tags`, { headers: bearer(metricsToken) })
  assert.equal(onlyMetrics.status, 401, 'a metrics key can do nothing else')
  await onlyMetrics.arrayBuffer()

  for (const token of [TOKENS.model, metricsToken]) {
    const response = await fetch(`${stack.url}/metrics`, { headers: bearer(token) })
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /text\/plain/)
    const samples = parsePrometheus(await response.text())
    const model = 'registry.ollama.ai/library/llama3.2:latest'
    assert.equal(samples.get(`ollama_proxy_tokens_total{key="web-app",model="${model}",kind="prompt"}`), 22)
    assert.equal(samples.get(`ollama_proxy_tokens_total{key="web-app",model="${model}",kind="completion"}`), 8)
    assert.equal(samples.get('ollama_proxy_requests_total{route="/api/chat",method="POST",status="200",key="web-app"}'), 2)
    assert.equal(samples.get('ollama_proxy_requests_total{route="/api/chat",method="POST",status="401",key="none"}'), 1)
    assert.equal(samples.get('ollama_proxy_in_flight_requests{key="web-app"}'), 0)
    assert.ok((samples.get('ollama_proxy_upstream_first_byte_seconds_count{route="/api/chat"}') ?? 0) >= 2)
  }
  const text = await (await fetch(`${stack.url}/metrics`, { headers: bearer(TOKENS.model) })).text()
  assert.ok(!text.includes(TOKENS.generate) && !text.includes('web-app-key'), 'no key in the metrics')
})

function parsePrometheus (text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    samples.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return samples
}
