// Keys that expire, rotated secrets with a grace, and the scopes no other scope implies.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { stringify } from 'yaml'
import { effectiveScopes, identify, KeyRing, type ApiKey } from '../plugins/auth/keys.js'
import { ExpiryWarnings } from '../plugins/auth/expiry-warnings.js'
import { parseConfig } from '../plugins/config/config-loader.js'
import authPlugin from '../plugins/auth/auth.js'
import requestLogPlugin from '../plugins/observability/request-log.js'
import { proxyRoutes } from '../routes/route-table.js'
import { bearer, xApiKey } from './fixtures/keys.js'
import { pluginHarness, tableRows } from './plugin-harness.js'

const STUDENT = 'olp_student-key-for-expiry-tests-0000000001'
const OLD = 'olp_old-secret-of-the-rotated-key-00000002'
const ROTATED = 'olp_new-secret-of-the-rotated-key-00000003'
const EXPIRES = Date.UTC(2027, 6, 1) // "2027-06-30": valid through that day, UTC
const GRACE_ENDS = Date.UTC(2027, 0, 2, 12)

function ring (clock: () => number): KeyRing {
  const config = parseConfig(stringify({
    auth: {
      keys: [
        { name: 'student', key: STUDENT, scopes: ['generate'], expires_at: '2027-06-30', limits: { tokens_per_day: 100 } },
        { name: 'app', key: ROTATED, scopes: ['generate'], weight: 3, previous_keys: [{ key: OLD, expires_at: '2027-01-02T12:00:00Z' }] }
      ]
    }
  }), 'c.yaml')
  return new KeyRing(config.auth, { clock })
}

test('a key expires on time with no reload: identify tells an expired key apart, without the key', () => {
  let now = EXPIRES - 1
  const keys = ring(() => now)
  const live = identify(keys, bearer(STUDENT))
  assert.ok('key' in live)
  assert.equal(live.key.expiresAt, EXPIRES)
  assert.equal(live.key.limits.tokensPerDay, 100)
  now = EXPIRES
  const expired = identify(keys, bearer(STUDENT))
  assert.deepEqual(expired, { error: 'expired', name: 'student', expiredAt: EXPIRES })
  assert.ok(!JSON.stringify(expired).includes(STUDENT))
  assert.ok('key' in identify(keys, bearer(STUDENT), EXPIRES - 1000), 'an explicit time wins over the clock')
  // A valid key beside an expired one counts; two expired keys are still expired.
  const both = identify(keys, { ...bearer(STUDENT), ...xApiKey(ROTATED) })
  assert.ok('key' in both && both.key.name === 'app')
  assert.equal(keys.find(STUDENT), undefined, 'find() gives only keys in force')
})

test('a previous secret is the same key until its grace ends, then simply invalid', () => {
  let now = GRACE_ENDS - 1
  const keys = ring(() => now)
  const current = identify(keys, bearer(ROTATED))
  const previous = identify(keys, bearer(OLD))
  assert.ok('key' in current && 'key' in previous)
  assert.equal(previous.key, current.key, 'same name, scopes, limits, weight')
  assert.equal(previous.key.weight, 3)
  assert.ok('key' in identify(keys, { ...bearer(OLD), ...xApiKey(ROTATED) }), 'old and new of one key are not two keys')
  now = GRACE_ENDS
  assert.deepEqual(identify(keys, bearer(OLD)), { error: 'invalid' })
  assert.ok('key' in identify(keys, bearer(ROTATED)))
  assert.equal(keys.size, 2, 'a rotated key counts once')
})

test('metrics, usage:read and keys:admin are implied by no scope and given to no seed list', () => {
  for (const scope of ['generate', 'models:read', 'models:admin'] as const) {
    const scopes = effectiveScopes([scope])
    for (const own of ['metrics', 'usage:read', 'keys:admin'] as const) assert.equal(scopes.has(own), false, `${scope} implies ${own}`)
  }
  for (const own of ['metrics', 'usage:read', 'keys:admin'] as const) assert.deepEqual([...effectiveScopes([own])], [own])
  const config = parseConfig(stringify({ auth: { generate_tokens: ['gen-token-for-scope-test-000001'], model_tokens: ['mod-token-for-scope-test-000002'], metrics_tokens: ['met-token-for-scope-test-000003'] } }), 'c.yaml')
  const seeds = new KeyRing(config.auth)
  assert.deepEqual([...seeds.find('gen-token-for-scope-test-000001')!.scopes].sort(), ['generate', 'models:read'])
  assert.deepEqual([...seeds.find('mod-token-for-scope-test-000002')!.scopes].sort(), ['metrics', 'models:admin', 'models:read'])
  assert.deepEqual([...seeds.find('met-token-for-scope-test-000003')!.scopes], ['metrics'])
})

test('the key stage: an expired key gets 401 saying when, in the route\'s dialect; a named metrics key reads /metrics', async (t) => {
  const expired = 'olp_expired-key-through-the-proxy-00000004'
  const watcher = 'olp_named-metrics-key-000000000000000005'
  const harness = await pluginHarness(t, {
    plugins: [requestLogPlugin, authPlugin],
    routes: [...tableRows('POST /api/chat', 'POST /v1/chat/completions', 'POST /v1/messages', 'GET /api/tags'), proxyRoutes.metrics],
    config: {
      auth: {
        keys: [
          { name: 'gone', key: expired, scopes: ['generate'], expires_at: '2020-01-31' },
          { name: 'watcher', key: watcher, scopes: ['metrics'] }
        ]
      }
    }
  })
  const { app } = harness
  const native = await app.inject({ method: 'POST', url: '/api/chat', headers: bearer(expired), payload: '{"model":"llama3.2","messages":[]}' })
  assert.equal(native.statusCode, 401)
  const nativeText = native.body
  assert.match(JSON.parse(nativeText).error, /^this key expired at 2020-02-01T00:00:00\.000Z$/)
  const openai = (await app.inject({ method: 'POST', url: '/v1/chat/completions', headers: bearer(expired), payload: '{"model":"llama3.2","messages":[]}' })).json()
  assert.match(openai.error.message, /this key expired at 2020-02-01T00:00:00\.000Z/)
  const anthropic = (await app.inject({ method: 'POST', url: '/v1/messages', headers: xApiKey(expired), payload: '{"model":"llama3.2","messages":[],"max_tokens":1}' })).json()
  assert.equal(anthropic.error.type, 'authentication_error')
  assert.ok(!nativeText.includes(expired) && !JSON.stringify(openai).includes(expired), 'the key is never echoed')

  const metrics = await app.inject({ url: '/metrics', headers: bearer(watcher) })
  assert.equal(metrics.statusCode, 200, 'the metrics scope opens /metrics')
  const chat = await app.inject({ url: '/api/tags', headers: bearer(watcher) })
  assert.equal(chat.statusCode, 401, 'and nothing else')
  assert.deepEqual(harness.reached.map(exchange => exchange.route?.path), ['/metrics'])
  await harness.endedCount(5)
  assert.equal(harness.logs.requestLines().length, 5)
  assert.ok(!harness.logs.text.includes(expired), 'nor logged')
})

test('keys expiring within 7 days are warned about once a day', () => {
  const day = 24 * 60 * 60 * 1000
  const now = Date.UTC(2027, 5, 20, 9)
  const key = (name: string, expiresAt: number | null) => ({ name, expiresAt }) as unknown as ApiKey
  const keys = [key('soon', now + 2 * day), key('sooner', now + day), key('later', now + 8 * day), key('never', null), key('gone', now - day)]
  const warnings = new ExpiryWarnings()
  assert.deepEqual(warnings.due(keys, now).map(k => k.name), ['sooner', 'soon'], 'within 7 days, soonest first; not expired ones')
  assert.deepEqual(warnings.due(keys, now + 3 * 60 * 60 * 1000), [], 'once a day')
  assert.deepEqual(warnings.due(keys, now + day).map(k => k.name), ['soon', 'later'], 'the next day: "sooner" has expired, "later" came within 7 days')
})
