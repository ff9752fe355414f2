// The configuration fields of budgets, expiry, fair share, caps, fronts, usage and the admin page:
// validated at load with one line naming the field, resolved into ProxyConfig.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { stringify } from 'yaml'
import { ConfigError, packageRoot, parseConfig } from '../plugins/config/config-loader.js'
import { ConfigSchema } from '../plugins/config/config-schema.js'

const SECRET = 'a-real-secret-for-field-tests-000001'
const SEED = 'a-real-seed-token-for-field-tests-002'
const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex')
const key = (extra: Record<string, unknown>) => ({ auth: { keys: [{ name: 'app', key: SECRET, scopes: ['generate'], ...extra }] } })
const load = (document: Record<string, unknown>) => parseConfig(stringify(document), '/etc/proxy.yaml')

test('a named key\'s new fields resolve into the documented shapes; defaults when absent', () => {
  const plain = load(key({})).auth.keys[0]
  assert.equal(plain.expiresAt, null)
  assert.equal(plain.weight, 1)
  assert.deepEqual(plain.limits, { requestsPerMinute: null, tokensPerMinute: null, concurrent: null, tokensPerDay: null, tokensPerMonth: null, requestsPerDay: null, queued: null })
  assert.deepEqual(plain.caps, { numCtx: null, keepAliveSeconds: null, unload: true })
  assert.deepEqual(plain.previousKeys, [])

  const full = load(key({
    scopes: ['generate', 'metrics', 'usage:read', 'keys:admin'],
    expires_at: '2027-06-30',
    weight: 3,
    limits: { requests_per_minute: 60, tokens_per_minute: 5000, concurrent: 2, tokens_per_day: 0, tokens_per_month: 2000000, requests_per_day: 5000, queued: 0 },
    caps: { num_ctx: 8192, keep_alive: '1h30m', unload: false },
    previous_keys: [{ key: `sha256:${'ab'.repeat(32)}`, expires_at: '2027-01-01T12:00:00+02:00' }]
  })).auth.keys[0]
  assert.deepEqual(full.scopes, ['generate', 'metrics', 'usage:read', 'keys:admin'])
  assert.equal(full.expiresAt, Date.UTC(2027, 6, 1))
  assert.equal(full.weight, 3)
  assert.deepEqual(full.limits, { requestsPerMinute: 60, tokensPerMinute: 5000, concurrent: 2, tokensPerDay: 0, tokensPerMonth: 2000000, requestsPerDay: 5000, queued: 0 })
  assert.deepEqual(full.caps, { numCtx: 8192, keepAliveSeconds: 5400, unload: false })
  assert.deepEqual(full.previousKeys, [{ key: `sha256:${'ab'.repeat(32)}`, expiresAt: Date.UTC(2027, 0, 1, 10) }])
  assert.equal(load(key({ caps: { keep_alive: 90 } })).auth.keys[0].caps.keepAliveSeconds, 90, 'a number is seconds, as Ollama reads it')
})

test('bad values of the new fields stop the load with one line naming the field, never the secret', () => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [key({ weight: 0 }), 'auth.keys.0.weight', /expected a positive whole number/],
    [key({ weight: -2 }), 'auth.keys.0.weight', /expected a positive whole number/],
    [key({ weight: 1.5 }), 'auth.keys.0.weight', /expected a positive whole number/],
    [key({ expires_at: 'soon' }), 'auth.keys.0.expires_at', /ISO 8601.*got "soon"/],
    [key({ expires_at: '2027-02-30' }), 'auth.keys.0.expires_at', /ISO 8601/],
    [key({ expires_at: '2027-06-30T25:00:00Z' }), 'auth.keys.0.expires_at', /ISO 8601/],
    [key({ expires_at: 20270630 }), 'auth.keys.0.expires_at', /expected an ISO 8601 date/],
    [key({ limits: { tokens_per_day: -1 } }), 'auth.keys.0.limits.tokens_per_day', /0 or more/],
    [key({ limits: { tokens_per_month: 1.5 } }), 'auth.keys.0.limits.tokens_per_month', /whole number/],
    [key({ limits: { requests_per_day: -5 } }), 'auth.keys.0.limits.requests_per_day', /0 or more/],
    [key({ limits: { queued: -1 } }), 'auth.keys.0.limits.queued', /0 or more/],
    [key({ limits: { budget: 5 } }), 'auth.keys.0.limits.budget', /unknown key/],
    [key({ caps: { num_ctx: 0 } }), 'auth.keys.0.caps.num_ctx', /at least 1/],
    [key({ caps: { keep_alive: '30 minutes' } }), 'auth.keys.0.caps.keep_alive', /positive duration/],
    [key({ caps: { keep_alive: '-1m' } }), 'auth.keys.0.caps.keep_alive', /positive duration/],
    [key({ caps: { keep_alive: 0 } }), 'auth.keys.0.caps.keep_alive', /positive duration/],
    [key({ caps: { keep_alive: '1800' } }), 'auth.keys.0.caps.keep_alive', /positive duration/],
    [key({ caps: { keep_alive: true } }), 'auth.keys.0.caps.keep_alive', /expected a duration as Ollama reads keep_alive/],
    [key({ caps: { unload: 'no' } }), 'auth.keys.0.caps.unload', /true or false/],
    [key({ scopes: ['usage'] }), 'auth.keys.0.scopes.0', /expected one of generate, models:read, models:admin, metrics, usage:read, keys:admin; got "usage"/],
    [key({ models: ['Llama 3.2'] }), 'auth.keys.0.models.0', /allowlist entry "Llama 3\.2" is not a model name Ollama accepts/],
    [key({ previous_keys: [{ key: `sha256:${'ab'.repeat(32)}` }] }), 'auth.keys.0.previous_keys.0', /missing required key "expires_at"/],
    [key({ previous_keys: [{ key: SECRET, expires_at: '2027-01-01' }] }), 'auth.keys.0.previous_keys.0.key', /same secret/],
    [key({ previous_keys: [{ key: '<secret>', expires_at: '2027-01-01' }] }), 'auth.keys.0.previous_keys.0.key', /placeholder/],
    [{ ...key({}), usage: { timezone: 'Mars/Olympus' } }, 'usage.timezone', /IANA time zone.*got "Mars\/Olympus"/],
    [{ ...key({}), usage: { retention_days: 0 } }, 'usage.retention_days', /at least 1/],
    [{ ...key({}), usage: { retention_days: 1e15 } }, 'usage.retention_days', /at most 36500/],
    [{ ...key({}), usage: { database: '' } }, 'usage.database', /expected a file path/],
    [{ ...key({}), ui: { enabled: 'yes' } }, 'ui.enabled', /true or false/],
    [{ ...key({}), service: { max_concurrent: 0 } }, 'service.max_concurrent', /at least 1/],
    [{ ...key({}), service: { upstreams: [{ url: 'http://a:1' }], max_concurrent: 2 } }, 'service.max_concurrent', /set max_concurrent on each upstream/],
    [{ ...key({}), service: { upstreams: [{ url: 'http://a:1' }], headers: { 'x-a': 'b' } } }, 'service.headers', /set headers on each upstream/],
    [{ ...key({}), service: { headers: { 'bad header': 'x' } } }, 'service.headers.bad header', /expected a header name/],
    [{ ...key({}), service: { headers: { 'X-Token': 'a', 'x-token': 'b' } } }, 'service.headers.x-token', /given twice/],
    [{ ...key({}), service: { headers: { Host: 'x' } } }, 'service.headers.Host', /set by the proxy/],
    [{ ...key({}), service: { headers: { 'x-token': 'line\r\nInjected: yes' } } }, 'service.headers.x-token', /line break or a control character/],
    [{ ...key({}), service: { headers: { 'x-token': 42 } } }, 'service.headers.x-token', /expected a text value/],
    [{ ...key({}), service: { base_url: 'http://u:p@a:1', headers: { Authorization: 'Bearer x' } } }, 'service.headers.Authorization', /give the credentials one way/],
    [{ ...key({}), service: { upstreams: [{ url: 'http://a:1', headers: { 'cf-access-client-secret': 'x\n' } }] } }, 'service.upstreams.0.headers.cf-access-client-secret', /line break/],
    // A name given twice, or the name a seed token goes by: usage, budgets and metrics go by name.
    [{ auth: { keys: [{ name: 'app', key: SECRET, scopes: ['generate'] }, { name: 'app', key: `${SECRET}-2`, scopes: ['generate'] }] } }, 'auth.keys.1.name', /the name "app" is used twice/],
    [{ auth: { generate_tokens: [SEED], keys: [{ name: `generate-${sha256Hex(SEED).slice(0, 8)}`, key: SECRET, scopes: ['generate'] }] } }, 'auth.keys.0.name', /is the name the proxy gives the token of auth\.generate_tokens\.0 in logs, metrics and usage; choose another/],
    [{ auth: { model_tokens: [SEED], keys: [{ name: `models-${sha256Hex(SEED).slice(0, 8)}`, key: SECRET, scopes: ['generate'] }] } }, 'auth.keys.0.name', /token of auth\.model_tokens\.0/],
    // Whole numbers past what JavaScript counts exactly (a weight of 1e300 made every chat a 500).
    [key({ weight: 1e300 }), 'auth.keys.0.weight', /at most 9007199254740991/],
    [key({ limits: { tokens_per_day: 1e300 } }), 'auth.keys.0.limits.tokens_per_day', /at most 9007199254740991/],
    [key({ limits: { requests_per_minute: 2 ** 53 } }), 'auth.keys.0.limits.requests_per_minute', /at most 9007199254740991/],
    [{ ...key({}), service: { queue_size: 1e300 } }, 'service.queue_size', /9007199254740991/],
    // Seconds past what a Node.js timer holds: the timer would fire at once (every queued request
    // a 504, every body a 408, a health check every millisecond).
    [{ ...key({}), service: { queue_timeout: 1e7 } }, 'service.queue_timeout', /at most 2147483/],
    [{ ...key({}), service: { health_interval: 3e6 } }, 'service.health_interval', /at most 2147483/],
    [{ ...key({}), service: { refresh_interval: 3e6 } }, 'service.refresh_interval', /at most 2147483/],
    [{ ...key({}), server: { body_timeout: 3e6 } }, 'server.body_timeout', /at most 2147483/],
    [{ ...key({}), server: { drain_timeout: 1e7 } }, 'server.drain_timeout', /at most 2147483/]
  ]
  for (const [document, field, message] of cases) {
    assert.throws(() => load(document), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err))
      assert.ok(err.message.startsWith('/etc/proxy.yaml: ') && (err.message.includes(`${field}: `) || err.message.includes(`and ${field} hold`)), `${field}: ${err.message}`)
      assert.equal(err.field, field)
      assert.match(err.message, message, field)
      assert.equal(err.message.split('\n').length, 1)
      assert.ok(!err.message.includes(SECRET), 'no secret in the message')
      assert.ok(!err.message.includes('Injected'), 'no header value in the message')
      return true
    }, field)
  }
})

test('fronts: headers are lower-cased per upstream; max_concurrent for base_url; defaults', () => {
  const single = load({ ...key({}), service: { base_url: 'http://gpu:11434', max_concurrent: 4, headers: { 'CF-Access-Client-Id': 'id', 'CF-Access-Client-Secret': 's3cret' } } })
  assert.deepEqual(single.service.upstreams.map(u => ({ maxConcurrent: u.maxConcurrent, headers: u.headers })), [
    { maxConcurrent: 4, headers: { 'cf-access-client-id': 'id', 'cf-access-client-secret': 's3cret' } }
  ])
  const several = load({ ...key({}), service: { upstreams: [{ url: 'http://a:1', max_concurrent: 2, headers: { 'X-Gateway': 'g' } }, { url: 'http://b:1' }] } })
  assert.deepEqual(several.service.upstreams.map(u => [u.maxConcurrent, u.headers]), [[2, { 'x-gateway': 'g' }], [null, {}]])
  const plain = load(key({}))
  assert.deepEqual(plain.service.upstreams.map(u => [u.maxConcurrent, u.headers]), [[null, {}]])
  const fromEnv = parseConfig(stringify({ ...key({}), service: { max_concurrent: 3 } }), 'c.yaml', { OLLAMA_BASE_URL: 'http://other:11434' })
  assert.equal(fromEnv.service.upstreams[0].maxConcurrent, 3, 'OLLAMA_BASE_URL keeps the base_url form\'s settings')
})

test('usage and ui: defaults, a relative database in the installation folder, a canonical time zone', () => {
  const defaults = load(key({}))
  assert.deepEqual(defaults.usage, { database: join(packageRoot(), 'data/usage.sqlite'), timezone: 'UTC', retentionDays: 400 })
  assert.deepEqual(defaults.ui, { enabled: true })
  const set = load({ ...key({}), usage: { database: 'var/u.sqlite', timezone: 'europe/berlin', retention_days: 30 }, ui: { enabled: false } })
  assert.deepEqual(set.usage, { database: join(packageRoot(), 'var/u.sqlite'), timezone: 'Europe/Berlin', retentionDays: 30 })
  assert.equal(set.ui.enabled, false)
  assert.equal(load({ ...key({}), usage: { database: '/var/lib/proxy/u.sqlite' } }).usage.database, '/var/lib/proxy/u.sqlite')
})

test('YAML errors say where, in one line that never ends in a colon', () => {
  for (const text of ['auth: [', 'auth:\n  keys: x: y\n', 'auth: 1\nauth: 2\n', 'auth:\n\t- a\n', '"unterminated']) {
    assert.throws(() => parseConfig(text, '/etc/proxy.yaml'), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.match(err.message, /^\/etc\/proxy\.yaml: invalid YAML /)
      assert.equal(err.message.split('\n').length, 1, err.message)
      assert.doesNotMatch(err.message, /:\s*$/, err.message)
      return true
    }, text)
  }
  assert.throws(() => parseConfig('auth: 1\nauth: 2\n', 'f'), (err: Error) => err.message === 'f: invalid YAML at line 2, column 1: Map keys must be unique')
})

/** Every leaf field of the schema, as `auth.keys[].limits.queued`. */
function schemaFields (node: Record<string, unknown>, path: string): string[] {
  const items = node.items as Record<string, unknown> | undefined
  if (node.type === 'array' && items?.type === 'object') return schemaFields(items, `${path}[]`)
  const properties = node.properties as Record<string, Record<string, unknown>> | undefined
  if (node.type !== 'object' || properties === undefined) return [path]
  return Object.entries(properties).flatMap(([name, child]) => schemaFields(child, path === '' ? name : `${path}.${name}`))
}

test('config.example.yaml and the README document every field of the schema', () => {
  const example = readFileSync(join(packageRoot(), 'config/config.example.yaml'), 'utf8')
  const readme = readFileSync(join(packageRoot(), 'README.md'), 'utf8')
  const fields = schemaFields(ConfigSchema as unknown as Record<string, unknown>, '')
  assert.ok(fields.includes('auth.keys[].caps.keep_alive') && fields.includes('server.max_connections'), fields.join(' '))
  for (const field of fields) {
    const last = field.split('.').pop()!.replace('[]', '')
    assert.match(example, new RegExp(`(^|[\\s{,#])${last.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:`, 'm'), `config.example.yaml shows ${field}`)
    // A named key's fields are listed in their own table, relative to the entry.
    const names = [field, field.replace(/^auth\.keys\[\]\./, '')]
    assert.ok(names.some(name => readme.includes(`\`${name}\``)), `the README names ${field}`)
  }
})
