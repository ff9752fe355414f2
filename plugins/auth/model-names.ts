/**
 * Model names the way Ollama reads them (types/model/name.go): case-insensitive, default host
 * registry.ollama.ai, namespace library, tag latest; a ":local" suffix names the same model.
 * So `LLAMA3.2`, `llama3.2:local` and `registry.ollama.ai/library/llama3.2:latest` are one model.
 * Cloud variants (`:cloud`, `:120b-cloud`) are tags of their own: they run on ollama.com under the
 * server owner's account, so an allowlist must name them to grant them.
 */
const DEFAULT_HOST = 'registry.ollama.ai'
const DEFAULT_NAMESPACE = 'library'
const DEFAULT_TAG = 'latest'

interface ModelName { host: string, namespace: string, model: string, tag: string }

function parseModelName (raw: string): ModelName {
  let name = raw.trim().toLowerCase()
  const digestAt = name.indexOf('@')
  if (digestAt >= 0) name = name.slice(0, digestAt)
  let tag = DEFAULT_TAG
  const lastSlash = name.lastIndexOf('/')
  const colon = name.lastIndexOf(':')
  if (colon > lastSlash) {
    tag = name.slice(colon + 1) || DEFAULT_TAG
    name = name.slice(0, colon)
  }
  if (tag === 'local') tag = DEFAULT_TAG
  const parts = name.split('/')
  const model = parts.pop() ?? ''
  const namespace = parts.pop() ?? DEFAULT_NAMESPACE
  const host = parts.length > 0 ? parts.join('/') : DEFAULT_HOST
  return { host, namespace, model, tag }
}

/** The canonical full name: `registry.ollama.ai/library/llama3.2:latest`. */
export function normaliseModel (raw: string): string {
  const { host, namespace, model, tag } = parseModelName(raw)
  return `${host}/${namespace}/${model}:${tag}`
}

/** The forms a person writes for one model, shortest first; patterns are matched against each. */
function spellings (raw: string): string[] {
  const { host, namespace, model, tag } = parseModelName(raw)
  const full = `${host}/${namespace}/${model}:${tag}`
  const forms = [full]
  if (host === DEFAULT_HOST) forms.unshift(`${namespace}/${model}:${tag}`)
  if (host === DEFAULT_HOST && namespace === DEFAULT_NAMESPACE) forms.unshift(`${model}:${tag}`)
  return forms
}

export type ModelPattern = RegExp

/**
 * An allowlist entry: a name (`nomic-embed-text` means its `latest` tag) or a glob where `*` is
 * any run of characters and `?` one character (`llama3.2*` takes every llama3.2 tag and variant).
 */
export function compilePattern (pattern: string): ModelPattern {
  const lower = pattern.trim().toLowerCase()
  if (!/[*?]/.test(lower)) return new RegExp(`^${escape(normaliseModel(lower))}$`)
  const body = lower.split('').map(c => c === '*' ? '.*' : c === '?' ? '.' : escape(c)).join('')
  return new RegExp(`^${body}$`)
}

function escape (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

export function modelAllowed (patterns: readonly ModelPattern[], model: string): boolean {
  const forms = spellings(model)
  return patterns.some(pattern => forms.some(form => pattern.test(form)))
}
