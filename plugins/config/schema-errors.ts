import { ConfigSchema } from './config-schema.js'

/** One error of TypeBox's compiled validator (typebox/compile, `Errors()`). */
export interface SchemaError { instancePath: string, schemaPath: string, message: string, keyword: string, params: Record<string, unknown> }

/** The dotted field an error is about (`auth.keys.0.scopes.0`), or "(top level)". */
export function fieldOf (error: SchemaError | undefined): string {
  return error?.instancePath.replace(/^\//, '').replaceAll('/', '.').replaceAll('~1', '/').replaceAll('~0', '~') || '(top level)'
}

function valueAt (data: unknown, instancePath: string): unknown {
  let node = data
  for (const part of instancePath.split('/').slice(1)) node = (node as Record<string, unknown> | undefined)?.[part.replaceAll('~1', '/').replaceAll('~0', '~')]
  return node
}

function schemaAt (pointer: string): { description?: string } | undefined {
  let node: unknown = ConfigSchema
  for (const part of pointer.replace(/^#\/?/, '').split('/').filter(Boolean)) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<string, unknown>)[part]
  }
  return typeof node === 'object' && node !== null ? node as { description?: string } : undefined
}

/**
 * The first schema error as `<field>: <what was expected>`, one line. Quotes the value only for
 * a union of literals (log.level, scopes), whose values are never secrets; other messages name
 * the field and what it takes, never the value (a header or a URL may hold a password).
 */
export function describeSchemaError (errors: SchemaError[], data: unknown): string {
  const error = errors[0]
  if (error === undefined) return 'invalid configuration'
  const field = fieldOf(error)
  // A union of literals (log.level, scopes) fails once per literal: name them all.
  const here = errors.filter(e => e.instancePath === error.instancePath)
  const allowed = here.filter(e => e.keyword === 'const').map(e => String(e.params.allowedValue))
  if (allowed.length > 1 && here.every(e => e.keyword === 'const' || e.keyword === 'anyOf')) {
    return `${field}: expected one of ${allowed.join(', ')}; got ${JSON.stringify(valueAt(data, error.instancePath))}`
  }
  if (error.keyword === 'boolean' || error.keyword === 'additionalProperties') {
    return `${field}: unknown key; check its spelling against config/config.example.yaml`
  }
  if (error.keyword === 'required') {
    const missing = (error.params.requiredProperties as string[] | undefined)?.join(', ') ?? ''
    return `${field}: missing required key "${missing}"`
  }
  // A union of types (caps.keep_alive) is described as a whole, not by its first branch.
  const union = here.find(e => e.keyword === 'anyOf')
  const description = schemaAt((union ?? error).schemaPath)?.description ?? schemaAt(error.schemaPath)?.description
  const expected = description !== undefined ? `expected ${description}` : error.message.replace(/^must/, 'expected to')
  // A whole number too large for the description to say so (weight: 1e300).
  const limit = error.keyword === 'maximum' && description !== undefined && !description.includes('at most') ? error.params.limit : undefined
  return `${field}: ${expected}${limit !== undefined ? `, at most ${String(limit)}` : ''}`
}
