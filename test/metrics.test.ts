import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Histogram, Registry } from 'prom-client'
import { DURATION_BUCKETS, FIRST_BYTE_BUCKETS, LABEL_CAPS, MetricCounts } from '../plugins/observability/metric-counts.js'
import { createRegistry } from '../plugins/observability/metrics-exposition.js'
import { loadOnce } from '../plugins/observability/metrics.js'
import { bearer, startStack, TOKENS, waitUntil } from './helper.js'

const DURATION = 'ollama_proxy_request_duration_seconds'
const FIRST_BYTE = 'ollama_proxy_upstream_first_byte_seconds'
/** The `le` labels as they must be printed, written out rather than derived from the bounds. */
const DURATION_LE = ['0.01', '0.05', '0.1', '0.5', '1', '2.5', '5', '10', '30', '60', '300', '1800', '+Inf']
const FIRST_BYTE_LE = ['0.005', '0.01', '0.05', '0.1', '0.5', '1', '2.5', '5', '10', '30', '60', '300', '+Inf']

/** The lines of one metric family (HELP, TYPE and its samples) in a Prometheus text page. */
function familyLines (page: string, name: string): string[] {
  return page.split('\n').filter(line =>
    line.startsWith(`# HELP ${name} `) || line.startsWith(`# TYPE ${name} `) ||
    line.startsWith(`${name}{`) || line.startsWith(`${name} `) ||
    line.startsWith(`${name}_bucket{`) || line.startsWith(`${name}_sum{`) || line.startsWith(`${name}_count{`))
}

/** A route's expected lines: cumulative bucket counts for each `le` (the last is +Inf), then sum and count. */
function seriesLines (name: string, le: string[], route: string, cumulative: number[], sum: string): string[] {
  assert.equal(cumulative.length, le.length)
  return [
    ...le.map((bound, i) => `${name}_bucket{le="${bound}",route="${route}"} ${cumulative[i]}`),
    `${name}_sum{route="${route}"} ${sum}`,
    `${name}_count{route="${route}"} ${cumulative[cumulative.length - 1]}`
  ]
}

async function pageOf (counts: MetricCounts): Promise<string> {
  return await createRegistry({ counts, hosts: [] }).metrics()
}

const DURATION_HEAD = [`# HELP ${DURATION} Whole request duration, streams included`, `# TYPE ${DURATION} histogram`]
const histogramCases: Array<{ name: string, observations: Array<[string, number]>, want: string[] }> = [
  { name: 'nothing observed: the family without samples', observations: [], want: [] },
  {
    name: 'a value on a bound counts in that bucket (le is inclusive)',
    observations: [['/api/chat', 0.01]],
    want: seriesLines(DURATION, DURATION_LE, '/api/chat', [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], '0.01')
  },
  {
    name: 'a value just above a bound counts in the next one',
    observations: [['/api/chat', 0.0100001]],
    want: seriesLines(DURATION, DURATION_LE, '/api/chat', [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], '0.0100001')
  },
  {
    name: 'above the last bound: only in +Inf',
    observations: [['/api/pull', 4000]],
    want: seriesLines(DURATION, DURATION_LE, '/api/pull', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], '4000')
  },
  {
    name: 'zero is in the first bucket; NaN and Infinity are not counted',
    observations: [['/api/tags', 0], ['/api/tags', Number.NaN], ['/api/tags', Number.POSITIVE_INFINITY]],
    want: seriesLines(DURATION, DURATION_LE, '/api/tags', [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], '0')
  },
  {
    name: 'routes are separate series in the order first seen; buckets are cumulative, sums add up',
    observations: [['/b', 0.1], ['/a', 0.7], ['/b', 0.2], ['/b', 29], ['/b', 1800]],
    want: [
      ...seriesLines(DURATION, DURATION_LE, '/b', [0, 0, 1, 2, 2, 2, 2, 2, 3, 3, 3, 4, 4], '1829.3'),
      ...seriesLines(DURATION, DURATION_LE, '/a', [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], '0.7')
    ]
  },
  {
    name: 'the sum is printed as JavaScript prints the number',
    observations: [['/x', 0.1], ['/x', 0.2]],
    want: seriesLines(DURATION, DURATION_LE, '/x', [0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2], '0.30000000000000004')
  }
]

for (const { name, observations, want } of histogramCases) {
  test(`/metrics histogram text: ${name}`, async () => {
    const counts = new MetricCounts()
    for (const [route, seconds] of observations) counts.duration.observe(route, seconds)
    assert.deepEqual(familyLines(await pageOf(counts), DURATION), [...DURATION_HEAD, ...want])
  })
}

test('/metrics histogram text: the first-byte histogram has its own bounds, from 5 ms', async () => {
  const counts = new MetricCounts()
  counts.firstByte.observe('/api/chat', 0.005)
  counts.firstByte.observe('/api/chat', 0.006)
  assert.deepEqual(familyLines(await pageOf(counts), FIRST_BYTE), [
    `# HELP ${FIRST_BYTE} Time until Ollama's status line and headers`,
    `# TYPE ${FIRST_BYTE} histogram`,
    ...seriesLines(FIRST_BYTE, FIRST_BYTE_LE, '/api/chat', [1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2], '0.011')
  ])
})

test('/metrics histogram text: the same as prom-client\'s own Histogram given the same observations', async () => {
  for (const [name, bounds, pick] of [
    [DURATION, DURATION_BUCKETS, (c: MetricCounts) => c.duration],
    [FIRST_BYTE, FIRST_BYTE_BUCKETS, (c: MetricCounts) => c.firstByte]
  ] as const) {
    const reference = new Registry()
    const theirs = new Histogram({ name, help: 'h', labelNames: ['route'], buckets: [...bounds], registers: [reference] })
    const counts = new MetricCounts()
    let seed = 7
    for (let i = 0; i < 500; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648
      const seconds = i % 50 === 0 ? bounds[i % bounds.length] : 10 ** (seed / 2147483648 * 7 - 3.5)
      const route = ['/api/chat', '/api/generate', 'other', '/v1/x"y\\z'][i % 4]
      theirs.observe({ route }, seconds)
      pick(counts).observe(route, seconds)
    }
    const samples = (page: string) => familyLines(page, name).filter(line => !line.startsWith('#'))
    const ours = samples(await pageOf(counts))
    assert.equal(ours.length, 4 * (bounds.length + 3))
    assert.deepEqual(ours, samples(await reference.metrics()))
  }
})

test('/metrics counter and gauge text: formatted from the maps, labels in their documented order', async () => {
  const counts = new MetricCounts()
  counts.countRequest('/api/chat', 'POST', 200, 'app')
  counts.countRequest('/api/chat', 'POST', 200, 'app')
  counts.countRequest('other', 'GET', 404, 'none')
  counts.addInFlight('app', 1)
  counts.addInFlight('batch', 1)
  counts.addInFlight('batch', -1)
  counts.countTokens('app', 'm1', 5, 0)
  counts.countTokens('app', 'm1', 2, 3)
  counts.countTokens('app', 'm2', 0, 4)
  for (let i = 0; i < LABEL_CAPS.reason + 2; i++) counts.countUpstreamError(`reason-${i}`)
  counts.countUpstreamError('reason-0')
  const page = await pageOf(counts)
  assert.deepEqual(familyLines(page, 'ollama_proxy_requests_total').slice(2), [
    'ollama_proxy_requests_total{route="/api/chat",method="POST",status="200",key="app"} 2',
    'ollama_proxy_requests_total{route="other",method="GET",status="404",key="none"} 1'
  ])
  assert.deepEqual(familyLines(page, 'ollama_proxy_in_flight_requests').slice(2), [
    'ollama_proxy_in_flight_requests{key="app"} 1',
    'ollama_proxy_in_flight_requests{key="batch"} 0'
  ])
  assert.deepEqual(familyLines(page, 'ollama_proxy_tokens_total').slice(2), [
    'ollama_proxy_tokens_total{key="app",model="m1",kind="prompt"} 7',
    'ollama_proxy_tokens_total{key="app",model="m1",kind="completion"} 3',
    'ollama_proxy_tokens_total{key="app",model="m2",kind="completion"} 4'
  ])
  const errors = familyLines(page, 'ollama_proxy_upstream_errors_total').slice(2)
  assert.equal(errors.length, LABEL_CAPS.reason + 1)
  assert.equal(errors[0], 'ollama_proxy_upstream_errors_total{reason="reason-0"} 2')
  assert.equal(errors.at(-1), 'ollama_proxy_upstream_errors_total{reason="other"} 2')
})

test('loadOnce: concurrent first calls share one load; a failed load is not kept', async () => {
  let loads = 0
  let fail = true
  const load = loadOnce(async () => {
    loads++
    await Promise.resolve()
    if (fail) throw new Error('cannot load')
    return { loads }
  })
  await Promise.all([assert.rejects(load(), /cannot load/), assert.rejects(load(), /cannot load/)])
  assert.equal(loads, 1)
  fail = false
  const [first, second] = await Promise.all([load(), load()])
  assert.equal(first, second)
  assert.equal(await load(), first)
  assert.equal(loads, 2)
})

async function scrape (url: string): Promise<{ status: number, type: string | null, text: string }> {
  const response = await fetch(`${url}/metrics`, { headers: bearer(TOKENS.model) })
  return { status: response.status, type: response.headers.get('content-type'), text: await response.text() }
}

test('/metrics: two concurrent first scrapes both answer, with the same series', async (t) => {
  const stack = await startStack(t)
  const chat = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: bearer(TOKENS.generate), body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], fake: { chunks: 2 } }) })
  await chat.arrayBuffer()
  await waitUntil('the request to be counted', () => stack.logs.requestLines().length >= 1)
  const [a, b] = await Promise.all([scrape(stack.url), scrape(stack.url)])
  assert.equal(a.status, 200)
  assert.equal(b.status, 200)
  assert.equal(a.type, 'text/plain; version=0.0.4; charset=utf-8')
  assert.equal(b.type, a.type)
  // Process figures move between two scrapes, and each scrape may see the other one counted.
  const own = (text: string) => text.split('\n').filter(line => line.startsWith('ollama_proxy_') &&
    !line.startsWith('ollama_proxy_process_') && !line.includes('route="/metrics"'))
  assert.ok(own(a.text).some(line => /^ollama_proxy_requests_total\{route="\/api\/chat",method="POST",status="200",key="[^"]+"\} 1$/.test(line)))
  assert.ok(own(a.text).some(line => line.startsWith(`${FIRST_BYTE}_count{route="/api/chat"} 1`)))
  assert.deepEqual(own(b.text), own(a.text))
  for (const page of [a.text, b.text]) assert.match(page, /^ollama_proxy_process_process_resident_memory_bytes \d+$/m)
})

test('/metrics: process CPU seconds cover the whole process, though prom-client starts at the first scrape', async (t) => {
  const stack = await startStack(t)
  const before = process.cpuUsage()
  assert.ok(before.user + before.system > 50_000, 'the process has used CPU before the first scrape')
  const { text } = await scrape(stack.url)
  const reported = (name: string) => Number(new RegExp(`^ollama_proxy_process_${name} (\\S+)$`, 'm').exec(text)?.[1])
  // Tolerance for the float sums only; without the CPU used before the scrape these would be far lower.
  assert.ok(reported('process_cpu_user_seconds_total') >= before.user / 1e6 - 0.001, text)
  assert.ok(reported('process_cpu_system_seconds_total') >= before.system / 1e6 - 0.001)
  assert.ok(reported('process_cpu_seconds_total') >= (before.user + before.system) / 1e6 - 0.001)
})

test('/metrics: a token count that is not a finite number (a broken host\'s 400-digit eval_count) is not counted and the page still answers', async (t) => {
  const stack = await startStack(t)
  const huge = '9'.repeat(400) // Number() reads it as Infinity
  stack.fake.rawAnswers.set('/api/generate', {
    headers: { 'content-type': 'application/json; charset=utf-8' },
    chunks: [`{"model":"llama3.2","response":"x","done":true,"prompt_eval_count":${huge},"eval_count":3}`]
  })
  const generate = await fetch(`${stack.url}/api/generate`, { method: 'POST', headers: bearer(TOKENS.generate), body: JSON.stringify({ model: 'llama3.2', prompt: 'x', stream: false }) })
  assert.equal(generate.status, 200)
  await generate.arrayBuffer()
  await waitUntil('the request to be counted', () => stack.logs.requestLines().length >= 1)
  for (let i = 0; i < 2; i++) {
    const { status, text } = await scrape(stack.url)
    assert.equal(status, 200, text)
    const tokens = familyLines(text, 'ollama_proxy_tokens_total').slice(2)
    assert.deepEqual(tokens.map(line => line.replace(/key="[^"]+"/, 'key="k"')), [
      'ollama_proxy_tokens_total{key="k",model="registry.ollama.ai/library/llama3.2:latest",kind="completion"} 3'
    ])
  }
})

test('MetricCounts: token sums stay finite numbers, whatever a host reports', async () => {
  const counts = new MetricCounts()
  counts.countTokens('app', 'm', Number.MAX_VALUE, 1)
  counts.countTokens('app', 'm', Number.MAX_VALUE, Number.NaN)
  counts.countTokens('app', 'm', Number.POSITIVE_INFINITY, 2)
  const counted = counts.tokens.get('app')?.get('m')
  assert.deepEqual(counted, { prompt: Number.MAX_VALUE, completion: 3 })
  assert.match(await pageOf(counts), /^ollama_proxy_tokens_total\{key="app",model="m",kind="completion"\} 3$/m)
})
