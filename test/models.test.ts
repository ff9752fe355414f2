import assert from 'node:assert/strict'
import { test } from 'node:test'
import { compilePattern, modelAllowed, normaliseModel } from '../plugins/auth/model-names.js'
import { filterListing } from '../plugins/auth/model-fields.js'

test('model names normalise the way Ollama reads them', () => {
  const same = ['llama3.2', 'LLAMA3.2', 'llama3.2:latest', 'Llama3.2:LATEST', 'llama3.2:local', 'library/llama3.2', 'registry.ollama.ai/library/llama3.2:latest', 'REGISTRY.OLLAMA.AI/Library/Llama3.2']
  for (const name of same) assert.equal(normaliseModel(name), 'registry.ollama.ai/library/llama3.2:latest', name)
  assert.equal(normaliseModel('alice/private'), 'registry.ollama.ai/alice/private:latest')
  assert.equal(normaliseModel('hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M'), 'hf.co/bartowski/qwen3-8b-gguf:q4_k_m')
  assert.equal(normaliseModel('localhost:5000/team/model:v1'), 'localhost:5000/team/model:v1')
  assert.notEqual(normaliseModel('gpt-oss:120b-cloud'), normaliseModel('gpt-oss:120b'), 'cloud variants are their own tag')
  assert.notEqual(normaliseModel('llama3.2:cloud'), normaliseModel('llama3.2'))
})

test('allowlist patterns: names mean their latest tag, globs match any spelling', () => {
  const list = ['llama3.2*', 'nomic-embed-text', 'alice/*'].map(compilePattern)
  for (const allowed of ['llama3.2', 'LLAMA3.2', 'llama3.2:1b', 'registry.ollama.ai/library/llama3.2:latest', 'llama3.2-vision:11b', 'nomic-embed-text', 'nomic-embed-text:latest', 'NOMIC-EMBED-TEXT:local', 'alice/private', 'alice/x:7b']) {
    assert.ok(modelAllowed(list, allowed), allowed)
  }
  for (const refused of ['qwen3:8b', 'nomic-embed-text:v1.5', 'llama3', 'bob/private', 'evil/llama3.2', 'registry.example.com/library/llama3.2:latest', 'llama3.1']) {
    assert.ok(!modelAllowed(list, refused), refused)
  }
  assert.ok(modelAllowed([compilePattern('gpt-oss:120b-cloud')], 'GPT-OSS:120b-cloud'))
  assert.ok(!modelAllowed([compilePattern('gpt-oss*')], 'qwen3:cloud'))
})

test('listings keep only allowed models', () => {
  const list = [compilePattern('llama3.2*')]
  const tags = { models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest' }, { name: 'qwen3:8b', model: 'qwen3:8b' }] }
  assert.deepEqual(filterListing('tags', tags, list), { models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest' }] })
  const openai = { object: 'list', data: [{ id: 'llama3.2:latest' }, { id: 'qwen3:8b' }] }
  assert.deepEqual(filterListing('openai-models', openai, list), { object: 'list', data: [{ id: 'llama3.2:latest' }] })
  assert.deepEqual(filterListing('openai-models', { object: 'list', data: null }, list), { object: 'list', data: null })
})
