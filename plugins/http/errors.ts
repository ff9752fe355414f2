import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { ProxyError, sendError } from './error-shapes.js'
import { openExchange } from './exchange.js'

interface SchemaIssue { instancePath: string, keyword: string, message?: string, params: Record<string, unknown> }

/**
 * One readable sentence naming the field, e.g. `body.model must NOT have fewer than 1 characters`.
 * `anyOf` over `required` is how the schemas say "model or its alias name".
 */
export function formatSchemaErrors (errors: SchemaIssue[], dataVar: string): Error {
  const alternatives = errors.filter(e => e.keyword === 'required').map(e => `'${String(e.params.missingProperty)}'`)
  const hasAnyOf = errors.some(e => e.keyword === 'anyOf')
  const first = errors.find(e => e.keyword !== 'anyOf' && e.keyword !== 'required') ?? errors[0]
  let message: string
  if (hasAnyOf && alternatives.length > 1 && first.keyword === 'required') {
    message = `${dataVar} must have required property ${alternatives.join(' or ')}`
  } else {
    const path = first.instancePath.replace(/^\//, '').replaceAll('/', '.')
    message = `${dataVar}${path === '' ? '' : '.' + path} ${first.message ?? 'is invalid'}`
  }
  return new ProxyError(400, message)
}

const CLIENT_ERROR_MESSAGES: Record<string, string> = {
  FST_ERR_CTP_EMPTY_JSON_BODY: 'request body is empty',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported content type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'request body does not match its Content-Length'
}

/**
 * Fastify's `frameworkErrors` (serverOptions in src/app.ts): a request refused before routing,
 * for a path that is not valid percent-encoding (FST_ERR_BAD_URL, 400) or a path parameter of
 * more than 100 characters (FST_ERR_MAX_PARAM_LENGTH, 414). Answered as every error is, a JSON
 * error in the dialect of the path, and given an exchange so it has its log line; no hook runs
 * for such a request.
 */
export function answerFrameworkError (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const services = request.server.exchangeServices
  if (services !== undefined) openExchange(undefined, request, reply, services)
  const status = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400
  sendError(request, reply, status, status === 414 ? 'a segment of the path is longer than 100 characters' : 'the path is not valid percent-encoding')
}

export default fp(async function errorsPlugin (fastify) {
  fastify.setErrorHandler(function handleError (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    if (error instanceof ProxyError) {
      reply.headers(error.headers)
      return sendError(request, reply, error.statusCode, error.message)
    }
    const status = error.statusCode ?? 500
    if (error.validation !== undefined) {
      return sendError(request, reply, 400, error.message)
    }
    if (status >= 400 && status < 500) {
      const message = error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `request body is larger than the limit of ${fastify.config.server.bodyLimit} bytes`
        : CLIENT_ERROR_MESSAGES[error.code] ?? error.message
      return sendError(request, reply, status, message)
    }
    request.log.error({ err: error }, 'proxy error')
    return sendError(request, reply, 500, 'internal proxy error')
  })

  fastify.setNotFoundHandler(function notFound (request, reply) {
    return sendError(request, reply, 404, `no route ${request.method} ${request.url.split('?')[0]}`)
  })
}, { name: 'errors', fastify: '5.x', dependencies: ['config'] })
