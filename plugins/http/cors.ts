import fp from 'fastify-plugin'
import cors from '@fastify/cors'

/**
 * CORS is answered here, never by Ollama (whose Origin check answers 403 with an empty body).
 * Registered before auth so preflights need no key and 401s still carry CORS headers.
 * @see https://github.com/fastify/fastify-cors
 */
export default fp(async function corsPlugin (fastify) {
  const { origins, maxAge } = fastify.config.cors
  await fastify.register(cors, {
    origin: origins === '*' ? '*' : origins,
    methods: ['GET', 'HEAD', 'POST', 'DELETE', 'PATCH', 'OPTIONS'],
    // allowedHeaders is left out (an explicit undefined would replace the plugin's null default),
    // so @fastify/cors reflects Access-Control-Request-Headers: a browser may send every header Ollama's
    // own CORS allows (server/routes.go: Authorization, OpenAI-Beta, x-stainless-*), those of the
    // OpenAI and Anthropic browser SDKs (anthropic-version, anthropic-dangerous-direct-browser-access,
    // new x-stainless-* ones) and the proxy's X-Ollama-Host, without a list to fall behind.
    // Safe while credentials (cookies) are never allowed: a key must be sent explicitly.
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'X-Ollama-Upstream'],
    credentials: false,
    maxAge,
    strictPreflight: false
  })
}, { name: 'cors', fastify: '5.x', dependencies: ['config'] })
