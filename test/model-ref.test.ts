import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  goTrimSpace, hasExplicitTag, isValidName, isValidPart, type NameParts, normalizePullName, parseName, parseNameBare, parseRef
} from '../plugins/auth/model-ref.js'
import * as V from './ollama-name-vectors.js'

/** Name.String(): the parts that are set, joined as host/namespace/model:tag. */
function nameString (n: NameParts): string {
  return `${n.host !== '' ? n.host + '/' : ''}${n.namespace !== '' ? n.namespace + '/' : ''}${n.model}${n.tag !== '' ? ':' + n.tag : ''}`
}

test('ParseNameBare splits names into Ollama\'s parts (TestParseNameParts)', () => {
  for (const c of V.parseNameParts) {
    const want = { host: '', namespace: '', model: '', tag: '', scheme: '', ...c.want }
    assert.deepEqual(parseNameBare(c.in), want, c.in)
    const full = parseName(c.in)
    assert.equal(`${full.host}/${full.namespace}/${full.model}/${full.tag}`, c.filepath, c.in)
  }
  const d = parseName(V.parseNameDefault.in)
  assert.equal(nameString(d), V.parseNameDefault.want)
})

test('IsValid on bare names, and valid names print back unchanged (TestNameIsValid)', () => {
  let printed = 0
  for (const [name, want] of Object.entries(V.bareNameValid)) {
    const parts = parseNameBare(name)
    assert.equal(isValidName(parts), want, JSON.stringify(name))
    if (want) {
      assert.equal(nameString(parts), name)
      printed++
    }
  }
  assert.ok(printed > 0)
})

test('isValidPart per kind (TestNameIsValidPart, TestIsValidNamespace)', () => {
  for (const c of V.validParts) assert.equal(isValidPart(c.kind, c.s), c.want, `${c.kind} ${JSON.stringify(c.s)}`)
})

test('ParseRef strips one source suffix (TestParseRef, TestParseSourceSuffix)', () => {
  for (const c of V.parseRefCases) {
    const got = parseRef(c.in)
    if (c.error !== undefined) {
      assert.deepEqual(got, { error: c.error }, c.in)
      continue
    }
    assert.deepEqual(got, { base: c.base, source: c.source }, c.in)
    if (c.stripped !== undefined) {
      // StripCloudSourceTag: the base for a cloud reference, else the trimmed input.
      const stripped = 'error' in got || got.source !== 'cloud' ? goTrimSpace(c.in) : got.base
      assert.equal(stripped, c.stripped, c.in)
    }
  }
})

test('NormalizePullName and HasExplicitTag (TestNormalizePullName, TestHasExplicitTag)', () => {
  for (const c of V.normalizePullCases) {
    const want = c.error !== undefined ? { error: c.error } : { name: c.name, cloud: c.cloud }
    assert.deepEqual(normalizePullName(c.in), want, c.in)
  }
  for (const [name, want] of Object.entries(V.explicitTagCases)) assert.equal(hasExplicitTag(name), want, name)
})

test('the server\'s two resolvers (TestParseModelSelector, TestParsePullModelRef)', () => {
  for (const c of V.resolverCases) {
    const ref = parseRef(c.in)
    let resolved: { name: NameParts, cloud: boolean } | undefined
    if (!('error' in ref)) {
      const pulled = normalizePullName(c.in)
      const text = c.reading === 'request' ? ref.base : 'error' in pulled ? undefined : pulled.name
      const name = text === undefined ? undefined : parseName(text)
      if (name !== undefined && isValidName(name)) resolved = { name, cloud: ref.source === 'cloud' }
    }
    const label = `${c.reading} ${JSON.stringify(c.in)}`
    if (c.name === undefined && c.tag === undefined) {
      assert.equal(resolved, undefined, label)
      continue
    }
    assert.ok(resolved !== undefined, label)
    if (c.name !== undefined) assert.equal(nameString(resolved.name), c.name, label)
    if (c.tag !== undefined) assert.equal(resolved.name.tag, c.tag, label)
    assert.equal(resolved.cloud, c.cloud, label)
  }
})

test('Go\'s TrimSpace, not JavaScript\'s trim: U+0085 is space, U+FEFF is not', () => {
  assert.equal(goTrimSpace('\u0085\t llama3.2 \u3000\u2028'), 'llama3.2')
  assert.equal(goTrimSpace('\ufeffllama3.2'), '\ufeffllama3.2')
  assert.deepEqual(parseRef(' \u00a0qwen3:8b:local\u0085'), { base: 'qwen3:8b', source: 'local' })
})
