import type { TSchema } from 'typebox'
import type { GoStruct } from '../plugins/http/go-json.js'
import type { Access } from '../plugins/auth/keys.js'
import type { Listing, ModelField } from '../plugins/auth/model-fields.js'
import { params, schemas, structs } from './schemas.js'

export type Method = 'GET' | 'HEAD' | 'POST' | 'DELETE'

/**
 * One row per route the proxy serves. Adding a route Ollama ships later is one line here;
 * README's route table is checked against this list by test/route-table.test.ts.
 */
export interface RouteSpec {
  method: Method
  path: string
  /** Ollama path this route forwards to; `:param`s are filled from the validated params. */
  upstream: string
  access: Access
  /** 'json': parsed, validated, original bytes forwarded; 'raw': streamed untouched; 'none': no body. */
  body: 'json' | 'raw' | 'none'
  schema?: TSchema
  /** JSON bodies: the fields of the Go struct Ollama decodes the body into; the proxy reads that view. */
  reads?: GoStruct
  params?: TSchema
  /** How Ollama answers: NDJSON stream, SSE when the client asks for it, or one document. */
  answer: 'ndjson' | 'sse' | 'json'
  /** Where the request names its model(s): for logs, allowlists and routing. */
  model?: ModelField
  /** Content-Encodings Ollama's handler decodes (middleware/openai.go, server/cloud_proxy.go); others get 415. */
  decodes?: readonly string[]
  /** Model listings that are filtered per key. */
  listing?: Listing
}

type Row = Omit<RouteSpec, 'upstream' | 'answer'> & { upstream?: string, answer?: RouteSpec['answer'] }

const row = (spec: Row): RouteSpec => ({ upstream: spec.path, answer: 'json', ...spec })

/** Ollama decodes `Content-Encoding: zstd` on the /v1 routes behind cloudPassthroughMiddleware. */
const zstd = ['zstd'] as const

const ollamaRoutes: RouteSpec[] = [
  row({ method: 'GET', path: '/', access: 'public', body: 'none' }),
  row({ method: 'HEAD', path: '/', access: 'public', body: 'none' }),

  // Read-only model information: clients read it before they chat, so `generate` and
  // `models:admin` keys hold `models:read` too (plugins/auth/keys.ts); listings are filtered.
  row({ method: 'GET', path: '/api/version', access: 'models:read', body: 'none' }),
  row({ method: 'HEAD', path: '/api/version', access: 'models:read', body: 'none' }),
  row({ method: 'GET', path: '/api/status', access: 'models:read', body: 'none' }),
  row({ method: 'GET', path: '/api/tags', access: 'models:read', body: 'none', listing: 'tags' }),
  row({ method: 'HEAD', path: '/api/tags', access: 'models:read', body: 'none' }),
  row({ method: 'GET', path: '/api/ps', access: 'models:read', body: 'none', listing: 'ps' }),
  row({ method: 'POST', path: '/api/show', access: 'models:read', body: 'json', schema: schemas.modelAction, reads: structs.show, model: 'body' }),

  // Inference, native.
  row({ method: 'POST', path: '/api/chat', access: 'generate', body: 'json', schema: schemas.chat, reads: structs.chat, answer: 'ndjson', model: 'body' }),
  row({ method: 'POST', path: '/api/generate', access: 'generate', body: 'json', schema: schemas.generate, reads: structs.generate, answer: 'ndjson', model: 'body' }),
  row({ method: 'POST', path: '/api/embed', access: 'generate', body: 'json', schema: schemas.embed, reads: structs.embed, model: 'body' }),
  row({ method: 'POST', path: '/api/embeddings', access: 'generate', body: 'json', schema: schemas.embeddings, reads: structs.embeddings, model: 'body' }),

  // Inference, OpenAI- and Anthropic-compatible.
  row({ method: 'POST', path: '/v1/chat/completions', access: 'generate', body: 'json', decodes: zstd, schema: schemas.openAiChat, reads: structs.openAiChat, answer: 'sse', model: 'body' }),
  row({ method: 'POST', path: '/v1/completions', access: 'generate', body: 'json', decodes: zstd, schema: schemas.openAiCompletion, reads: structs.openAiCompletion, answer: 'sse', model: 'body' }),
  row({ method: 'POST', path: '/v1/embeddings', access: 'generate', body: 'json', decodes: zstd, schema: schemas.openAiEmbeddings, reads: structs.openAiEmbeddings, model: 'body' }),
  row({ method: 'POST', path: '/v1/responses', access: 'generate', body: 'json', decodes: zstd, schema: schemas.openAiResponses, reads: structs.openAiResponses, answer: 'sse', model: 'body' }),
  row({ method: 'GET', path: '/v1/models', access: 'models:read', body: 'none', listing: 'openai-models' }),
  row({ method: 'GET', path: '/v1/models/:model', access: 'models:read', body: 'none', params: params.model, model: 'param' }),
  row({ method: 'POST', path: '/v1/audio/transcriptions', access: 'generate', body: 'raw', model: 'multipart' }),
  row({ method: 'POST', path: '/v1/messages', access: 'generate', body: 'json', decodes: zstd, schema: schemas.anthropicMessages, reads: structs.anthropicMessages, answer: 'sse', model: 'body' }),

  // Model administration.
  row({ method: 'POST', path: '/api/pull', access: 'models:admin', body: 'json', schema: schemas.modelAction, reads: structs.pullOrPush, answer: 'ndjson', model: 'pull' }),
  row({ method: 'POST', path: '/api/push', access: 'models:admin', body: 'json', schema: schemas.modelAction, reads: structs.pullOrPush, answer: 'ndjson', model: 'push' }),
  row({ method: 'POST', path: '/api/create', access: 'models:admin', body: 'json', schema: schemas.create, reads: structs.create, answer: 'ndjson', model: 'create' }),
  row({ method: 'POST', path: '/api/copy', access: 'models:admin', body: 'json', schema: schemas.copy, reads: structs.copy, model: 'copy' }),
  row({ method: 'DELETE', path: '/api/delete', access: 'models:admin', body: 'json', schema: schemas.modelAction, reads: structs.delete, model: 'pull' }),
  row({ method: 'HEAD', path: '/api/blobs/:digest', access: 'models:admin', body: 'none', params: params.digest }),
  row({ method: 'POST', path: '/api/blobs/:digest', access: 'models:admin', body: 'raw', params: params.digest }),

  // They act as the server owner's ollama.com account.
  row({ method: 'POST', path: '/api/me', access: 'models:admin', body: 'json', reads: structs.none }),
  row({ method: 'POST', path: '/api/signout', access: 'models:admin', body: 'json', reads: structs.none }),
  row({ method: 'DELETE', path: '/api/user/keys/:key', access: 'models:admin', body: 'json', params: params.key, reads: structs.none }),
  row({ method: 'POST', path: '/api/experimental/web_search', access: 'models:admin', body: 'json', reads: structs.none }),
  row({ method: 'POST', path: '/api/experimental/web_fetch', access: 'models:admin', body: 'json', reads: structs.none }),
  row({ method: 'GET', path: '/api/experimental/model-recommendations', access: 'models:admin', body: 'none' })
]

/** The seed's `/sys/*` names: every model route of Ollama under /sys, all for model-admin keys. */
const sysAliases: RouteSpec[] = ollamaRoutes
  .filter(r => r.path.startsWith('/api/') && (r.access === 'models:admin' || r.access === 'models:read'))
  .map(r => ({ ...r, path: '/sys/' + r.path.slice('/api/'.length), upstream: r.upstream, access: 'models:admin' as const }))

export const routeTable: readonly RouteSpec[] = [...ollamaRoutes, ...sysAliases]

/** Fills `:param` segments of an upstream path from already validated params. */
export function upstreamPathFor (spec: RouteSpec, values: Record<string, string> | undefined): string {
  if (values === undefined || !spec.upstream.includes(':')) return spec.upstream
  // ':' stays literal: Ollama's digests are "sha256:<hex>" and the params were validated already.
  return spec.upstream.replace(/:([A-Za-z]+)/g, (_, name: string) => encodeURIComponent(values[name] ?? '').replaceAll('%3A', ':'))
}
