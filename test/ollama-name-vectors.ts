/**
 * Ollama's own test vectors for model names, transcribed as data from the referenced commit:
 * types/model/name_test.go, internal/modelref/modelref_test.go, server/model_resolver_test.go.
 * Each table names the Go test it comes from.
 */

const part80 = '8'.repeat(80)
const part350 = '3'.repeat(350)

interface Parts { host?: string, namespace?: string, model?: string, tag?: string, scheme?: string }

/** TestParseNameParts: ParseNameBare's parts, and ParseName's filepath (host/namespace/model/tag). */
export const parseNameParts: Array<{ in: string, want: Parts, filepath: string }> = [
  { in: 'registry.ollama.ai/library/dolphin-mistral:7b-v2.6-dpo-laser-q6_K', want: { host: 'registry.ollama.ai', namespace: 'library', model: 'dolphin-mistral', tag: '7b-v2.6-dpo-laser-q6_K' }, filepath: 'registry.ollama.ai/library/dolphin-mistral/7b-v2.6-dpo-laser-q6_K' },
  { in: 'scheme://host:port/namespace/model:tag', want: { host: 'host:port', namespace: 'namespace', model: 'model', tag: 'tag', scheme: 'scheme' }, filepath: 'host:port/namespace/model/tag' },
  { in: 'host/namespace/model:tag', want: { host: 'host', namespace: 'namespace', model: 'model', tag: 'tag' }, filepath: 'host/namespace/model/tag' },
  { in: 'host:port/namespace/model:tag', want: { host: 'host:port', namespace: 'namespace', model: 'model', tag: 'tag' }, filepath: 'host:port/namespace/model/tag' },
  { in: 'host/namespace/model', want: { host: 'host', namespace: 'namespace', model: 'model' }, filepath: 'host/namespace/model/latest' },
  { in: 'host:port/namespace/model', want: { host: 'host:port', namespace: 'namespace', model: 'model' }, filepath: 'host:port/namespace/model/latest' },
  { in: 'namespace/model', want: { namespace: 'namespace', model: 'model' }, filepath: 'registry.ollama.ai/namespace/model/latest' },
  { in: 'model', want: { model: 'model' }, filepath: 'registry.ollama.ai/library/model/latest' },
  { in: 'h/nn/mm:t', want: { host: 'h', namespace: 'nn', model: 'mm', tag: 't' }, filepath: 'h/nn/mm/t' },
  { in: `${part80}/${part80}/${part80}:${part80}`, want: { host: part80, namespace: part80, model: part80, tag: part80 }, filepath: `${part80}/${part80}/${part80}/${part80}` },
  { in: `${part350}/${part80}/${part80}:${part80}`, want: { host: part350, namespace: part80, model: part80, tag: part80 }, filepath: `${part350}/${part80}/${part80}/${part80}` }
]

/** testCases (TestNameIsValid): ParseNameBare(name).IsValid(); valid ones print back unchanged. */
export const bareNameValid: Record<string, boolean> = {
  '': false,
  '_why/_the/_lucky:_stiff': true,
  'h/n/m:t': true,
  'host/namespace/model:tag': true,
  'host/namespace/model': false,
  'namespace/model': false,
  model: false,
  [`${part80}/${part80}/${part80}:${part80}`]: true,
  [`${part350}/${part80}/${part80}:${part80}`]: true,
  'h/nn/mm:t': true,
  m: false,
  'n/m:': false,
  'h/n/m': false,
  '@t': false,
  'm@d': false,
  '^': false,
  'mm:': false,
  '/nn/mm': false,
  '//': false,
  '//mm': false,
  'hh//': false,
  '//mm:@': false,
  '00@': false,
  '@': false,
  '-hh/nn/mm:tt': false,
  'hh/-nn/mm:tt': false,
  'hh/nn/-mm:tt': false,
  'hh/nn/mm:-tt': false,
  'host:https/namespace/model:tag': true,
  'host/name:space/model:tag': false
}

/** TestNameparseNameDefault. */
export const parseNameDefault = { in: 'xx', want: 'registry.ollama.ai/library/xx:latest' }

/** TestNameIsValidPart and TestIsValidNamespace (the latter checks the namespace kind). */
export const validParts: Array<{ kind: 'host' | 'namespace' | 'model' | 'tag' | 'digest', s: string, want: boolean }> = [
  { kind: 'host', s: '', want: false },
  { kind: 'host', s: 'a', want: true },
  { kind: 'host', s: 'a.', want: true },
  { kind: 'host', s: 'a.b', want: true },
  { kind: 'host', s: 'a:123', want: true },
  { kind: 'host', s: 'a:123/aa/bb', want: false },
  { kind: 'namespace', s: 'bb', want: true },
  { kind: 'namespace', s: 'a.', want: false },
  { kind: 'model', s: '-h', want: false },
  { kind: 'digest', s: 'sha256-1000000000000000000000000000000000000000000000000000000000000000', want: true },
  ...([
    ['', false], ['a', true], ['a:b', false], ['a/b', false], ['a:b/c', false], ['a/b:c', false],
    ['a/b:c/d', false], ['a/b:c/d@e', false], ['a/b:c/d@sha256-100', false], ['himynameisjoe', true],
    ['himynameisreallyreallyreallyreallylongbutitshouldstillbevalid', true]
  ] as const).map(([s, want]) => ({ kind: 'namespace' as const, s, want }))
]

type Source = 'unspecified' | 'local' | 'cloud'

/**
 * TestParseRef and TestParseSourceSuffix (none of whose inputs nests a second suffix, so
 * ParseRef gives the same base and source). `stripped` is StripCloudSourceTag's answer.
 */
export const parseRefCases: Array<{ in: string, base?: string, source?: Source, error?: string, stripped?: string }> = [
  { in: 'gpt-oss:20b:cloud', base: 'gpt-oss:20b', source: 'cloud', stripped: 'gpt-oss:20b' },
  { in: 'gpt-oss:20b-cloud', base: 'gpt-oss:20b', source: 'cloud', stripped: 'gpt-oss:20b' },
  { in: 'qwen3:8b:local', base: 'qwen3:8b', source: 'local', stripped: 'qwen3:8b:local' },
  { in: 'llama3.2', base: 'llama3.2', source: 'unspecified', stripped: 'llama3.2' },
  { in: 'my-cloud-model', base: 'my-cloud-model', source: 'unspecified', stripped: 'my-cloud-model' },
  { in: 'foo:bar-cloud/baz', base: 'foo:bar-cloud/baz', source: 'unspecified', stripped: 'foo:bar-cloud/baz' },
  { in: 'foo:cloud:local', error: 'use either :local or :cloud, not both' },
  { in: '   ', error: 'model is required' },
  { in: 'gpt-oss:clod', base: 'gpt-oss:clod', source: 'unspecified' },
  { in: 'gpt-oss:20b:CLOUD', base: 'gpt-oss:20b', source: 'cloud' }
]

/** TestNormalizePullName. */
export const normalizePullCases: Array<{ in: string, name?: string, cloud?: boolean, error?: string }> = [
  { in: 'gpt-oss:20b:local', name: 'gpt-oss:20b', cloud: false },
  { in: 'gpt-oss:20b:cloud', name: 'gpt-oss:20b-cloud', cloud: true },
  { in: 'gpt-oss:20b-cloud', name: 'gpt-oss:20b-cloud', cloud: true },
  { in: 'qwen3:cloud', name: 'qwen3:cloud', cloud: true },
  { in: 'localhost:11434/library/foo:cloud', name: 'localhost:11434/library/foo:cloud', cloud: true },
  { in: 'foo:cloud:local', error: 'use either :local or :cloud, not both' }
]

/** TestHasExplicitTag. */
export const explicitTagCases: Record<string, boolean> = {
  'some-model': false,
  'some-model:9b': true,
  'some-model:latest': true,
  'user/some-model': false,
  'user/some-model:9b': true,
  'registry.example.com:5000/some-model': false,
  'registry.example.com:5000/some-model:9b': true
}

/**
 * server/model_resolver_test.go: TestParseModelSelector (parseAndValidateModelRef, Ollama's
 * `request` reading) and TestParsePullModelRef (parseNormalizePullModelRef, the `pull` reading).
 * `name` is the resolved model.Name; undefined means Ollama refuses the reference.
 */
export const resolverCases: Array<{ reading: 'request' | 'pull', in: string, name?: string, tag?: string, cloud?: boolean }> = [
  { reading: 'request', in: 'gpt-oss:20b:cloud', name: 'registry.ollama.ai/library/gpt-oss:20b', cloud: true },
  { reading: 'request', in: 'gpt-oss:20b-cloud', name: 'registry.ollama.ai/library/gpt-oss:20b', cloud: true },
  { reading: 'request', in: 'my-cloud-model', name: 'registry.ollama.ai/library/my-cloud-model:latest', cloud: false },
  { reading: 'request', in: 'qwen3:8b:local', name: 'registry.ollama.ai/library/qwen3:8b', cloud: false },
  { reading: 'request', in: 'foo:cloud:local' },
  { reading: 'request', in: 'llama3', tag: 'latest', cloud: false },
  { reading: 'request', in: 'gpt-oss:clod', tag: 'clod', cloud: false },
  { reading: 'request', in: '' },
  { reading: 'request', in: '::cloud' },
  { reading: 'pull', in: 'gpt-oss:20b:local', name: 'registry.ollama.ai/library/gpt-oss:20b', cloud: false },
  { reading: 'pull', in: 'gpt-oss:20b:cloud', name: 'registry.ollama.ai/library/gpt-oss:20b-cloud', cloud: true },
  { reading: 'pull', in: 'qwen3:cloud', name: 'registry.ollama.ai/library/qwen3:cloud', cloud: true }
]
