import { PASSTHROUGH_MODEL } from '../http/json-body.js'
import { modelAllowed, type ModelPattern, type NameReading } from './model-names.js'

/**
 * Where a route's body or path names its model(s), and so how Ollama reads the name
 * (plugins/auth/model-names.ts `NameReading`); the route table's `modelAt` column:
 * - `body`: `model`, else `name`, read as a request (inference, show: server/routes.go), and on
 *   the /v1 routes also the exact key `model` that Ollama's cloud passthrough reads;
 * - `pull`: `model`, else `name`, read as pull does (PullHandler, DeleteHandler);
 * - `push`: `model`, else `name`, taken literally (PushHandler);
 * - `create`: `model`, else `name`, literally, plus `from` read as a request (server/create.go);
 * - `copy`: `source` and `destination`, literally (CopyHandler);
 * - `param`: the `:model` path parameter, read as a request (/v1/models/:model);
 * - `multipart`: every value named `model` in the query and the form, Ollama's pick first, read
 *   as a request (middleware/openai.go TranscriptionMiddleware; plugins/http/body.ts MultipartView).
 */
export type ModelLocation = 'body' | 'pull' | 'push' | 'copy' | 'create' | 'param' | 'multipart'

/** One model a request acts on, with the reading Ollama gives its name on that route. */
export interface NamedModel { name: string, reading: NameReading }

/**
 * The models a request acts on, empty names dropped. `body` is the Go view of the body
 * (plugins/http/go-json.ts), so it holds `name` only where Ollama's struct has that field, and
 * `model || name` is the handler's `cmp.Or(req.Model, req.Name)` (server/routes.go, create.go).
 */
export function modelsNamed (location: ModelLocation | undefined, body: unknown, params: unknown): NamedModel[] {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
  const named = (value: unknown, reading: NameReading): NamedModel[] => typeof value === 'string' && value !== '' ? [{ name: value, reading }] : []
  const modelOrName = (reading: NameReading) => {
    const model = named(fields.model, reading)
    return model.length > 0 ? model : named(fields.name, reading)
  }
  switch (location) {
    // On the /v1 routes Ollama's cloud passthrough reads the exact key `model` first (json-body.ts).
    case 'body': return [...modelOrName('request'), ...named((fields as Record<symbol, unknown>)[PASSTHROUGH_MODEL], 'request')]
    case 'pull': return modelOrName('pull')
    case 'push': return modelOrName('literal')
    case 'copy': return [...named(fields.source, 'literal'), ...named(fields.destination, 'literal')]
    // A model made `from` another one must not launder a model the key may not use.
    case 'create': return [...modelOrName('literal'), ...named(fields.from, 'request')]
    case 'param': return named((params as Record<string, unknown> | undefined)?.model, 'request')
    case 'multipart': return (Array.isArray(fields.formModels) ? fields.formModels : []).flatMap(value => named(value, 'request'))
    default: return []
  }
}

/**
 * The host a created model would run on instead of this Ollama (api.CreateRequest `remote_host`;
 * server/create.go forwards every request of such a model there, signed as the server owner when
 * it is ollama.com), or undefined. `body` is the Go view of a create body.
 */
export function remoteHostNamed (location: ModelLocation | undefined, body: unknown): string | undefined {
  if (location !== 'create' || typeof body !== 'object' || body === null) return undefined
  const host = (body as Record<string, unknown>).remote_host
  return typeof host === 'string' && host !== '' ? host : undefined
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
