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
    methods: ['GET', 'HEAD', 'POST', 'DELETE', 'OPTIONS'],
    allowedHeaders: [
      'Authorization', 'Content-Type', 'X-Api-Key', 'X-Request-Id', 'Accept', 'User-Agent',
      'X-Requested-With', 'OpenAI-Beta', 'Anthropic-Version', 'Anthropic-Beta',
      'Anthropic-Dangerous-Direct-Browser-Access', 'X-Stainless-Arch', 'X-Stainless-Lang',
      'X-Stainless-Os', 'X-Stainless-Package-Version', 'X-Stainless-Retry-Count',
      'X-Stainless-Runtime', 'X-Stainless-Runtime-Version', 'X-Stainless-Timeout', 'X-Stainless-Helper-Method'
    ],
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'X-Ollama-Upstream'],
    credentials: false,
    maxAge,
    strictPreflight: false
  })
}, { name: 'cors', fastify: '5.x', dependencies: ['config'] })
