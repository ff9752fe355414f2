import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { LogController, type FastifyBaseLogger, type FastifyHttpOptions, type FastifyPluginAsync } from 'fastify'
import type { Logger } from 'pino'
import { lazyChildLogger } from './logger.js'
import type { Server } from 'node:http'
import configPlugin from '../plugins/config/config.js'
import type { ProxyConfig } from '../plugins/config/config-loader.js'
import reloadPlugin from '../plugins/config/reload.js'
import exchangePlugin from '../plugins/http/exchange.js'
import errorsPlugin, { answerFrameworkError, answerMalformedRequest, formatSchemaErrors } from '../plugins/http/errors.js'
import corsPlugin from '../plugins/http/cors.js'
import admissionPlugin from '../plugins/http/admission.js'
import authPlugin from '../plugins/auth/auth.js'
import limitsPlugin from '../plugins/limits/limits.js'
import upstreamPlugin from '../plugins/upstream/upstream.js'
import usagePlugin from '../plugins/usage/accounting.js'
import requestLogPlugin from '../plugins/observability/request-log.js'
import metricsPlugin from '../plugins/observability/metrics.js'
import metricsRoutes from '../routes/metrics.js'
import generationRoutes from '../routes/generation.js'
import healthRoutes from '../routes/health.js'
import methodNotAllowed from '../routes/method-not-allowed.js'
import modelManagementRoutes from '../routes/model-management.js'
import keyApi from '../routes/key-api.js'
import proxyApi from '../routes/proxy-api.js'
import { proxyRoutes } from '../routes/route-table.js'
import adminPage from '../plugins/ui/admin-page.js'

export interface AppOptions {
  config: ProxyConfig
  /** Reload the config on SIGHUP and when the file changes (the server does; tests need not). */
  watchConfig?: boolean
  /** Replaces Date.now for time windows, budgets and expiry (tests). */
  clock?: () => number
}

/**
 * The whole proxy as one plugin; server.ts and the tests register it on a Fastify instance.
 *
 * A request flows through these stages, in this order (README, "How a request flows"); each
 * reads and writes the request's exchange (plugins/http/exchange.ts):
 *   0. exchange   created in the first onRequest hook; ends once   plugins/http/exchange.ts
 *   1. admission  connection cap, unknown path, 100-continue          plugins/http/admission.ts
 *   2. key        scope of the route, host naming                     plugins/auth/auth.ts
 *   3. limits     requests, tokens, concurrency per key               plugins/limits/limits.ts
 *   4. body       read under limits, the Go view of JSON              plugins/http/body.ts
 *   5. policy     model allowlist, caps                               plugins/auth/auth.ts
 *   6. plan       which host(s): listing, fan-out, slot, named host   plugins/upstream/proxy.ts
 *   7. forward    one host through reply-from, answer streamed back   plugins/upstream/forward.ts
 *   8. account    tokens of the answer when the exchange ends         plugins/usage/accounting.ts
 *   9. log        one line and the request metrics                    plugins/observability/request-log.ts
 */
const app: FastifyPluginAsync<AppOptions> = async function app (fastify, { config, watchConfig = false, clock }) {
  await fastify.register(configPlugin, { config, clock })
  await fastify.register(errorsPlugin)
  await fastify.register(exchangePlugin)
  await fastify.register(requestLogPlugin)
  // CORS before the key: preflights are answered without a key and 401s carry CORS headers.
  await fastify.register(corsPlugin)
  await fastify.register(admissionPlugin)
  await fastify.register(authPlugin)
  await fastify.register(reloadPlugin, { watch: watchConfig })
  // With Redis, every replica counts against one limit and one set of slots; without it, limits
  // and slots live in memory. Loaded only when configured: ioredis is large.
  const shared = config.redis !== null ? await sharedState(config.redis, fastify.log) : undefined
  if (shared !== undefined) fastify.addHook('onClose', async () => { await Promise.all([shared.windows.close(), shared.leases.close()]) })
  // The usage store comes first: the limits check its budgets, the account stage records into it.
  await fastify.register(usagePlugin)
  await fastify.register(limitsPlugin, { windows: shared?.windows, leases: shared?.leases })
  await fastify.register(upstreamPlugin, { ledger: shared?.leases })
  await fastify.register(metricsPlugin)

  await fastify.register(healthRoutes)
  await fastify.register(metricsRoutes)
  await fastify.register(generationRoutes)
  await fastify.register(modelManagementRoutes)
  await fastify.register(proxyApi)
  await fastify.register(keyApi)
  await fastify.register(adminPage, { routes: proxyRoutes })
  await fastify.register(methodNotAllowed)
}

export default app

/** The Redis-backed minute windows and slot leases every replica shares. */
async function sharedState (redis: NonNullable<ProxyConfig['redis']>, log: FastifyBaseLogger) {
  const [{ RedisWindows }, { RedisLeases }] = await Promise.all([import('../plugins/limits/redis-windows.js'), import('../plugins/scheduling/redis-leases.js')])
  return { windows: new RedisWindows(redis, log), leases: new RedisLeases(redis, log) }
}

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** A caller's x-request-id is kept when it is short and plain, so logs can be joined across hops. */
export function requestIdFor (request: IncomingMessage): string {
  const incoming = request.headers['x-request-id']
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID()
}

/** Fastify's server options for the proxy, shared by server.ts and the tests. */
export function serverOptions (config: ProxyConfig, logger: Logger): FastifyHttpOptions<Server> {
  return {
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: requestIdFor,
    childLoggerFactory: lazyChildLogger as never,
    bodyLimit: config.server.bodyLimit,
    // Only the HEAD routes Ollama has; the route table lists them.
    exposeHeadRoutes: false,
    trustProxy: config.server.trustProxy,
    // A non-streamed generation may be silent for minutes: no socket or request timeouts.
    connectionTimeout: 0,
    requestTimeout: 0,
    keepAliveTimeout: 72_000,
    return503OnClosing: true,
    http: {
      // A request without Host is refused by the admission stage instead: a JSON error and a log line.
      requireHostHeader: false,
      headersTimeout: config.server.headersTimeoutMs,
      connectionsCheckingInterval: Math.min(config.server.headersTimeoutMs, 5_000)
    } as FastifyHttpOptions<Server>['http'],
    // What the client sent is what Ollama receives: no coercion, no defaults, extras kept.
    ajv: { customOptions: { coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false } },
    schemaErrorFormatter: formatSchemaErrors as never,
    // A path Fastify refuses before routing it: a JSON error in dialect and a log line, as every error.
    frameworkErrors: answerFrameworkError as never,
    // A request Node's parser refuses: a JSON error saying what, and a log line.
    clientErrorHandler: answerMalformedRequest as never
  }
}
