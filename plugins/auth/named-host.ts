import type { IncomingHttpHeaders } from 'node:http'

/**
 * The Ollama host a request names, from the proxy's `X-Ollama-Host` header or, for clients that
 * cannot set headers, the `?host=` query parameter (Fastify's parsed query); undefined when none.
 */
export function namedHost (headers: IncomingHttpHeaders, query: unknown): string | undefined {
  const header = headers['x-ollama-host']
  if (typeof header === 'string' && header !== '') return header
  const host = (query as Record<string, unknown> | undefined)?.host
  return typeof host === 'string' && host !== '' ? host : undefined
}
