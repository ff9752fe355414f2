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

/** Where a route's body or path names its model(s); see the route table's `model` column. */
export type ModelField = 'body' | 'copy' | 'create' | 'param'

export function modelsNamed (field: ModelField | undefined, body: unknown, params: unknown): string[] {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
  const text = (value: unknown) => typeof value === 'string' && value !== '' ? [value] : []
  switch (field) {
    case 'body': return text(fields.model).length > 0 ? text(fields.model) : text(fields.name)
    case 'copy': return [...text(fields.source), ...text(fields.destination)]
    // A model made `from` another one must not launder a model the key may not use.
    case 'create': return [...(text(fields.model).length > 0 ? text(fields.model) : text(fields.name)), ...text(fields.from)]
    case 'param': return text((params as Record<string, unknown> | undefined)?.model)
    default: return []
  }
}

export type Listing = 'tags' | 'ps' | 'openai-models'

/** Drops the models a key may not see from a listing answer of Ollama's. */
export function filterListing (kind: Listing, document: unknown, patterns: readonly ModelPattern[]): unknown {
  if (typeof document !== 'object' || document === null) return document
  if (kind === 'openai-models') {
    const list = document as { data?: Array<{ id?: string }> | null }
    if (!Array.isArray(list.data)) return document
    return { ...list, data: list.data.filter(m => typeof m.id === 'string' && modelAllowed(patterns, m.id)) }
  }
  const list = document as { models?: Array<{ name?: string, model?: string }> | null }
  if (!Array.isArray(list.models)) return document
  return { ...list, models: list.models.filter(m => modelAllowed(patterns, m.name ?? m.model ?? '')) }
}
