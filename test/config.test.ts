import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { ConfigError, loadConfig, parseConfig, shortTokenFields } from '../plugins/config/config-loader.js'

const run = promisify(execFile)
const good = 'auth:\n  generate_tokens: ["generate-secret-0123456789"]\n  model_tokens: ["model-secret-0123456789ab"]\nservice:\n  base_url: "http://localhost:11434"\n'

function rejects (text: string, pattern: RegExp): void {
  assert.throws(() => parseConfig(text, '/etc/proxy.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError)
    assert.match(err.message, /^\/etc\/proxy\.yaml: /, 'names the file')
    assert.match(err.message, pattern)
    return true
  })
}

test('a config error is one line, whatever a value brings in: a newline in a model name is written escaped', () => {
  const text = 'auth:\n  keys:\n    - name: web\n      key: "sha256:' + '0'.repeat(64) + '"\n      scopes: [generate]\n      models: ["llama\\nmistral"]\n'
  assert.throws(() => parseConfig(text, 'c.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError)
    assert.ok(!err.message.includes('\n'), err.message)
    assert.match(err.message, /^c\.yaml: auth\.keys\.0\.models\.0: .*llama\\nmistral/)
    return true
  })
})

test('the seed config shape loads with documented defaults', () => {
  const config = parseConfig(good, 'c.yaml')
  assert.deepEqual(config.auth.generateTokens, ['generate-secret-0123456789'])
  assert.equal(config.service.upstreams[0].url, 'http://localhost:11434')
  assert.equal(config.server.host, '0.0.0.0')
  assert.equal(config.server.port, 8080)
  assert.equal(config.server.bodyLimit, 100 * 1024 * 1024)
  assert.equal(config.service.connectTimeoutMs, 10_000)
  assert.equal(config.service.firstByteTimeoutMs, 600_000)
  assert.equal(config.service.idleTimeoutMs, 600_000)
  assert.equal(config.server.drainTimeoutMs, 30_000)
  assert.equal(config.cors.origins, '*')
  assert.equal(config.log.level, 'info')
})

test('bad files are refused with the file, the field and what was expected', () => {
  rejects('auth: [', /invalid YAML/)
  rejects('', /empty/)
  rejects('auth:\n  generate_tokens: "abc"\n', /auth\.generate_tokens: expected to be array/)
  rejects(good + 'server:\n  port: "eighty"\n', /server\.port: expected a port number from 0 to 65535/)
  rejects(good + 'log:\n  level: verbose\n', /log\.level: expected one of fatal, error, warn, info, debug, trace, silent; got "verbose"/)
  rejects('auth:\n  keys: [{ name: a, key: a-real-secret-0123456789, scopes: [gen] }]\n', /auth\.keys\.0\.scopes\.0: expected one of generate, models:read, models:admin, metrics, usage:read, keys:admin; got "gen"/)
  rejects(good.replace('http://localhost:11434', 'ftp://x'), /service\.base_url: expected an http\(s\) URL/)
  rejects(good.replace('http://localhost:11434', 'localhost:11434'), /service\.base_url: expected an http\(s\) URL/)
  rejects(good + 'servce:\n  port: 1\n', /servce: unknown key/)
  rejects(good.replace('model_tokens', 'modle_tokens'), /auth\.modle_tokens: unknown key/)
  rejects('service:\n  base_url: "http://x"\n', /missing required key "auth"/)
  rejects(good + 'service2: 1\n', /unknown key/)
})

test('no token at all, or the README\'s placeholder tokens, are refused', () => {
  rejects('auth: {}\n', /no token configured/)
  rejects('auth:\n  generate_tokens: []\n', /no token configured/)
  rejects('auth:\n  generate_tokens: ["your-generate-token-1"]\n', /this is a placeholder/)
  rejects('auth:\n  model_tokens: ["change-me-model-token"]\n', /auth\.model_tokens\.0: this is a placeholder from the documentation/)
  rejects('auth:\n  generate_tokens: ["sha256:abc"]\n', /64 hex digits/)
})

test('short tokens are reported for a warning', () => {
  const config = parseConfig('auth:\n  generate_tokens: ["short", "a-long-enough-token-123"]\n', 'c.yaml')
  assert.deepEqual(shortTokenFields(config), ['auth.generate_tokens.0'])
})

test('environment overrides PORT, HOST, OLLAMA_BASE_URL and LOG_LEVEL', () => {
  const config = parseConfig(good, 'c.yaml', { PORT: '9000', HOST: '127.0.0.1', OLLAMA_BASE_URL: 'http://ollama:11434', LOG_LEVEL: 'warn' })
  assert.equal(config.server.port, 9000)
  assert.equal(config.server.host, '127.0.0.1')
  assert.equal(config.service.upstreams[0].url, 'http://ollama:11434')
  assert.equal(config.log.level, 'warn')
  assert.throws(() => parseConfig(good, 'c.yaml', { PORT: 'abc' }), /environment variable PORT="abc": expected a port number/)
  assert.throws(() => parseConfig(good, 'c.yaml', { OLLAMA_BASE_URL: 'nope' }), /environment variable OLLAMA_BASE_URL="nope"/)
})

test('a missing default file is created with fresh random tokens, mode 0600', () => {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-config-'))
  const defaultPath = join(dir, 'config/config.yaml')
  {
    let created = ''
    const config = loadConfig({ createIfMissing: true, env: {}, defaultPath, onCreated: file => { created = file } })
    assert.equal(created, defaultPath)
    assert.equal(statSync(created).mode & 0o777, 0o600)
    assert.equal(config.auth.generateTokens.length, 1)
    assert.ok(config.auth.generateTokens[0].length >= 32)
    assert.notEqual(config.auth.generateTokens[0], config.auth.modelTokens[0])
    const again = loadConfig({ createIfMissing: true, env: {}, defaultPath })
    assert.deepEqual(again.auth, config.auth, 'the second start reads the same file')
  }
  assert.throws(() => loadConfig({ path: join(dir, 'missing.yaml'), createIfMissing: true }), /config file not found/)
})

test('the server exits non-zero with a readable message on a bad config', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-config-'))
  const file = join(dir, 'bad.yaml')
  writeFileSync(file, good + 'server:\n  port: "x"\n')
  const result = await run(process.execPath, ['--import', 'tsx', 'src/server.ts', '--config', file], { env: { ...process.env, OLLAMA_PROXY_CONFIG: '' } }).then(() => null, (err: { code: number, stderr: string }) => err)
  assert.ok(result !== null, 'the process failed')
  assert.equal(result.code, 1)
  assert.match(result.stderr, new RegExp(`${file}: server\\.port`))
  const viaEnv = await run(process.execPath, ['--import', 'tsx', 'src/server.ts'], { env: { ...process.env, OLLAMA_PROXY_CONFIG: join(dir, 'absent.yaml') } }).then(() => null, (err: { code: number, stderr: string }) => err)
  assert.ok(viaEnv !== null)
  assert.match(viaEnv.stderr, /absent\.yaml: config file not found/)
})

test('config.example.yaml documents a valid config', () => {
  const text = readFileSync('config/config.example.yaml', 'utf8')
  assert.throws(() => parseConfig(text, 'example'), /this is a placeholder/, 'its tokens are placeholders, so it cannot run as is')
  let n = 0
  // A secret of its own per entry: a named key may not share one (see secrets.test.ts).
  const usable = text.replaceAll(/change-me-[a-z]+-token/g, () => `a-real-secret-token-0123456789-${n++}`)
  const config = parseConfig(usable, 'example')
  assert.ok(config.auth.keys.length > 0)
})
