import assert from 'node:assert/strict'
import { test } from 'node:test'
import { compilePattern, modelAllowed, type NameReading, normaliseModel, readModelName } from '../plugins/auth/model-names.js'
import { filterListing, modelsNamed, type ModelLocation } from '../plugins/auth/model-fields.js'
import authPlugin from '../plugins/auth/auth.js'
import { authWith, bearer, KEYS, namedKey } from './fixtures/keys.js'
import { testConfig } from './helper.js'
import { pluginHarness, tableRows } from './plugin-harness.js'
import { ollamaReadings } from './ollama-name-readings.js'

test('each reading names exactly the model Ollama resolves (recorded from Ollama\'s parsers)', () => {
  for (const c of ollamaReadings) {
    const label = JSON.stringify(c.in)
    assert.equal(readModelName(c.in, 'literal')?.canonical, c.literal?.toLowerCase(), `literal ${label}`)
    assert.equal(readModelName(c.in, 'pull')?.canonical, c.pull?.toLowerCase(), `pull ${label}`)
    const request = readModelName(c.in, 'request')
    assert.equal(request === undefined, c.request === undefined, `request ${label} valid`)
    if (request === undefined) continue
    assert.equal(request.cloud, c.requestCloud, `request ${label} cloud`)
    // A cloud reference is labelled by the stub name Ollama's pull gives it.
    assert.equal(request.canonical, (c.requestCloud === true ? c.pull : c.request)?.toLowerCase(), `request ${label}`)
  }
})

test('model names normalise the way a request is read', () => {
  const same = ['llama3.2', 'LLAMA3.2', 'llama3.2:latest', 'Llama3.2:LATEST', 'llama3.2:local', ' llama3.2\n', 'library/llama3.2', 'registry.ollama.ai/library/llama3.2:latest', 'REGISTRY.OLLAMA.AI/Library/Llama3.2', 'https://registry.ollama.ai/library/llama3.2']
  for (const name of same) assert.equal(normaliseModel(name), 'registry.ollama.ai/library/llama3.2:latest', name)
  assert.equal(normaliseModel('alice/private'), 'registry.ollama.ai/alice/private:latest')
  assert.equal(normaliseModel('hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M'), 'hf.co/bartowski/qwen3-8b-gguf:q4_k_m')
  assert.equal(normaliseModel('localhost:5000/team/model:v1'), 'localhost:5000/team/model:v1')
  assert.equal(normaliseModel('llama3.2@x://registry.ollama.ai/library/other'), 'registry.ollama.ai/library/other:latest')
  assert.equal(normaliseModel('gpt-oss:20b:cloud'), 'registry.ollama.ai/library/gpt-oss:20b-cloud')
  assert.equal(normaliseModel('GPT-OSS:20B-Cloud'), 'registry.ollama.ai/library/gpt-oss:20b-cloud')
  assert.notEqual(normaliseModel('llama3.2:cloud'), normaliseModel('llama3.2'))
  assert.equal(normaliseModel('llama3.2@sha256:abc'), 'llama3.2@sha256:abc', 'a name Ollama refuses comes back as sent')
})

/** [allowlist, name, reading (undefined = every reading), allowed]. */
const decisions: Array<[string[], string, NameReading | undefined, boolean]> = [
  // The attack of issue 10: Ollama opens `other`, whatever stands before the scheme.
  [['llama3.2'], 'llama3.2@x://registry.ollama.ai/library/other', undefined, false],
  [['llama3.2*'], 'llama3.2@x://registry.ollama.ai/library/other', 'request', false],
  [['llama3.2*'], 'llama3.2:1b@x://evil.example/library/llama3.2', undefined, false],
  [['other'], 'llama3.2@x://registry.ollama.ai/library/other', undefined, true],
  // Schemes never change the model; hosts (with or without a port) do.
  [['llama3.2'], 'https://registry.ollama.ai/library/llama3.2:latest', undefined, true],
  [['llama3.2'], 'x://registry.ollama.ai/library/llama3.2', undefined, true],
  [['llama3.2'], 'https://evil.example/library/llama3.2', undefined, false],
  [['llama3.2*'], 'registry.ollama.ai:443/library/llama3.2', undefined, false],
  [['llama3.2*'], 'localhost:5000/library/llama3.2', undefined, false],
  [['localhost:5000/team/*'], 'localhost:5000/team/model:v1', undefined, true],
  [['localhost:5000/team/model:v1'], 'LOCALHOST:5000/Team/Model:V1', undefined, true],
  [['*'], 'localhost:5000/model', undefined, false], // namespace `localhost:5000` is invalid for Ollama
  // Digests: Ollama's parser has no `@digest` and refuses the name.
  [['llama3.2*'], 'llama3.2@sha256:abc', undefined, false],
  [['*'], 'llama3.2:latest@sha256:0123', 'request', false],
  [['*'], '@sha256:abc', undefined, false],
  // Case and white space.
  [['llama3.2'], 'LLAMA3.2', undefined, true],
  [['llama3.2'], 'Llama3.2:LATEST', undefined, true],
  [['LLAMA3.2'], 'llama3.2', undefined, true],
  [['llama3.2'], ' llama3.2\u0085', 'request', true],
  [['llama3.2'], '\ufeffllama3.2', undefined, false],
  [['llama3.2'], 'llama3.\u212a', undefined, false],
  // `:local` is the same model on inference routes, a tag of its own where names are literal.
  [['llama3.2'], 'llama3.2:local', 'request', true],
  [['llama3.2'], 'llama3.2:LOCAL', 'pull', true],
  [['llama3.2'], 'llama3.2:local', 'literal', false],
  [['llama3.2'], 'llama3.2:local', undefined, false],
  [['llama3.2', 'llama3.2:*'], 'llama3.2:local', undefined, true],
  [['llama3.2:1b'], 'llama3.2:1b:local', undefined, true],
  [['*'], 'llama3.2:local:local', undefined, false],
  // Cloud variants: only an entry that names them grants them.
  [['llama3.2*'], 'llama3.2:cloud', undefined, false],
  [['*'], 'gpt-oss:20b-cloud', undefined, false],
  [['gpt-oss*'], 'gpt-oss:20b:cloud', 'request', false],
  [['gpt-oss:*'], 'GPT-OSS:20B-Cloud', undefined, false],
  [['gpt-oss:20b-cloud'], 'gpt-oss:20b:cloud', 'request', true],
  [['gpt-oss:20b-cloud'], 'GPT-OSS:20B-Cloud', undefined, true],
  [['gpt-oss:20b:cloud'], 'gpt-oss:20b-cloud', undefined, true],
  [['gpt-oss:20b:cloud'], 'gpt-oss: 20b-cloud', 'request', true],
  [['gpt-oss:20b-cloud'], 'gpt-oss:120b-cloud', undefined, false],
  [['gpt-oss:cloud'], 'gpt-oss:20b-cloud', undefined, false],
  [['gpt-oss:20b-cloud'], 'gpt-oss:20b', undefined, false],
  [['gpt-oss:*-cloud'], 'gpt-oss:120b:cloud', 'request', true],
  [['gpt-oss:*-cloud'], 'gpt-oss:cloud', undefined, false],
  [['*:cloud'], 'qwen3:cloud', undefined, true],
  [['*-cloud'], 'gpt-oss:20b-cloud', undefined, true],
  [['gpt-oss*'], 'qwen3:cloud', undefined, false],
  [['*'], 'gpt-oss:20b:local:cloud', undefined, false],
  // Names that merely contain "cloud" are ordinary models.
  [['my-cloud*'], 'my-cloud-model', undefined, true],
  [['llama3.2*'], 'llama3.2-cloud', undefined, true],
  // Plain entries mean their latest tag; globs match any spelling of the canonical name.
  [['nomic-embed-text'], 'nomic-embed-text:v1.5', undefined, false],
  [['alice/*'], 'alice/x:7b', undefined, true],
  [['alice/*'], 'registry.ollama.ai/alice/x:7b', undefined, true],
  [['alice/*'], 'evil.example/alice/x:7b', undefined, false],
  [['llama3.2*'], 'evil/llama3.2', undefined, false],
  [['*/llama3.2:latest'], 'hf.co/evil/llama3.2', undefined, true], // `*` is any run, `/` included
  [['library/*'], 'hf.co/library/llama3.2', undefined, false]
]

test('allowlist decisions over canonical names (table)', () => {
  for (const [list, name, reading, allowed] of decisions) {
    const label = `${JSON.stringify(list)} ${JSON.stringify(name)} ${reading ?? 'every reading'}`
    assert.equal(modelAllowed(list.map(compilePattern), name, reading), allowed, label)
  }
})

test('each route reads its model names the way its Ollama handler does (table)', () => {
  const allow = ['llama3.2'].map(compilePattern)
  const cases: Array<{ field: ModelLocation, body: Record<string, unknown>, allowed: boolean }> = [
    // Inference strips `:local` (request reading); copy, push and create's name keep it as a tag.
    { field: 'body', body: { model: 'llama3.2:local' }, allowed: true },
    { field: 'copy', body: { source: 'llama3.2:local', destination: 'llama3.2' }, allowed: false },
    { field: 'push', body: { model: 'llama3.2:local' }, allowed: false },
    { field: 'create', body: { model: 'llama3.2:local' }, allowed: false },
    { field: 'create', body: { model: 'llama3.2', from: 'llama3.2:local' }, allowed: true },
    { field: 'pull', body: { name: 'llama3.2' }, allowed: true },
    { field: 'pull', body: { model: 'llama3.2:cloud' }, allowed: false },
    { field: 'body', body: { model: '', name: 'other' }, allowed: false }
  ]
  for (const { field, body, allowed } of cases) {
    const names = modelsNamed(field, body, undefined)
    assert.ok(names.length > 0, `${field} ${JSON.stringify(body)} names a model`)
    assert.equal(names.every(n => modelAllowed(allow, n.name, n.reading)), allowed, `${field} ${JSON.stringify(body)}`)
  }
})

test('an allowlist entry Ollama could never accept as a name is a config error', () => {
  for (const entry of ['llama3.2@sha256:abc', 'foo:cloud:local', 'a/b/c/d', 'bad name']) {
    assert.throws(() => compilePattern(entry), /not a model name Ollama accepts/, entry)
  }
  assert.doesNotThrow(() => compilePattern('llama3.2@*'), 'globs are not names')
  // The loader refuses it, so start, reload and the keys CLI give the same one line.
  assert.throws(() => testConfig('http://127.0.0.1:1', { auth: { keys: [namedKey('app', ['generate'], { models: ['llama3.2@latest'] })] } }),
    /test-config\.yaml: auth\.keys\.0\.models\.0: allowlist entry "llama3.2@latest" is not a model name Ollama accepts/)
})

test('listings keep only allowed models, read as the literal names Ollama lists', () => {
  const list = [compilePattern('llama3.2*')]
  const tags = { models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest' }, { name: 'qwen3:8b', model: 'qwen3:8b' }, { name: 'llama3.2:cloud', model: 'llama3.2:cloud' }] }
  assert.deepEqual(filterListing('tags', tags, list), { models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest' }] })
  const openai = { object: 'list', data: [{ id: 'llama3.2:latest' }, { id: 'qwen3:8b' }, { id: 'llama3.2:20b-cloud' }] }
  assert.deepEqual(filterListing('openai-models', openai, list), { object: 'list', data: [{ id: 'llama3.2:latest' }] })
  assert.deepEqual(filterListing('openai-models', { object: 'list', data: null }, list), { object: 'list', data: null })
  const local = { models: [{ name: 'llama3.2:local' }] }
  assert.deepEqual(filterListing('tags', local, [compilePattern('llama3.2')]), { models: [] }, 'a model tagged `local` is not llama3.2:latest')
})

test('through the key and policy stages: names Ollama reads as another model are refused before Ollama sees them', async (t) => {
  const harness = await pluginHarness(t, {
    plugins: [authPlugin],
    routes: tableRows('POST /api/chat'),
    config: authWith([namedKey('app', ['generate', 'models:read'], { models: ['llama3.2', 'gpt-oss:20b-cloud'] })], ['generate', 'model'])
  })
  const chat = async (model: string) => await harness.app.inject({
    method: 'POST',
    url: '/api/chat',
    headers: { ...bearer(KEYS.app), 'content-type': 'application/json' },
    payload: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], stream: false })
  })
  for (const model of ['llama3.2@x://registry.ollama.ai/library/other', 'llama3.2@sha256:abc', 'https://evil.example/library/llama3.2', 'llama3.2:cloud', 'gpt-oss:120b-cloud', 'llama3.2:cloud:local']) {
    const before = harness.reached.length
    const response = await chat(model)
    assert.equal(response.statusCode, 403, model)
    assert.match(response.json().error, /may not use the model/)
    assert.equal(harness.reached.length, before, `${model} never reaches Ollama`)
  }
  for (const model of ['LLAMA3.2', 'https://registry.ollama.ai/library/llama3.2:latest', 'gpt-oss:20b:cloud', 'GPT-OSS:20B-Cloud']) {
    const before = harness.reached.length
    const response = await chat(model)
    assert.notEqual(response.statusCode, 403, model)
    assert.equal(harness.reached.length, before + 1, `${model} reaches the route`)
  }
})
