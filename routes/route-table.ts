import { routeSpec, type RouteSpec } from '../plugins/http/route-spec.js'
import { goStructs, params, schemas } from './schemas.js'

export type { RouteSpec } from '../plugins/http/route-spec.js'

/** Ollama decodes `Content-Encoding: zstd` on the /v1 routes behind cloudPassthroughMiddleware. */
const zstd = ['zstd'] as const

/**
 * One row per route of Ollama's the proxy serves. Adding a route Ollama ships later is one line
 * here; README's route table is checked against this list by test/route-table.test.ts.
 */
const ollamaRoutes: RouteSpec[] = [
  // Ollama's liveness answer, given from the proxy's own health checks.
  routeSpec({ method: 'GET', path: '/', access: 'public', body: 'none', work: 'read', hosts: 'proxy' }),
  routeSpec({ method: 'HEAD', path: '/', access: 'public', body: 'none', work: 'read', hosts: 'proxy' }),

  // Read-only model information: clients read it before they chat, so `generate` and
  // `models:admin` keys hold `models:read` too (plugins/auth/keys.ts); listings are filtered.
  routeSpec({ method: 'GET', path: '/api/version', access: 'models:read', body: 'none', work: 'read' }),
  routeSpec({ method: 'HEAD', path: '/api/version', access: 'models:read', body: 'none', work: 'read' }),
  routeSpec({ method: 'GET', path: '/api/status', access: 'models:read', body: 'none', work: 'read' }),
  routeSpec({ method: 'GET', path: '/api/tags', access: 'models:read', body: 'none', work: 'read', listing: 'tags', hosts: 'every' }),
  routeSpec({ method: 'HEAD', path: '/api/tags', access: 'models:read', body: 'none', work: 'read', listing: 'tags', hosts: 'every' }),
  routeSpec({ method: 'GET', path: '/api/ps', access: 'models:read', body: 'none', work: 'read', listing: 'ps', hosts: 'every' }),
  routeSpec({ method: 'POST', path: '/api/show', access: 'models:read', body: 'json', work: 'read', schema: schemas.modelAction, goStruct: goStructs.show, modelAt: 'body' }),

  // Inference, native.
  routeSpec({ method: 'POST', path: '/api/chat', access: 'generate', body: 'json', work: 'inference', schema: schemas.chat, goStruct: goStructs.chat, answer: 'ndjson', modelAt: 'body' }),
  routeSpec({ method: 'POST', path: '/api/generate', access: 'generate', body: 'json', work: 'inference', schema: schemas.generate, goStruct: goStructs.generate, answer: 'ndjson', modelAt: 'body' }),
  routeSpec({ method: 'POST', path: '/api/embed', access: 'generate', body: 'json', work: 'inference', schema: schemas.embed, goStruct: goStructs.embed, modelAt: 'body' }),
  routeSpec({ method: 'POST', path: '/api/embeddings', access: 'generate', body: 'json', work: 'inference', schema: schemas.embeddings, goStruct: goStructs.embeddings, modelAt: 'body' }),

  // Inference, OpenAI- and Anthropic-compatible.
  routeSpec({ method: 'POST', path: '/v1/chat/completions', access: 'generate', body: 'json', work: 'inference', decodes: zstd, schema: schemas.openAiChat, goStruct: goStructs.openAiChat, answer: 'sse', modelAt: 'body' }),
  routeSpec({ method: 'POST', path: '/v1/completions', access: 'generate', body: 'json', work: 'inference', decodes: zstd, schema: schemas.openAiCompletion, goStruct: goStructs.openAiCompletion, answer: 'sse', modelAt: 'body' }),
  routeSpec({ method: 'POST', path: '/v1/embeddings', access: 'generate', body: 'json', work: 'inference', decodes: zstd, schema: schemas.openAiEmbeddings, goStruct: goStructs.openAiEmbeddings, modelAt: 'body' }),
  routeSpec({ method: 'POST', path: '/v1/responses', access: 'generate', body: 'json', work: 'inference', decodes: zstd, schema: schemas.openAiResponses, goStruct: goStructs.openAiResponses, answer: 'sse', modelAt: 'body' }),
  routeSpec({ method: 'GET', path: '/v1/models', access: 'models:read', body: 'none', work: 'read', listing: 'openai-models', hosts: 'every' }),
  routeSpec({ method: 'GET', path: '/v1/models/:model', access: 'models:read', body: 'none', work: 'read', params: params.model, modelAt: 'param' }),
  routeSpec({ method: 'POST', path: '/v1/audio/transcriptions', access: 'generate', body: 'multipart', work: 'inference', modelAt: 'multipart' }),
  routeSpec({ method: 'POST', path: '/v1/messages', access: 'generate', body: 'json', work: 'inference', decodes: zstd, schema: schemas.anthropicMessages, goStruct: goStructs.anthropicMessages, answer: 'sse', modelAt: 'body' }),

  // Model administration: without a named host, pull/push/create/copy/delete go to every host.
  routeSpec({ method: 'POST', path: '/api/pull', access: 'models:admin', body: 'json', work: 'manage', hosts: 'every', schema: schemas.modelAction, goStruct: goStructs.pullOrPush, answer: 'ndjson', modelAt: 'pull' }),
  routeSpec({ method: 'POST', path: '/api/push', access: 'models:admin', body: 'json', work: 'manage', hosts: 'every', schema: schemas.modelAction, goStruct: goStructs.pullOrPush, answer: 'ndjson', modelAt: 'push' }),
  routeSpec({ method: 'POST', path: '/api/create', access: 'models:admin', body: 'json', work: 'manage', hosts: 'every', schema: schemas.create, goStruct: goStructs.create, answer: 'ndjson', modelAt: 'create' }),
  routeSpec({ method: 'POST', path: '/api/copy', access: 'models:admin', body: 'json', work: 'manage', hosts: 'every', schema: schemas.copy, goStruct: goStructs.copy, modelAt: 'copy' }),
  routeSpec({ method: 'DELETE', path: '/api/delete', access: 'models:admin', body: 'json', work: 'manage', hosts: 'every', schema: schemas.modelAction, goStruct: goStructs.delete, modelAt: 'pull' }),
  // Uploads land where the model will be created: the client names the host.
  routeSpec({ method: 'HEAD', path: '/api/blobs/:digest', access: 'models:admin', body: 'none', work: 'manage', hosts: 'named', params: params.digest }),
  routeSpec({ method: 'POST', path: '/api/blobs/:digest', access: 'models:admin', body: 'raw', work: 'manage', hosts: 'named', params: params.digest }),

  // They act as the server owner's ollama.com account.
  routeSpec({ method: 'POST', path: '/api/me', access: 'models:admin', body: 'json', work: 'manage', goStruct: goStructs.none }),
  routeSpec({ method: 'POST', path: '/api/signout', access: 'models:admin', body: 'json', work: 'manage', goStruct: goStructs.none }),
  routeSpec({ method: 'DELETE', path: '/api/user/keys/:key', access: 'models:admin', body: 'json', work: 'manage', params: params.key, goStruct: goStructs.none }),
  routeSpec({ method: 'POST', path: '/api/experimental/web_search', access: 'models:admin', body: 'json', work: 'manage', goStruct: goStructs.none }),
  routeSpec({ method: 'POST', path: '/api/experimental/web_fetch', access: 'models:admin', body: 'json', work: 'manage', goStruct: goStructs.none }),
  routeSpec({ method: 'GET', path: '/api/experimental/model-recommendations', access: 'models:admin', body: 'none', work: 'manage' })
]

/** The seed's `/sys/*` names: every model route of Ollama under /sys, all for model-admin keys. */
const sysAliases: RouteSpec[] = ollamaRoutes
  .filter(r => r.path.startsWith('/api/') && (r.access === 'models:admin' || r.access === 'models:read'))
  .map(({ dialect: _dialect, chargesTokens: _charges, readsAnswer: _reads, ...r }) => routeSpec({ ...r, path: '/sys/' + r.path.slice('/api/'.length), access: 'models:admin' }))

export const routeTable: readonly RouteSpec[] = [...ollamaRoutes, ...sysAliases]

const own = (row: Omit<Parameters<typeof routeSpec>[0], 'upstream' | 'work' | 'hosts'>): RouteSpec => routeSpec({ ...row, upstream: '', work: 'read', hosts: 'proxy' })

/** Who may read every key and everyone's usage: key admins, and keys given `usage:read`. */
const READERS = ['keys:admin', 'usage:read'] as const

/**
 * The proxy's own routes: answered by the proxy, never forwarded. Everything but Ollama's API
 * lives under /proxy/, so it can never collide with Ollama's /api and /v1.
 */
export const proxyRoutes = {
  healthz: own({ method: 'GET', path: '/healthz', access: 'public', body: 'none' }),
  readyz: own({ method: 'GET', path: '/readyz', access: 'public', body: 'none' }),
  metrics: own({ method: 'GET', path: '/metrics', access: 'metrics', body: 'none' }),
  me: own({ method: 'GET', path: '/proxy/me', access: 'any-key', body: 'none' }),
  usage: own({ method: 'GET', path: '/proxy/usage', access: READERS, body: 'none' }),
  status: own({ method: 'GET', path: '/proxy/status', access: READERS, body: 'none' }),
  listKeys: own({ method: 'GET', path: '/proxy/keys', access: READERS, body: 'none' }),
  addKey: own({ method: 'POST', path: '/proxy/keys', access: 'keys:admin', body: 'json' }),
  updateKey: own({ method: 'PATCH', path: '/proxy/keys/:name', access: 'keys:admin', body: 'json' }),
  revokeKey: own({ method: 'DELETE', path: '/proxy/keys/:name', access: 'keys:admin', body: 'none' }),
  rotateKey: own({ method: 'POST', path: '/proxy/keys/:name/rotate', access: 'keys:admin', body: 'json' }),
  // The admin page is public: the browser loads it before anyone signs in; its data comes only
  // from the keyed routes above. `/proxy/ui` redirects to `/proxy/ui/` so relative URLs resolve.
  pageRoot: own({ method: 'GET', path: '/proxy/ui', access: 'public', body: 'none' }),
  page: own({ method: 'GET', path: '/proxy/ui/*', access: 'public', body: 'none' })
} as const
