// `ollama-proxy keys ...` through the real command and real files.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { parse } from 'yaml'
import { runKeysCommand } from '../src/keys-command.js'
import { HAND_WRITTEN, handWrittenFile, keys } from './keys-helper.js'
import { nodeArgs, spawnProcess } from './proxy-process.js'

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

test('keys add prints the key once, stores its digest only, keeps every other line and the file mode; list and revoke', async (t) => {
  const file = handWrittenFile()
  chmodSync(file, 0o640)
  const added = await keys(t, ['add', 'web-app', '--scopes', 'generate', '--models', 'llama3.2*,nomic-embed-text', '--rpm', '60', '--tpm', '5000', '--concurrent', '3', '--config', file])
  assert.equal(added.code, 0, added.stderr)
  const key = added.stdout.trim()
  assert.match(key, /^olp_[A-Za-z0-9_-]{43}$/, 'stdout is the key alone')
  const text = readFileSync(file, 'utf8')
  assert.ok(!text.includes(key), 'the key itself is not written')
  assert.ok(text.includes(`sha256:${sha256(key)}`), 'its digest is')
  const before = HAND_WRITTEN.split('\n')
  const after = text.split('\n')
  assert.deepEqual(after.filter(line => before.includes(line)), before, 'every original line is kept, in order, byte for byte')
  const entry = parse(text).auth.keys.find((k: { name: string }) => k.name === 'web-app')
  assert.deepEqual(entry, {
    name: 'web-app',
    key: `sha256:${sha256(key)}`,
    scopes: ['generate'],
    models: ['llama3.2*', 'nomic-embed-text'],
    limits: { requests_per_minute: 60, tokens_per_minute: 5000, concurrent: 3 }
  })
  assert.equal(statSync(file).mode & 0o777, 0o640, 'the file mode is kept')
  assert.deepEqual(readdirSync(join(file, '..')), ['config.yaml'], 'no temporary file left behind')

  const listed = await keys(t, ['list', '--config', file])
  assert.equal(listed.code, 0)
  assert.match(listed.stdout, /^NAME\s+SCOPES\s+MODELS\s+LIMITS\s+CAPS\s+WEIGHT\s+EXPIRES\s+STORED$/m)
  assert.match(listed.stdout, /^batch-jobs\s+generate\s+\*\s+concurrent=2\s+-\s+1\s+-\s+digest$/m)
  assert.match(listed.stdout, /^web-app\s+generate\s+llama3\.2\*,nomic-embed-text\s+rpm=60,tpm=5000,concurrent=3\s+-\s+1\s+-\s+digest$/m)
  assert.ok(!listed.stdout.includes(sha256(key)), 'list shows no digest')

  const revoked = await keys(t, ['revoke', 'web-app', '--config', file])
  assert.equal(revoked.code, 0, revoked.stderr)
  assert.equal(readFileSync(file, 'utf8'), HAND_WRITTEN, 'revoking the added key gives back the original file')
  const last = await keys(t, ['revoke', 'batch-jobs', '--config', file])
  assert.equal(last.code, 0, last.stderr)
  assert.deepEqual(parse(readFileSync(file, 'utf8')).auth.keys, [], 'the last key leaves an empty list')
  assert.match(readFileSync(file, 'utf8'), /^service:\n {2}base_url: "http:\/\/127\.0\.0\.1:1" {12}# Ollama$/m)
})

test('keys: mistakes are one line and a non-zero exit, and the file is untouched', async (t) => {
  const file = handWrittenFile()
  const dir = mkdtempSync(join(tmpdir(), 'proxy-keys-none-'))
  const cases: Array<{ name: string, args: string[], code: number, message: RegExp }> = [
    { name: 'no config file', args: ['add', 'a', '--scopes', 'generate', '--config', join(dir, 'config.yaml')], code: 1, message: /config\.yaml: no config file there/ },
    { name: 'name taken', args: ['add', 'batch-jobs', '--scopes', 'generate', '--config', file], code: 1, message: /a key named "batch-jobs" exists already/ },
    { name: 'unknown scope', args: ['add', 'a', '--scopes', 'generate,admin', '--config', file], code: 1, message: /unknown scope "admin": use generate, models:read, models:admin/ },
    { name: 'bad name', args: ['add', 'a b', '--scopes', 'generate', '--config', file], code: 1, message: /"a b" is not a valid key name/ },
    { name: 'unknown key', args: ['revoke', 'nobody', '--config', file], code: 1, message: /no key named "nobody"/ },
    { name: 'no scopes', args: ['add', 'a', '--config', file], code: 2, message: /--scopes is required/ },
    { name: 'bad limit', args: ['add', 'a', '--scopes', 'generate', '--rpm', 'lots', '--config', file], code: 2, message: /--rpm expects a whole number/ },
    // An empty shell variable: read as absent, it would give the key every model.
    { name: 'empty allowlist', args: ['add', 'a', '--scopes', 'generate', '--models', '', '--config', file], code: 2, message: /--models expects a comma-separated list, got ""/ },
    { name: 'allowlist of commas', args: ['update', 'batch-jobs', '--models', ' , ', '--config', file], code: 2, message: /--models expects a comma-separated list, got " , "/ },
    { name: 'empty scopes', args: ['update', 'batch-jobs', '--scopes', '', '--config', file], code: 2, message: /--scopes expects a comma-separated list, got ""/ },
    { name: 'unknown option', args: ['add', 'a', '--scope', 'generate', '--config', file], code: 2, message: /Unknown option '--scope'/ },
    { name: 'unknown command', args: ['mint', 'a', '--config', file], code: 2, message: /unknown command "mint"/ }
  ]
  await Promise.all(cases.map(async c => {
    const result = await keys(t, c.args)
    assert.equal(result.code, c.code, `${c.name}: ${result.stderr}`)
    assert.equal(result.stdout, '', `${c.name}: nothing on stdout`)
    const first = result.stderr.split('\n')[0]
    assert.match(first, /^ollama-proxy keys: /, c.name)
    assert.match(first, c.message, c.name)
    if (c.code === 1) assert.equal(result.stderr.trimEnd().split('\n').length, 1, `${c.name}: one line`)
  }))
  assert.equal(readFileSync(file, 'utf8'), HAND_WRITTEN)
})

test('keys add mints the first key of a file that has no token yet; revoking the last token is refused', async (t) => {
  // The proxy refuses such a file and points at `keys add`, so `keys add` must accept it.
  const empty = '# placeholders deleted by hand\nauth:\n  generate_tokens: []\nservice:\n  base_url: "http://127.0.0.1:1"\n'
  const file = handWrittenFile(empty)
  const added = await keys(t, ['add', 'first', '--scopes', 'generate', '--config', file])
  assert.equal(added.code, 0, added.stderr)
  const key = added.stdout.trim()
  assert.deepEqual(parse(readFileSync(file, 'utf8')).auth.keys, [{ name: 'first', key: `sha256:${sha256(key)}`, scopes: ['generate'] }])
  assert.ok(readFileSync(file, 'utf8').startsWith('# placeholders deleted by hand\n'), 'the rest of the file is kept')

  const listed = await keys(t, ['list', '--config', handWrittenFile(empty)])
  assert.equal(listed.code, 0, listed.stderr)

  const before = readFileSync(file, 'utf8')
  const revoked = await keys(t, ['revoke', 'first', '--config', file])
  assert.equal(revoked.code, 1, 'a file without any token would stop the proxy')
  assert.match(revoked.stderr, /^ollama-proxy keys: .*auth: no token configured/)
  assert.equal(readFileSync(file, 'utf8'), before, 'the file is untouched')
})

/** `keys ...` in process, at a fixed time: its exit status and output. */
function run (args: string[], now = Date.UTC(2027, 0, 10, 12)): { code: number, stdout: string, stderr: string } {
  let stdout = ''
  let stderr = ''
  const code = runKeysCommand(args, { out: text => { stdout += text }, err: text => { stderr += text }, env: {}, now: () => now })
  return { code, stdout, stderr }
}

test('keys add with budgets, expiry, weight and caps writes them; list shows them', () => {
  const file = handWrittenFile()
  const added = run(['add', 'student-17', '--scopes', 'generate,metrics', '--expires', '30d', '--tokens-per-day', '200000', '--tokens-per-month', '2000000',
    '--requests-per-day', '5000', '--weight', '2', '--queued', '0', '--max-num-ctx', '8192', '--max-keep-alive', '30m', '--no-unload', '--config', file])
  assert.equal(added.code, 0, added.stderr)
  const entry = parse(readFileSync(file, 'utf8')).auth.keys[1]
  assert.deepEqual({ ...entry, key: undefined }, {
    name: 'student-17',
    key: undefined,
    scopes: ['generate', 'metrics'],
    limits: { requests_per_day: 5000, tokens_per_day: 200000, tokens_per_month: 2000000, queued: 0 },
    caps: { num_ctx: 8192, keep_alive: '30m', unload: false },
    expires_at: '2027-02-09T12:00:00Z',
    weight: 2
  })
  assert.equal(run(['add', 'dated', '--scopes', 'generate', '--expires', '2027-06-30', '--max-keep-alive', '600', '--config', file]).code, 0)
  assert.deepEqual(parse(readFileSync(file, 'utf8')).auth.keys[2].caps, { keep_alive: 600 }, 'seconds are stored as a number')
  const listed = run(['list', '--config', file], Date.UTC(2027, 5, 1))
  assert.equal(listed.code, 0)
  assert.match(listed.stdout, /^student-17\s+generate,metrics\s+\*\s+queued=0,requests\/day=5000,tokens\/day=200000,tokens\/month=2000000\s+num_ctx=8192,keep_alive=1800s,no-unload\s+2\s+2027-02-09T12:00:00Z \(expired\)\s+digest$/m)
  assert.match(listed.stdout, /^dated\s+generate\s+\*\s+-\s+keep_alive=600s\s+1\s+2027-07-01T00:00:00Z\s+digest$/m)
})

test('keys rotate prints a new key once; with --grace the old one is kept as a digest until then', () => {
  const file = handWrittenFile()
  const first = run(['add', 'web-app', '--scopes', 'generate', '--config', file])
  const old = first.stdout.trim()
  const rotated = run(['rotate', 'web-app', '--grace', '24h', '--config', file])
  assert.equal(rotated.code, 0, rotated.stderr)
  const fresh = rotated.stdout.trim()
  assert.match(fresh, /^olp_[A-Za-z0-9_-]{43}$/)
  assert.notEqual(fresh, old)
  assert.match(rotated.stderr, /the old key keeps working until 2027-01-11T12:00:00Z/)
  const text = readFileSync(file, 'utf8')
  assert.ok(!text.includes(fresh) && !text.includes(old), 'no secret in the file')
  assert.deepEqual(parse(text).auth.keys[1].previous_keys, [{ key: `sha256:${sha256(old)}`, expires_at: '2027-01-11T12:00:00Z' }])
  assert.match(run(['list', '--config', file]).stdout, /^web-app\s.*digest \(\+1 old until 2027-01-11T12:00:00Z\)$/m)

  const again = run(['rotate', 'web-app', '--config', file], Date.UTC(2027, 0, 12))
  assert.equal(again.code, 0)
  assert.match(again.stderr, /the old key stops as soon as a running proxy has reloaded the file/)
  assert.equal(parse(readFileSync(file, 'utf8')).auth.keys[1].previous_keys, undefined, 'the expired previous key is dropped')
})

test('keys update changes only what it is given', () => {
  const file = handWrittenFile()
  const updated = run(['update', 'batch-jobs', '--tokens-per-day', '1000', '--weight', '4', '--config', file])
  assert.equal(updated.code, 0, updated.stderr)
  assert.deepEqual(parse(readFileSync(file, 'utf8')).auth.keys[0], { name: 'batch-jobs', key: `sha256:${'ab'.repeat(32)}`, scopes: ['generate'], limits: { concurrent: 2, tokens_per_day: 1000 }, weight: 4 })
  assert.ok(readFileSync(file, 'utf8').includes('        concurrent: 2                       # the GPU is small\n'))
})

test('keys: bad options exit 2 with the usage; refused changes exit 1 with the loader\'s one line; the file is untouched', () => {
  const file = handWrittenFile()
  const usage: Array<[string[], RegExp]> = [
    [['add', 'a', '--scopes', 'generate', '--weight', '0'], /--weight expects a whole number of at least 1/],
    [['add', 'a', '--scopes', 'generate', '--weight', '1.5'], /--weight expects a whole number/],
    [['add', 'a', '--scopes', 'generate', '--tokens-per-day=-1'], /--tokens-per-day expects a whole number of at least 0/],
    [['add', 'a', '--scopes', 'generate', '--tokens-per-day', '-1'], /'--tokens-per-day' argument is ambiguous/],
    [['add', 'a', '--scopes', 'generate', '--queued', 'some'], /--queued expects a whole number/],
    [['add', 'a', '--scopes', 'generate', '--expires', 'next week'], /--expires expects a span/],
    [['add', 'a', '--scopes', 'generate', '--expires', '2027-02-30'], /--expires expects a span/],
    [['add', 'a', '--scopes', 'generate', '--max-keep-alive', 'forever'], /--max-keep-alive expects a positive duration/],
    [['add', 'a', '--scopes', 'generate', '--max-keep-alive=-1m'], /--max-keep-alive expects a positive duration/],
    [['add', 'a', '--scopes', 'generate', '--grace', '1h'], /--grace does not apply to keys add/],
    [['rotate', 'batch-jobs', '--grace', 'a day'], /--grace expects a span/],
    [['rotate', 'batch-jobs', '--grace', '2500000000h'], /--grace expects a span such as 24h or 7d \(at most 36500d\)/],
    [['add', 'a', '--scopes', 'generate', '--expires', '2500000000h'], /--expires expects a span/],
    [['rotate', 'batch-jobs', '--weight', '2'], /--weight does not apply to keys rotate/],
    [['update', 'batch-jobs'], /nothing to change/],
    [['rotate'], /missing the key NAME/]
  ]
  for (const [args, message] of usage) {
    const result = run([...args, '--config', file])
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr.split('\n')[0], message)
    assert.match(result.stderr, /Usage: ollama-proxy keys add NAME/)
  }
  const refused: Array<[string[], RegExp]> = [
    [['add', 'x', '--scopes', 'generate', '--models', 'Llama 3.2'], /config\.yaml: auth\.keys\.1\.models\.0: allowlist entry "Llama 3\.2" is not a model name Ollama accepts$/],
    [['add', 'x', '--scopes', 'generate', '--models', 'llama\nmistral'], /auth\.keys\.1\.models\.0: allowlist entry "llama\\nmistral" is not a model name/],
    [['add', 'x', '--scopes', 'generate', '--expires', '2027-01-09'], /auth\.keys\.1\.expires_at: 2027-01-09 is in the past/],
    [['update', 'batch-jobs', '--models', 'a:b:c:d'], /auth\.keys\.0\.models\.0: allowlist entry "a:b:c:d"/],
    [['rotate', 'nobody'], /no key named "nobody"/]
  ]
  for (const [args, message] of refused) {
    const result = run([...args, '--config', file])
    assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`)
    assert.equal(result.stdout, '', 'no key printed')
    assert.equal(result.stderr.trimEnd().split('\n').length, 1)
    assert.match(result.stderr, /^ollama-proxy keys: /)
    assert.match(result.stderr.trimEnd(), message)
  }
  assert.equal(readFileSync(file, 'utf8'), HAND_WRITTEN)
})

test('keys add --models with a name Ollama refuses: the same line the proxy gives at start', async (t) => {
  const file = handWrittenFile()
  const result = run(['add', 'x', '--scopes', 'generate', '--models', 'Llama 3.2', '--config', file])
  const bad = handWrittenFile(HAND_WRITTEN.replace('  keys:\n', '  keys:\n    - { name: x, key: "a-real-secret-000000000000000001", scopes: [generate], models: ["Llama 3.2"] }\n'))
  const started = spawnProcess(t, process.execPath, nodeArgs('src/server.ts', ['--config', bad]), { env: { ...process.env, OLLAMA_PROXY_CONFIG: '' } })
  const { code } = await started.exited
  assert.equal(code, 1)
  const atStart = started.output().trim()
  assert.equal(atStart.split('\n').length, 1, 'one line, no stack trace')
  assert.equal(atStart, `ollama-proxy: ${bad}: auth.keys.0.models.0: allowlist entry "Llama 3.2" is not a model name Ollama accepts`)
  assert.equal(result.stderr.trimEnd().replace(file, bad).replace('auth.keys.1', 'auth.keys.0'), atStart.replace('ollama-proxy: ', 'ollama-proxy keys: '))
})

test('keys revoke of a key holding an anchor used elsewhere, through a symlinked file', () => {
  // batch-jobs holds the anchor; helper, after it, uses it.
  const real = handWrittenFile(HAND_WRITTEN.replace('      limits:\n        concurrent: 2 ', '      limits: &small\n        concurrent: 2 ')
    .replace('\nservice:', '    - { name: helper, key: "a-real-secret-000000000000000002", scopes: [generate], limits: *small }\n\nservice:'))
  const link = join(mkdtempSync(join(tmpdir(), 'proxy-keys-link-')), 'config.yaml')
  symlinkSync(real, link)
  const revoked = run(['revoke', 'batch-jobs', '--config', link])
  assert.equal(revoked.code, 0, revoked.stderr)
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link stays')
  const keysNow = parse(readFileSync(real, 'utf8')).auth.keys
  assert.deepEqual(keysNow.map((k: { name: string }) => k.name), ['helper'])
  assert.deepEqual(keysNow[0].limits, { concurrent: 2 }, 'the alias keeps its value')
})
