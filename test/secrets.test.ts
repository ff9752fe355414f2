import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { stringify } from 'yaml'
import { KeyRing } from '../plugins/auth/keys.js'
import { ConfigError, parseConfig, redactUrlCredentials, sharedSeedTokens } from '../plugins/config/config-loader.js'
import { startFakeOllama } from './fake-ollama.js'
import { freePort } from './redis-server.js'

const A = 'first-secret-0000000000000000000000001'
const B = 'second-secret-000000000000000000000002'
const hashed = (secret: string) => `sha256:${createHash('sha256').update(secret).digest('hex')}`
const named = (name: string, key: string, extra: Record<string, unknown> = {}) => ({ name, key, scopes: ['generate'], ...extra })
const load = (auth: Record<string, unknown>) => parseConfig(stringify({ auth }), '/etc/proxy.yaml')

test('a secret shared with a named key is refused at load, naming both entries (plaintext and sha256: collide)', () => {
  const cases: Array<{ auth: Record<string, unknown>, fields: [string, string] }> = [
    { auth: { keys: [named('a', A), named('b', A)] }, fields: ['auth.keys.0.key', 'auth.keys.1.key'] },
    { auth: { keys: [named('a', A, { models: ['llama3.2'] }), named('b', hashed(A))] }, fields: ['auth.keys.0.key', 'auth.keys.1.key'] },
    { auth: { keys: [named('a', hashed(A).toUpperCase().replace('SHA256:', 'sha256:')), named('b', A)] }, fields: ['auth.keys.0.key', 'auth.keys.1.key'] },
    { auth: { generate_tokens: [B, A], keys: [named('app', A, { limits: { concurrent: 1 } })] }, fields: ['auth.generate_tokens.1', 'auth.keys.0.key'] },
    { auth: { model_tokens: [hashed(A)], keys: [named('app', A)] }, fields: ['auth.model_tokens.0', 'auth.keys.0.key'] },
    { auth: { metrics_tokens: [A], keys: [named('app', A)] }, fields: ['auth.metrics_tokens.0', 'auth.keys.0.key'] }
  ]
  for (const { auth, fields } of cases) {
    assert.throws(() => load(auth), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.match(err.message, /^\/etc\/proxy\.yaml: /)
      for (const field of fields) assert.ok(err.message.includes(field), `${err.message} names ${field}`)
      assert.match(err.message, /same secret/)
      assert.ok(!err.message.includes(A), 'the secret itself is not quoted')
      return true
    }, JSON.stringify(auth))
  }
  // The key ring refuses it too, should anything hand it such a set.
  assert.throws(() => new KeyRing({ generateTokens: [A], modelTokens: [], metricsTokens: [], keys: [named('app', A) as never] }), /same secret/)
})

test('the same token in two seed lists keeps both lists\' rights and is reported for a warning', () => {
  const config = load({ generate_tokens: [A], model_tokens: [B, hashed(A)], metrics_tokens: [B] })
  assert.deepEqual(sharedSeedTokens(config), [['auth.generate_tokens.0', 'auth.model_tokens.1'], ['auth.model_tokens.0', 'auth.metrics_tokens.0']])
  const ring = new KeyRing(config.auth)
  assert.deepEqual([...ring.find(A)!.scopes].sort(), ['generate', 'metrics', 'models:admin', 'models:read'])
  assert.deepEqual(sharedSeedTokens(load({ generate_tokens: [A], model_tokens: [B] })), [])
})

test('redis.url must be a parseable redis:// or rediss:// URL; the error never quotes it', () => {
  const secret = 'hunter2-redis-password'
  for (const url of [
    `http://user:${secret}@127.0.0.1:6379`,
    `redis://user:${secret}@127.0.0.1:notaport`,
    `redis://user:${secret}@[::1`,
    `redis://:${secret}@`,
    `${secret}@127.0.0.1:6379`
  ]) {
    assert.throws(() => parseConfig(stringify({ auth: { generate_tokens: [A] }, redis: { url } }), 'c.yaml'), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.match(err.message, /redis\.url/)
      assert.ok(!err.message.includes(secret), err.message)
      return true
    }, url)
  }
  for (const url of ['redis://127.0.0.1:6379', `rediss://user:${secret}@cache.internal:6380/2`, `redis://:${secret}@[::1]:6379`]) {
    assert.equal(parseConfig(stringify({ auth: { generate_tokens: [A] }, redis: { url } }), 'c.yaml').redis?.url, url)
  }
  assert.equal(redactUrlCredentials(`connect to redis://u:${secret}@h:1/0 and rediss://:${secret}@x failed`), 'connect to redis://***@h:1/0 and rediss://***@x failed')
})

/** Runs src/server.ts with a config; resolves with everything printed once `done(output)` holds or the process exits. */
async function runServer (t: TestContext, document: Record<string, unknown>, done: (output: string) => boolean): Promise<{ output: string, code: number | null | undefined }> {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-secrets-'))
  const file = join(dir, 'config.yaml')
  writeFileSync(file, stringify(document))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OLLAMA_PROXY_CONFIG: '' } })
  t.after(() => { child.kill('SIGKILL') })
  let output = ''
  return await new Promise(resolve => {
    const check = () => { if (done(output)) resolve({ output, code: undefined }) }
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); check() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); check() })
    child.on('close', code => resolve({ output, code }))
  })
}

test('the redis password never reaches stdout or stderr of the real process', async (t) => {
  const secret = `pw-${randomUUID()}`
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  // A usage database of its own, never the installation's, which a running proxy may be using.
  const usage = { database: join(mkdtempSync(join(tmpdir(), 'proxy-usage-')), 'usage.sqlite') }
  const base = { auth: { generate_tokens: [A] }, service: { base_url: fake.url }, server: { host: '127.0.0.1', port: 0 }, usage }

  for (const url of [`redis://user:${secret}@127.0.0.1:port`, `redis:/user:${secret}@127.0.0.1`, `https://user:${secret}@127.0.0.1:6379`]) {
    const refused = await runServer(t, { ...base, redis: { url } }, () => false)
    assert.equal(refused.code, 1, refused.output)
    assert.match(refused.output, /redis\.url/)
    assert.ok(!refused.output.includes(secret), refused.output)
  }

  // A valid URL to a closed port: the proxy starts, falls back to local limits and says so.
  const port = await freePort()
  const started = await runServer(t, { ...base, redis: { url: `redis://user:${secret}@127.0.0.1:${port}/0` } },
    output => output.includes('ollama-proxy ready') && output.includes('redis unreachable'))
  assert.equal(started.code, undefined, started.output)
  assert.ok(started.output.includes(`127.0.0.1:${port}`), started.output)
  assert.ok(!started.output.includes(secret), started.output)
})
