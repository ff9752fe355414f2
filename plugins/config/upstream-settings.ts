import { ConfigError, fieldError } from './config-errors.js'
import type { ConfigFile } from './config-schema.js'
import type { UpstreamSettings } from './proxy-config.js'

/** Splits an Ollama URL into what may be logged (origin), its path prefix and its credentials. */
function upstreamAddress (value: string, file: string, field: string): Pick<UpstreamSettings, 'url' | 'basePath' | 'authorization'> {
  let url: URL
  // The message names the field, never the value: it may hold a password.
  const refuse = () => fieldError(file, field, 'expected an http(s) URL (http://host:port, optionally with a path and user:password@)')
  try {
    url = new URL(value)
  } catch {
    throw refuse()
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refuse()
  if (url.search !== '' || url.hash !== '') throw fieldError(file, field, 'an Ollama URL takes no query or fragment')
  let authorization: string | null = null
  if (url.username !== '' || url.password !== '') {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
    authorization = `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`
  }
  return { url: url.origin, basePath: url.pathname.replace(/\/+$/, ''), authorization }
}

// RFC 9110 section 5.6.2: a field name is a token.
const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// What Node's http client accepts in a field value (no CR, LF or NUL: no header injection).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
// Framing and hop-by-hop fields belong to the proxy's connection to Ollama, not to a front.
const RESERVED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade'])

/**
 * A front's fixed headers with lower-cased names. Throws ConfigError naming the field; a value
 * is never quoted (it is usually a service token).
 */
function frontHeaders (headers: Record<string, string> | undefined, authorization: string | null, file: string, field: string): Record<string, string> {
  const result: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    const where = `${field}.${name}`
    if (!HTTP_TOKEN.test(name)) throw fieldError(file, where, 'expected a header name (letters, digits and !#$%&\'*+-.^_`|~)')
    const lower = name.toLowerCase()
    if (lower in result) throw fieldError(file, where, `"${name}" is given twice (header names are case-insensitive)`)
    if (RESERVED.has(lower)) throw fieldError(file, where, 'this header is set by the proxy for each connection; it cannot be fixed')
    if (lower === 'authorization' && authorization !== null) throw fieldError(file, where, 'the URL\'s user:password@ already sets Authorization; give the credentials one way')
    if (!FIELD_VALUE.test(value)) throw fieldError(file, where, 'the value holds a line break or a control character (it is not shown: it may be a secret)')
    result[lower] = value
  }
  return result
}

/**
 * The name of an upstream the config leaves unnamed: `host-<position from 1>`. Names reach
 * clients (keyless /readyz, X-Ollama-Upstream, fan-out errors), so they never carry the address.
 */
function neutralHostName (index: number): string {
  return `host-${index + 1}`
}

/**
 * The Ollama hosts: `service.upstreams`, or the one `service.base_url` (default
 * http://localhost:11434) with `service.max_concurrent` and `service.headers`. Throws ConfigError
 * naming the field: a bad URL, a bad header, two upstreams of one name, or `service.max_concurrent`
 * / `service.headers` beside `upstreams` (there they are set per upstream).
 */
export function resolveUpstreams (service: NonNullable<ConfigFile['service']>, file: string): UpstreamSettings[] {
  if (service.upstreams === undefined) {
    const address = upstreamAddress(service.base_url ?? 'http://localhost:11434', file, 'service.base_url')
    return [{
      ...address,
      name: neutralHostName(0),
      maxConcurrent: service.max_concurrent ?? null,
      headers: frontHeaders(service.headers, address.authorization, file, 'service.headers')
    }]
  }
  for (const field of ['max_concurrent', 'headers'] as const) {
    if (service[field] !== undefined) throw fieldError(file, `service.${field}`, `applies to service.base_url; with service.upstreams, set ${field} on each upstream`)
  }
  const upstreams = service.upstreams.map((u, i) => {
    const address = upstreamAddress(u.url, file, `service.upstreams.${i}.url`)
    return {
      ...address,
      name: u.name ?? neutralHostName(i),
      maxConcurrent: u.max_concurrent ?? null,
      headers: frontHeaders(u.headers, address.authorization, file, `service.upstreams.${i}.headers`)
    }
  })
  if (new Set(upstreams.map(u => u.name)).size !== upstreams.length) {
    throw new ConfigError(`${file}: service.upstreams: every upstream needs a distinct name (unnamed ones are called host-1, host-2, ... by position)`, { file, field: 'service.upstreams' })
  }
  return upstreams
}
