// `ollama-proxy keys ...` through the real command and real files.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { parse } from 'yaml'
import { HAND_WRITTEN, handWrittenFile, keys } from './keys-helper.js'

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
