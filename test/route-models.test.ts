import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TSchema } from 'typebox'
import { routeTable } from '../routes/route-table.js'

// Every Ollama route whose handler runs or manages a model (server/routes.go GenerateRoutes and
// the middleware in front of it), with where its model comes from. Routes not listed here
// (listings, version, blobs, account and web routes) name no model and must not claim one.
const modelRoutes: Array<{ route: string, source: string }> = [
  { route: 'POST /api/show', source: 'body' },
  { route: 'POST /api/chat', source: 'body' },
  { route: 'POST /api/generate', source: 'body' },
  { route: 'POST /api/embed', source: 'body' },
  { route: 'POST /api/embeddings', source: 'body' },
  { route: 'POST /v1/chat/completions', source: 'body' },
  { route: 'POST /v1/completions', source: 'body' },
  { route: 'POST /v1/embeddings', source: 'body' },
  { route: 'POST /v1/responses', source: 'body' },
  { route: 'GET /v1/models/:model', source: 'param' },
  { route: 'POST /v1/messages', source: 'body' },
  { route: 'POST /v1/audio/transcriptions', source: 'multipart' },
  { route: 'POST /api/pull', source: 'pull' },
  { route: 'POST /api/push', source: 'push' },
  { route: 'POST /api/create', source: 'create' },
  { route: 'POST /api/copy', source: 'copy' },
  { route: 'DELETE /api/delete', source: 'pull' }
]

/** The Go struct fields each model source reads. */
const fieldsOf: Record<string, string[]> = { body: ['model'], pull: ['model'], push: ['model'], create: ['model', 'from'], copy: ['source', 'destination'] }

test('every route that runs or manages a model declares where its model comes from', async (t) => {
  const ollamaRoutes = routeTable.filter(r => !r.path.startsWith('/sys/'))
  for (const { route, source } of modelRoutes) {
    await t.test(route, () => {
      const spec = ollamaRoutes.find(r => `${r.method} ${r.path}` === route)
      assert.ok(spec !== undefined, `${route} is in the route table`)
      assert.equal(spec.modelAt, source, `${route} model source`)
      for (const field of fieldsOf[source] ?? []) assert.equal(spec.goStruct?.[field], 'string', `${route} reads ${field} from its Go struct`)
    })
  }
  const expected = new Set(modelRoutes.map(r => r.route))
  const extra = ollamaRoutes.filter(r => r.modelAt !== undefined && !expected.has(`${r.method} ${r.path}`))
  assert.deepEqual(extra.map(r => `${r.method} ${r.path}`), [], 'routes claiming a model Ollama does not run')
  for (const alias of routeTable.filter(r => r.path.startsWith('/sys/'))) {
    const twin = ollamaRoutes.find(r => r.method === alias.method && r.upstream === alias.upstream)
    assert.equal(alias.modelAt, twin?.modelAt, `${alias.path} names its model like its twin`)
  }
})

test('every JSON route names the Go struct its body is read as, covering every field its schema checks', () => {
  for (const spec of routeTable.filter(r => r.body === 'json')) {
    const label = `${spec.method} ${spec.path}`
    assert.ok(spec.goStruct !== undefined, `${label} declares its Go struct`)
    const properties = Object.keys((spec.schema as (TSchema & { properties?: object }) | undefined)?.properties ?? {})
    for (const field of properties) assert.ok(Object.hasOwn(spec.goStruct, field), `${label}: schema field ${field} is read from the Go struct`)
  }
})
