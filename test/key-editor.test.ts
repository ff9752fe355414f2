// The config editor's functions on real files, in process: what the keys CLI and the key API call.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { parse } from 'yaml'
import { KeyRing } from '../plugins/auth/keys.js'
import { ConfigError, ConfigNotWritableError } from '../plugins/config/config-errors.js'
import { addNamedKey, openConfig, removeNamedKey, rotateNamedKey, saveConfig, updateNamedKey, type EditableConfig } from '../plugins/config/config-editor.js'
import { parseConfig } from '../plugins/config/config-loader.js'
import { notWritableError } from '../plugins/config/write-failures.js'
import { HAND_WRITTEN, handWrittenFile } from './keys-helper.js'

const sha256 = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`
const NOW = Date.UTC(2027, 0, 10, 12)
const HOUR = 3_600_000
const NEW_KEY = 'olp_new-key-for-the-editor-tests-000000001'

/** A config whose first key holds anchors that the second key's entry uses. */
const ANCHORED = `# shared settings live in the first key
auth:
  generate_tokens: ["a-real-generate-secret-0123456789"]
  keys:
    - name: lead                        # the anchors are here
      key: "sha256:${'ab'.repeat(32)}"
      scopes: &gen [generate]
      models: &team ["llama3.2*", "qwen3*"]
      limits: &small
        concurrent: 2                   # the GPU is small
    - name: student
      key: "sha256:${'cd'.repeat(32)}"
      scopes: *gen
      models: *team
      limits: *small
    - name: other
      key: "sha256:${'ef'.repeat(32)}"  # keep this comment
      scopes: *gen
service:
  base_url: "http://127.0.0.1:1"
`

/** The proxy's reading of each key, by name (what must not change when another key is edited). */
function keysByName (editable: EditableConfig): Record<string, unknown> {
  return Object.fromEntries(parseConfig(editable.text, 'x').auth.keys.map(k => [k.name, { ...k, key: undefined }]))
}

/** Lines of `before` that are also in `after`, in order: every untouched line must survive. */
function keptLines (before: string, after: string, changed: (line: string) => boolean): void {
  const lines = after.split('\n')
  for (const line of before.split('\n').filter(l => !changed(l))) assert.ok(lines.includes(line), `kept byte for byte: ${JSON.stringify(line)}`)
}

test('revoking the key that holds anchors leaves the other keys exactly as they were', () => {
  const editable = openConfig(handWrittenFile(ANCHORED))
  const before = keysByName(editable)
  removeNamedKey(editable, 'lead')
  const after = keysByName(editable)
  assert.deepEqual(Object.keys(after), ['student', 'other'])
  assert.deepEqual(after.student, before.student, 'the aliases still mean the anchored values')
  assert.deepEqual(after.other, before.other)
  keptLines(ANCHORED, editable.text, line => /lead|&|\*|concurrent|^ {6}key: "sha256:ab/.test(line))
  assert.match(editable.text, /key: "sha256:(ef){32}" {2}# keep this comment\n/)
})

test('changing a key whose setting is anchored does not change the keys that alias it', () => {
  const editable = openConfig(handWrittenFile(ANCHORED))
  const before = keysByName(editable) as Record<string, { limits: unknown, models: unknown }>
  updateNamedKey(editable, 'lead', { limits: { concurrent: 5, tokens_per_day: 1000 }, models: ['mistral'] }, NOW)
  const after = keysByName(editable) as Record<string, { limits: Record<string, unknown>, models: unknown }>
  assert.equal(after.lead.limits.concurrent, 5)
  assert.equal(after.lead.limits.tokensPerDay, 1000)
  assert.deepEqual(after.lead.models, ['mistral'])
  assert.deepEqual(after.student.limits, before.student.limits)
  assert.deepEqual(after.student.models, before.student.models)
  assert.match(editable.text, / {8}concurrent: 5 {19}# the GPU is small\n {8}tokens_per_day: 1000\n/, 'edited in place, comment kept')
})

test('updateNamedKey sets, merges and removes fields of one key and keeps every other line', () => {
  const file = handWrittenFile()
  const editable = openConfig(file)
  updateNamedKey(editable, 'batch-jobs', {
    scopes: ['generate', 'metrics'],
    limits: { tokens_per_day: 200000, tokens_per_month: 2000000, requests_per_day: 5000, queued: 0 },
    caps: { num_ctx: 8192, keep_alive: '30m', unload: false },
    expires_at: '2027-06-30',
    weight: 3
  }, NOW)
  const key = editable.config.auth.keys[0]
  assert.deepEqual(key.scopes, ['generate', 'metrics'])
  assert.deepEqual(key.limits, { requestsPerMinute: null, tokensPerMinute: null, concurrent: 2, tokensPerDay: 200000, tokensPerMonth: 2000000, requestsPerDay: 5000, queued: 0 })
  assert.deepEqual(key.caps, { numCtx: 8192, keepAliveSeconds: 1800, unload: false })
  assert.equal(key.expiresAt, Date.UTC(2027, 6, 1), 'a date alone is valid through that day, UTC')
  assert.equal(key.weight, 3)
  keptLines(HAND_WRITTEN, editable.text, line => line.includes('scopes: [generate]'))

  updateNamedKey(editable, 'batch-jobs', { limits: { concurrent: null, queued: null }, caps: { keep_alive: null }, expires_at: null, weight: null }, NOW)
  const reset = editable.config.auth.keys[0]
  assert.equal(reset.limits.concurrent, null)
  assert.equal(reset.limits.tokensPerDay, 200000)
  assert.deepEqual(reset.caps, { numCtx: 8192, keepAliveSeconds: null, unload: false })
  assert.equal(reset.expiresAt, null)
  assert.equal(reset.weight, 1)
  assert.equal(readFileSync(file, 'utf8'), HAND_WRITTEN, 'nothing is written before saveConfig')
})

test('updateNamedKey may replace every field of a mapping at once: the old ones removed, the new ones added', () => {
  const editable = openConfig(handWrittenFile())
  // The hand-written key's limits hold only `concurrent: 2`.
  updateNamedKey(editable, 'batch-jobs', { limits: { concurrent: null, tokens_per_day: 500 } }, NOW)
  const key = editable.config.auth.keys[0]
  assert.equal(key.limits.concurrent, null)
  assert.equal(key.limits.tokensPerDay, 500)
  assert.deepEqual(parseConfig(editable.text, 'edited.yaml').auth.keys[0].limits, key.limits, 'the text says so too')
})

test('a refused edit throws one ConfigError naming the field and leaves the editable as it was', () => {
  const cases: Array<{ edit: (e: EditableConfig) => void, field: string, message: RegExp }> = [
    { edit: e => updateNamedKey(e, 'batch-jobs', { weight: 0 }, NOW), field: 'auth.keys.0.weight', message: /expected a positive whole number/ },
    { edit: e => updateNamedKey(e, 'batch-jobs', { weight: 1.5 }, NOW), field: 'auth.keys.0.weight', message: /expected a positive whole number/ },
    { edit: e => updateNamedKey(e, 'batch-jobs', { limits: { tokens_per_day: -1 } }, NOW), field: 'auth.keys.0.limits.tokens_per_day', message: /0 or more/ },
    { edit: e => updateNamedKey(e, 'batch-jobs', { expires_at: 'next tuesday' }, NOW), field: 'auth.keys.0.expires_at', message: /ISO 8601/ },
    { edit: e => updateNamedKey(e, 'batch-jobs', { caps: { keep_alive: -1 } }, NOW), field: 'auth.keys.0.caps.keep_alive', message: /positive duration/ },
    { edit: e => updateNamedKey(e, 'batch-jobs', { models: ['Llama 3.2'] }, NOW), field: 'auth.keys.0.models.0', message: /"Llama 3\.2" is not a model name Ollama accepts/ },
    { edit: e => updateNamedKey(e, 'nobody', { weight: 2 }, NOW), field: 'name', message: /no key named "nobody"/ },
    { edit: e => addNamedKey(e, { name: 'x', scopes: ['generate'], models: ['Llama 3.2'] }, NEW_KEY, NOW), field: 'auth.keys.1.models.0', message: /"Llama 3\.2" is not a model name Ollama accepts/ },
    { edit: e => addNamedKey(e, { name: 'x', scopes: ['admin' as never] }, NEW_KEY, NOW), field: 'auth.keys.1.scopes.0', message: /expected one of generate, models:read, models:admin, metrics, usage:read, keys:admin/ },
    { edit: e => addNamedKey(e, { name: 'x', scopes: ['generate'], expires_at: '2027-01-09' }, NEW_KEY, NOW), field: 'auth.keys.1.expires_at', message: /is in the past/ },
    { edit: e => addNamedKey(e, { name: 'batch-jobs', scopes: ['generate'] }, NEW_KEY, NOW), field: 'name', message: /exists already/ },
    { edit: e => addNamedKey(e, { name: 'a b', scopes: ['generate'] }, NEW_KEY, NOW), field: 'name', message: /not a valid key name/ },
    { edit: e => rotateNamedKey(e, 'nobody', NEW_KEY, 0, NOW), field: 'name', message: /no key named "nobody"/ }
  ]
  for (const { edit, field, message } of cases) {
    const editable = openConfig(handWrittenFile())
    assert.throws(() => edit(editable), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err))
      assert.equal(err.field, field, err.message)
      assert.match(err.message, message)
      assert.equal(err.message.split('\n').length, 1)
      return true
    }, field)
    assert.equal(editable.text, HAND_WRITTEN, `${field}: unchanged`)
  }
})

test('the allowlist refusal is the message the proxy gives at start', () => {
  const editable = openConfig(handWrittenFile())
  const refused = (() => {
    try {
      addNamedKey(editable, { name: 'x', scopes: ['generate'], models: ['Llama 3.2'] }, NEW_KEY, NOW)
    } catch (err) {
      return (err as Error).message
    }
  })()
  const file = editable.file
  const atStart = (() => {
    try {
      parseConfig(HAND_WRITTEN.replace('    - name: batch-jobs', `    - { name: x, key: "${sha256(NEW_KEY)}", scopes: [generate], models: ["Llama 3.2"] }\n    - name: batch-jobs`), file)
    } catch (err) {
      return (err as Error).message
    }
  })()
  assert.equal(refused?.replace('auth.keys.1', 'auth.keys.0'), atStart)
})

test('rotation: the new key works at once, the old one until its grace ends, as the same key; expired previous keys are dropped', () => {
  const old = 'olp_the-old-secret-of-web-app-000000000001'
  const editable = openConfig(handWrittenFile(HAND_WRITTEN.replace('  keys:\n', `  keys:\n    - name: web-app\n      key: "${old}"\n      scopes: [generate]\n      limits: { requests_per_minute: 7 }\n`)))
  const { previousValidUntil } = rotateNamedKey(editable, 'web-app', NEW_KEY, 24 * HOUR, NOW)
  assert.equal(previousValidUntil, NOW + 24 * HOUR)
  assert.ok(!editable.text.includes(old), 'the old plaintext secret is replaced by its digest')
  assert.ok(!editable.text.includes(NEW_KEY), 'only the digest of the new key is stored')
  const entry = parse(editable.text).auth.keys[0]
  assert.equal(entry.key, sha256(NEW_KEY))
  assert.deepEqual(entry.previous_keys, [{ key: sha256(old), expires_at: '2027-01-11T12:00:00Z' }])

  let now = NOW
  const ring = new KeyRing(editable.config.auth, { clock: () => now })
  const current = ring.find(NEW_KEY)
  assert.equal(ring.find(old), current, 'the old secret is the same key: name, scopes, limits')
  assert.equal(current?.limits.requestsPerMinute, 7)
  now = NOW + 24 * HOUR - 1
  assert.equal(ring.find(old), current)
  now = NOW + 24 * HOUR
  assert.equal(ring.lookup(old), undefined, 'past its grace the old secret is simply invalid')
  assert.equal(ring.find(NEW_KEY), current)

  // Rotated again a day later without grace: the expired previous key is dropped, no new one kept.
  const newest = 'olp_the-newest-secret-0000000000000000000003'
  rotateNamedKey(editable, 'web-app', newest, 0, NOW + 25 * HOUR)
  const again = parse(editable.text).auth.keys[0]
  assert.equal(again.key, sha256(newest))
  assert.equal(again.previous_keys, undefined)
})

test('rotation without grace stops every old secret at once, one still in the grace of an earlier rotation too (a leak)', () => {
  const leaked = 'olp_the-leaked-secret-of-web-app-00000000001'
  const editable = openConfig(handWrittenFile(HAND_WRITTEN.replace('  keys:\n', `  keys:\n    - name: web-app\n      key: "${leaked}"\n      scopes: [generate]\n`)))
  const planned = 'olp_the-planned-rollover-secret-0000000002'
  rotateNamedKey(editable, 'web-app', planned, 7 * 24 * HOUR, NOW)
  const ring = () => new KeyRing(editable.config.auth, { clock: () => NOW + HOUR })
  assert.ok(ring().find(leaked) !== undefined, 'in its grace')
  const emergency = 'olp_the-emergency-secret-000000000000000003'
  const { previousValidUntil } = rotateNamedKey(editable, 'web-app', emergency, 0, NOW + HOUR)
  assert.equal(previousValidUntil, NOW + HOUR)
  assert.equal(ring().lookup(leaked), undefined, 'the leaked secret stops too')
  assert.equal(ring().lookup(planned), undefined)
  assert.ok(ring().find(emergency) !== undefined)
  assert.equal(parse(editable.text).auth.keys[0].previous_keys, undefined)
})

test('saveConfig writes through a symlink: the real file changes, the link stays a link', () => {
  const real = handWrittenFile()
  const linkDir = mkdtempSync(join(tmpdir(), 'proxy-link-'))
  const link = join(linkDir, 'config.yaml')
  symlinkSync(real, link)
  const editable = openConfig(link)
  removeNamedKey(editable, 'batch-jobs')
  saveConfig(editable)
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link is kept')
  assert.equal(readlinkSync(link), real)
  assert.deepEqual(parse(readFileSync(real, 'utf8')).auth.keys, [], 'the real file lost the key')
})

test('saveConfig refuses a file changed since it was opened, and a result the proxy would not start with', () => {
  const file = handWrittenFile()
  const editable = openConfig(file)
  addNamedKey(editable, { name: 'x', scopes: ['generate'] }, NEW_KEY, NOW)
  writeFileSync(file, HAND_WRITTEN + '# edited by hand meanwhile\n')
  assert.throws(() => saveConfig(editable), /changed while it was being edited/)
  assert.equal(readFileSync(file, 'utf8'), HAND_WRITTEN + '# edited by hand meanwhile\n')

  const bare = openConfig(handWrittenFile('auth:\n  keys:\n    - { name: only, key: "a-real-secret-0123456789", scopes: [generate] }\n'))
  removeNamedKey(bare, 'only')
  assert.throws(() => saveConfig(bare), /auth: no token configured/)
})

test('write failures name the path and the fix, as ConfigNotWritableError', () => {
  const cases: Array<{ code: string, action: 'create' | 'save', message: RegExp, path: string }> = [
    { code: 'EROFS', action: 'create', path: '/srv/proxy/config', message: /^\/srv\/proxy\/config: config folder is read-only: create \/srv\/proxy\/config\/config\.yaml first .*or mount the folder writable$/ },
    { code: 'EACCES', action: 'create', path: '/srv/proxy/config', message: /no permission to create config\.yaml .*create \/srv\/proxy\/config\/config\.yaml first/ },
    { code: 'ENOENT', action: 'create', path: '/srv/proxy/config', message: /does not exist and cannot be made/ },
    { code: 'EROFS', action: 'save', path: '/srv/proxy/config', message: /^\/srv\/proxy\/config: config folder is read-only: mount the folder writable/ },
    { code: 'EACCES', action: 'save', path: '/srv/proxy/config', message: /no permission to write the config folder .*must be writable/ },
    { code: 'EPERM', action: 'save', path: '/srv/proxy/config', message: /no permission to write the config folder/ },
    { code: 'EBUSY', action: 'save', path: '/srv/proxy/config/config.yaml', message: /single-file bind mount.*mount its folder instead/ }
  ]
  for (const { code, action, message, path } of cases) {
    const err = notWritableError(Object.assign(new Error(`${code}: raw`), { code }), '/srv/proxy/config/config.yaml', action)
    assert.ok(err instanceof ConfigNotWritableError, code)
    assert.equal(err.code, code)
    assert.equal(err.path, path)
    assert.match(err.message, message, `${action} ${code}`)
    assert.ok(!err.message.includes('raw'), 'not the raw errno line')
  }
  assert.equal(notWritableError(Object.assign(new Error('x'), { code: 'EIO' }), '/a/b', 'save'), undefined)
})

test('a folder that cannot exist (a file in its path) is a ConfigNotWritableError at save', () => {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-notdir-'))
  mkdirSync(join(dir, 'config'))
  const file = join(dir, 'config', 'config.yaml')
  writeFileSync(file, HAND_WRITTEN)
  const editable = openConfig(file)
  removeNamedKey(editable, 'batch-jobs')
  // The link now points through a file: the real folder cannot be written.
  const blocker = join(dir, 'blocker')
  writeFileSync(blocker, '')
  const link = join(dir, 'link.yaml')
  symlinkSync(join(blocker, 'config.yaml'), link)
  assert.throws(() => saveConfig({ ...editable, file: link }), (err: unknown) => err instanceof ConfigNotWritableError && err.message.split('\n').length === 1)
})

test('a file written with CRLF line ends keeps them in every line the editor adds or changes', () => {
  const crlf = HAND_WRITTEN.replace(/\n/g, '\r\n')
  const editable = openConfig(handWrittenFile(crlf))
  addNamedKey(editable, { name: 'windows', scopes: ['generate'], models: ['llama3.2*'], limits: { concurrent: 2 } }, NEW_KEY, NOW)
  updateNamedKey(editable, 'windows', { limits: { tokens_per_day: 1000 }, caps: { num_ctx: 4096 }, weight: 2 }, NOW)
  rotateNamedKey(editable, 'windows', `${NEW_KEY}-next`, HOUR, NOW)
  saveConfig(editable)
  const written = readFileSync(editable.file, 'utf8')
  assert.equal(written.split('\r\n').some(line => line.includes('\n')), false, 'no bare LF line end')
  const key = parseConfig(written, 'x').auth.keys.find(k => k.name === 'windows')
  assert.deepEqual([key?.limits.concurrent, key?.limits.tokensPerDay, key?.caps.numCtx, key?.weight], [2, 1000, 4096, 2])
})
