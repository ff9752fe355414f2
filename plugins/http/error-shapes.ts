import type { FastifyReply, FastifyRequest } from 'fastify'

/** Each API family has its own error body; clients only understand their own. */
export type Dialect = 'native' | 'openai' | 'anthropic'

export function dialectOf (url: string): Dialect {
  if (url.startsWith('/v1/')) {
    return url.startsWith('/v1/messages') ? 'anthropic' : 'openai'
  }
  return 'native'
}

const openAiTypes: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  413: 'invalid_request_error',
  414: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error'
}

const openAiCodes: Record<number, string> = {
  401: 'invalid_api_key',
  429: 'rate_limit_exceeded'
}

const anthropicTypes: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  413: 'request_too_large',
  414: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'overloaded_error',
  504: 'timeout_error'
}

export function errorBody (dialect: Dialect, status: number, message: string, requestId?: string): unknown {
  switch (dialect) {
    case 'openai':
      return { error: { message, type: openAiTypes[status] ?? 'api_error', param: null, code: openAiCodes[status] ?? null } }
    case 'anthropic':
      return { type: 'error', error: { type: anthropicTypes[status] ?? 'api_error', message }, request_id: requestId }
    default:
      return { error: message }
  }
}

/**
 * The challenges of a 401: a key as a Bearer token, or as the password of HTTP Basic, for clients
 * that answer a challenge with Basic (wget, SDKs given `user:key@` in their base URL).
 */
export const AUTH_CHALLENGE = 'Bearer, Basic realm="ollama-proxy", charset="UTF-8"'

/** Answers with a JSON error in the dialect of the route the client called. */
export function sendError (request: FastifyRequest, reply: FastifyReply, status: number, message: string): FastifyReply {
  if (status === 401) reply.header('www-authenticate', AUTH_CHALLENGE)
  return reply
    .code(status)
    .header('content-type', 'application/json; charset=utf-8')
    .send(errorBody(dialectOf(request.url), status, message, request.id))
}

/** An error whose status and message are safe to show to the client. */
export class ProxyError extends Error {
  constructor (readonly statusCode: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message)
    this.name = 'ProxyError'
  }
}
