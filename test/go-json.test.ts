import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fieldFor, goStruct, goView, topLevelEntries } from '../plugins/http/go-json.js'
import { parseJsonBody } from '../plugins/http/json-body.js'

// A struct with one field of each kind, as Ollama declares them (api/types.go, openai/openai.go).
const struct = goStruct({ model: 'string', source: 'string', max_tokens: 'int', stream: 'value', input: 'value', messages: 'merging', name: 'string' })

// Each case: the body, and the struct Go's encoding/json v1 fills from it (decode.go). A view
// holds only the struct's fields that the body set; undefined means the decode is refused.
const cases: Array<[string, string, Record<string, unknown> | unknown[] | string | undefined]> = [
  ['exact names', '{"model":"a","name":"b"}', { model: 'a', name: 'b' }],
  ['unknown keys are ignored', '{"model":"a","options":{"x":1},"keep_alive":"5m"}', { model: 'a' }],
  ['case variant', '{"Model":"a"}', { model: 'a' }],
  ['upper case', '{"MODEL":"a"}', { model: 'a' }],
  ['mixed case with underscore', '{"Max_Tokens":5}', { max_tokens: 5 }],
  ['an underscore is not folded away', '{"maxtokens":5}', {}],
  ['last case variant wins', '{"model":"allowed","Model":"denied"}', { model: 'denied' }],
  ['last exact duplicate wins', '{"model":"denied","model":"allowed"}', { model: 'allowed' }],
  ['exact then variant then exact', '{"model":"a","MODEL":"b","model":"c"}', { model: 'c' }],
  ['long s folds to s', '{"\u017fource":"x"}', { source: 'x' }],
  ['long s escaped', '{"\\u017fource":"x"}', { source: 'x' }],
  ['Kelvin sign folds to k', '{"max_to\u212aens":7}', { max_tokens: 7 }],
  ['Kelvin sign escaped, upper case rest', '{"MAX_TO\\u212aENS":7}', { max_tokens: 7 }],
  ['dotless i does not fold to i (no simple fold)', '{"\u0131nput":"x"}', {}],
  ['dotted capital I does not fold to i', '{"\u0130nput":"x"}', {}],
  ['escaped ASCII key is the same key', '{"mod\\u0065l":"a"}', { model: 'a' }],
  ['null keeps a string field', '{"model":"allowed","model":null}', { model: 'allowed' }],
  ['null keeps a string field after a variant', '{"model":"a","MODEL":null}', { model: 'a' }],
  ['null alone leaves a string field at its zero value', '{"model":null}', {}],
  ['null keeps an int field', '{"max_tokens":3,"max_tokens":null}', { max_tokens: 3 }],
  ['null clears a pointer field', '{"stream":false,"stream":null}', {}],
  ['null clears an interface field', '{"input":"x","Input":null}', {}],
  ['a pointer field takes the last value', '{"stream":false,"Stream":true}', { stream: true }],
  ['null clears a slice field', '{"messages":[{"role":"user"}],"messages":null}', {}],
  ['a slice field after null is fresh', '{"messages":[{"role":"a"}],"messages":null,"messages":[{"role":"b"}]}', { messages: [{ role: 'b' }] }],
  ['a second slice would merge in Go: refused', '{"messages":[{"role":"a"}],"Messages":[{"role":"b"}]}', undefined],
  ['a wrong type in a string field sticks (Go fails the decode)', '{"model":5,"model":"a"}', { model: 5 }],
  ['a fraction in an int field sticks', '{"max_tokens":1.5}', { max_tokens: '1.5' }],
  ['an exponent in an int field sticks', '{"max_tokens":1e2,"max_tokens":3}', { max_tokens: '1e2' }],
  ['an int beyond int64 sticks', '{"max_tokens":9223372036854775808}', { max_tokens: '9223372036854775808' }],
  ['the largest int64 is an int', '{"max_tokens":9223372036854775807}', { max_tokens: 2 ** 63 }],
  ['nested objects are untouched', '{"model":"a","options":{"Model":"b"},"messages":[{"Role":"user","role":null}]}', { model: 'a', messages: [{ Role: 'user', role: null }] }],
  ['nested duplicate keys are JSON.parse\'s concern', '{"input":{"a":1,"a":2}}', { input: { a: 2 } }],
  ['a lone surrogate escape in a value becomes U+FFFD', '{"model":"a\\ud800b"}', { model: 'a\ufffdb' }],
  ['a valid surrogate pair is kept', '{"model":"\\ud83d\\ude00"}', { model: '\u{1f600}' }],
  ['a lone surrogate in a key matches nothing', '{"model\\udc00":"x","model":"a"}', { model: 'a' }],
  ['whitespace everywhere', ' \n{ "model" :\t"a" ,\r\n "Name" : "b" } ', { model: 'a', name: 'b' }],
  ['strings holding quotes, braces and escapes', '{"input":"}\\"{,","model":"a\\\\"}', { input: '}"{,', model: 'a\\' }],
  ['top-level null is the zero struct', 'null', {}],
  ['a top-level array is left for the schema to refuse', '[{"model":"a"}]', [{ model: 'a' }]],
  ['a top-level string is left for the schema to refuse', '"model"', 'model']
]

test('Go view of a body: table from encoding/json v1 rules', () => {
  for (const [label, body, expected] of cases) {
    const parsed = parseJsonBody(Buffer.from(body), struct)
    if (expected === undefined) {
      assert.equal(parsed.ok, false, label)
      if (!parsed.ok) assert.match(parsed.message, /messages/, label)
      continue
    }
    assert.ok(parsed.ok, `${label}: ${parsed.ok ? '' : parsed.message}`)
    assert.deepEqual(parsed.value, expected, label)
  }
})

test('exact name first, then the first declared field equal under folding (encode.go typeFields)', () => {
  const clash = goStruct({ k: 'string', K: 'string' })
  const table: Array<[string, string | undefined]> = [['k', 'k'], ['K', 'K'], ['\u212a', 'k'], ['x', undefined]]
  for (const [key, field] of table) assert.equal(fieldFor(key, clash), field, key)
  const view = goView('{"K":"u","\u212a":"kelvin"}', JSON.parse('{"K":"u","\u212a":"kelvin"}'), clash)
  assert.deepEqual(view, { ok: true, view: { K: 'u', k: 'kelvin' } })
  assert.throws(() => goStruct({ ſource: 'string' }), /ASCII/)
})

test('the top-level scanner sees every key in order with its value span', () => {
  const text = '{"a":{"x":[1,"]"]},"b":"s\\"}","a":null , "c":-1.5e3,"d":true}'
  const spans = topLevelEntries(text).map(e => [e.key, text.slice(e.valueStart, e.valueEnd)])
  assert.deepEqual(spans, [['a', '{"x":[1,"]"]}'], ['b', '"s\\"}"'], ['a', 'null'], ['c', '-1.5e3'], ['d', 'true']])
})

test('a route without a struct reads nothing from an object body', () => {
  assert.deepEqual(parseJsonBody(Buffer.from('{"model":"x"}')), { ok: true, value: {} })
})

/** Small deterministic generator (mulberry32) so the scanner sees many spellings of valid JSON. */
function random (seed: number): () => number {
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('the scanner agrees with JSON.parse on every key and value, whatever the spelling', () => {
  const next = random(20261130)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]
  const space = () => pick(['', ' ', '\n', '\t ', '\r\n  '])
  const keys = ['model', 'Model', 'mod\\u0065l', 'a\\"b', '\\\\', '{', '}', '', '\u017fource', 'k\\ud800']
  const values = ['null', 'true', '-0.5e-3', '12', '"x"', '"}\\"]"', '[]', '{}', '[{"a":[1,{"b":"]"}]},null]', '{"model":{"model":"y"}}', '"\\\\"']
  for (let round = 0; round < 500; round++) {
    const pairs = Array.from({ length: Math.floor(next() * 6) }, () => [pick(keys), pick(values)] as const)
    const text = space() + '{' + pairs.map(([k, v]) => `${space()}"${k}"${space()}:${space()}${v}${space()}`).join(',') + '}' + space()
    JSON.parse(text) // the generator only writes valid JSON
    const entries = topLevelEntries(text)
    assert.equal(entries.length, pairs.length, text)
    entries.forEach((entry, i) => {
      assert.equal(entry.key, JSON.parse(`"${pairs[i][0]}"`), text)
      assert.deepEqual(JSON.parse(text.slice(entry.valueStart, entry.valueEnd)), JSON.parse(pairs[i][1]), text)
    })
  }
})
