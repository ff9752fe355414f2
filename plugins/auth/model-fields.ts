import { modelAllowed, type ModelPattern } from './model-names.js'

/** Where a route's body or path names its model(s); see the route table's `model` column. */
export type ModelField = 'body' | 'copy' | 'create' | 'param' | 'multipart'

export function modelsNamed (field: ModelField | undefined, body: unknown, params: unknown): string[] {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
  const text = (value: unknown) => typeof value === 'string' && value !== '' ? [value] : []
  switch (field) {
    case 'body': return text(fields.model).length > 0 ? text(fields.model) : text(fields.name)
    case 'copy': return [...text(fields.source), ...text(fields.destination)]
    // A model made `from` another one must not launder a model the key may not use.
    case 'create': return [...(text(fields.model).length > 0 ? text(fields.model) : text(fields.name)), ...text(fields.from)]
    case 'param': return text((params as Record<string, unknown> | undefined)?.model)
    // Every value named `model` in the form and query, Ollama's pick first (plugins/http/body.ts MultipartBody).
    case 'multipart': return (Array.isArray(fields.formModels) ? fields.formModels : []).flatMap(text)
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
