import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { FOLDED_MODEL, MAX_USAGE_MODELS, RedisWindows } from '../plugins/limits/redis-windows.js'
import { LABEL_CAPS } from '../plugins/observability/metrics.js'
import { createLogger } from '../src/logger.js'
import { bearer, LogCapture, startStack, TOKENS } from './helper.js'
import { redisAvailable, startRedis } from './redis-server.js'

const skip = redisAvailable() ? false : 'redis-server not found: install Redis to run these tests'

/** label value -> summed sample value, for one metric of a Prometheus text page. */
function samplesBy (page: string, metric: string, label: string): Map<string, number> {
  const sums = new Map<string, number>()
  for (const line of page.split('\n')) {
    if (!line.startsWith(metric + '{')) continue
    const value = new RegExp(`${label}="([^"]*)"`).exec(line)?.[1]
    if (value === undefined) continue
    sums.set(value, (sums.get(value) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)))
  }
  return sums
}

async function scrape (url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`, { headers: bearer(TOKENS.model) })
  assert.equal(response.status, 200)
  return await response.text()
}

test('/metrics: client-chosen model names past the cap count as "other"; the first ones keep their label', async (t) => {
  const stack = await startStack(t)
  const extra = 50
  for (let i = 0; i < LABEL_CAPS.model + extra; i++) {
    stack.app.metrics.recordTokens('app', `model-${i}`, { promptTokens: 2, completionTokens: 3 })
  }
  stack.app.metrics.recordTokens('app', 'model-0', { promptTokens: 2, completionTokens: 3 })
  const models = samplesBy(await scrape(stack.url), 'ollama_proxy_tokens_total', 'model')
  assert.equal(models.size, LABEL_CAPS.model + 1)
  assert.equal(models.get('model-0'), 10, 'a model seen before the cap keeps counting under its name')
  assert.equal(models.get(`model-${LABEL_CAPS.model - 1}`), 5)
  assert.equal(models.has(`model-${LABEL_CAPS.model}`), false)
  assert.equal(models.get('other'), extra * 5, 'nothing is lost: the rest is summed under "other"')
})

async function redisFor (t: TestContext) {
  const redis = await startRedis()
  t.after(async () => { await redis.stop() })
  return redis
}

async function connectedStore (t: TestContext, url: string, prefix: string): Promise<RedisWindows> {
  const logs = new LogCapture()
  const store = new RedisWindows({ url, prefix }, createLogger('debug', logs))
  t.after(async () => { await store.close() })
  await new Promise<void>(resolve => {
    const check = () => { if (store.mode === 'redis') resolve(); else setImmediate(check) }
    check()
  })
  return store
}

test('Redis usage counters: a key counts at most MAX_USAGE_MODELS models by name, the rest under "other"', { skip }, async (t) => {
  const redis = await redisFor(t)
  const prefix = `card-${randomUUID().slice(0, 8)}:`
  const store = await connectedStore(t, redis.url, prefix)
  const extra = 10
  for (let i = 0; i < MAX_USAGE_MODELS + extra; i++) store.recordUsage('app', `model-${i}`, 1, 2)
  store.recordUsage('app', 'model-0', 1, 2)
  store.recordUsage('batch', 'model-0', 5, 5)
  // Commands on one connection run in order: once this answers, every recordUsage above has landed.
  const raw = new Redis(redis.url)
  t.after(() => raw.disconnect())
  await store.peek('sync', Date.now())
  const fields = await raw.hlen(`${prefix}usage:app`)
  assert.equal(fields, 2 * (MAX_USAGE_MODELS + 1))
  const totals = await store.usageTotals()
  const app = totals.filter(r => r.key === 'app')
  const of = (model: string, kind: string) => app.find(r => r.model === model && r.kind === kind)?.tokens
  assert.equal(of('model-0', 'prompt'), 2)
  assert.equal(of(`model-${MAX_USAGE_MODELS - 1}`, 'completion'), 2)
  assert.equal(of(`model-${MAX_USAGE_MODELS}`, 'prompt'), undefined)
  assert.equal(of(FOLDED_MODEL, 'prompt'), extra)
  assert.equal(of(FOLDED_MODEL, 'completion'), 2 * extra)
  assert.equal(totals.find(r => r.key === 'batch' && r.model === 'model-0' && r.kind === 'prompt')?.tokens, 5, 'each key has its own cap')
})

test('/metrics: shared token counters read from Redis are folded under the same cap', { skip }, async (t) => {
  const redis = await redisFor(t)
  const prefix = `card-${randomUUID().slice(0, 8)}:`
  // As an older replica, without the cap, could have left them.
  const raw = new Redis(redis.url)
  t.after(() => raw.disconnect())
  const fields: Record<string, number> = {}
  for (let i = 0; i < LABEL_CAPS.model + 30; i++) fields[`m${String(i).padStart(3, '0')}|prompt`] = 1
  await raw.hset(`${prefix}usage:app`, fields)
  const stack = await startStack(t, { redis: { url: redis.url, prefix } })
  const windows = stack.app.limitWindows
  assert.ok(windows instanceof RedisWindows)
  await new Promise<void>(resolve => {
    const check = () => { if (windows.mode === 'redis') resolve(); else setImmediate(check) }
    check()
  })
  const models = samplesBy(await scrape(stack.url), 'ollama_proxy_shared_tokens', 'model')
  assert.equal(models.size, LABEL_CAPS.model + 1)
  assert.equal([...models.values()].reduce((a, b) => a + b, 0), LABEL_CAPS.model + 30, 'every token is still counted')
  assert.equal(models.get('other'), 30)
})
