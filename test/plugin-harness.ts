/**
 * The plugin level of the tests: a bare Fastify with the proxy's server options, the config,
 * errors and exchange plugins, the stage plugin(s) under test, and test routes declared as route
 * table rows whose handler answers at once (no Ollama, no upstream plugin). Requests go in with
 * `inject()`: no socket. What crosses the wire (streams, disconnects, pipelining, bodies on a
 * socket, upstream faults, real clients) is tested on sockets with startStack (helper.ts).
 */
import { EventEmitter, once } from 'node:events'
import type { ServerResponse } from 'node:http'
import type { TestContext } from 'node:test'
import Fastify, { type FastifyInstance, type InjectOptions, type FastifyPluginAsync, type FastifyPluginCallback, type FastifyReply, type FastifyRequest } from 'fastify'
import { serverOptions } from '../src/app.js'
import { createLogger } from '../src/logger.js'
import configPlugin from '../plugins/config/config.js'
import type { ProxyConfig } from '../plugins/config/config-loader.js'
import errorsPlugin from '../plugins/http/errors.js'
import exchangePlugin, { type Exchange } from '../plugins/http/exchange.js'
import { ByteBudget } from '../plugins/http/body-reader.js'
import type { RouteSpec } from '../plugins/http/route-spec.js'
import { registerRouteSpecs } from '../routes/register.js'
import { routeTable } from '../routes/route-table.js'
import { LogCapture, testConfig, withOwnUsageDatabase } from './helper.js'

// Any plugin, with or without fastify-plugin, whatever its options.
type AnyPlugin = FastifyPluginAsync<any> | FastifyPluginCallback<any>

/** What the test routes answer once the stages under test have let a request through. */
export type TestHandler = (exchange: Exchange, request: FastifyRequest, reply: FastifyReply) => unknown

export interface HarnessOptions {
  /** The plugins under test, in stage order (a plugin with options as `[plugin, options]`). */
  plugins: ReadonlyArray<AnyPlugin | readonly [AnyPlugin, Record<string, unknown>]>
  /** Route table rows the test routes serve (rows of routes/route-table.ts, or `routeSpec(...)`). */
  routes?: readonly RouteSpec[]
  /** Config beyond the test config (helper.ts testConfig), as for startStack. */
  config?: Record<string, unknown>
  /** ms since the epoch for time windows, budgets and expiry (the config plugin's `clock`). */
  clock?: () => number
  /** What a test route answers; by default 200 `{"reached":true}`. */
  handler?: TestHandler
}

export interface Harness {
  /** Ready for `inject()`; closed after the test. */
  app: FastifyInstance
  logs: LogCapture
  config: ProxyConfig
  /** The exchanges whose request reached a test route's handler, in order. */
  reached: Exchange[]
  /** The exchanges that have ended (after their log line, if request-log is under test), in order. */
  ended: Exchange[]
  /** Resolves once `count` exchanges in all have ended. */
  endedCount: (count: number) => Promise<void>
}

/** Never contacted: no plugin that talks to Ollama is registered at this level. */
const NO_OLLAMA = 'http://127.0.0.1:9'

const defaultHandler: TestHandler = async () => ({ reached: true })

/**
 * Builds the bare instance, registers the plugins under test after config, errors and exchange
 * (as src/app.ts does), then the test routes, each row with the body reader its `body` column
 * names (plugins/http/body.ts), and waits until it is ready.
 */
export async function pluginHarness (t: TestContext, options: HarnessOptions): Promise<Harness> {
  const config = withOwnUsageDatabase(testConfig(NO_OLLAMA, options.config))
  const logs = new LogCapture()
  const app = Fastify(serverOptions(config, createLogger(config.log.level, logs)))
  t.after(async () => { await app.close() })
  await app.register(configPlugin, { config, clock: options.clock })
  await app.register(errorsPlugin)
  await app.register(exchangePlugin)
  app.addHook('onRequest', function finishLikeASocket (_request, reply, done) {
    sentWholeOnceEnded(reply.raw)
    done()
  })
  for (const entry of options.plugins) {
    if (Array.isArray(entry)) await app.register(entry[0] as AnyPlugin, entry[1])
    else await app.register(entry as AnyPlugin)
  }
  // The body readers (stage 4) count bytes against the budget the admission stage declares and
  // gives back; without admission under test, the harness stands in for it.
  if (!app.hasDecorator('bodyBudget')) {
    const budget = new ByteBudget(config.server.maxBodyBytesInFlight)
    app.decorate('bodyBudget', budget)
    app.exchangeServices.releaseBodyBytes = bytes => { budget.release(bytes) }
  }

  const reached: Exchange[] = []
  const ended: Exchange[] = []
  const endings = new EventEmitter()
  const services = app.exchangeServices
  const record = services.record
  services.record = (exchange: Exchange) => {
    record(exchange)
    ended.push(exchange)
    endings.emit('ended')
  }

  const handler = options.handler ?? defaultHandler
  const routes = options.routes ?? []
  await app.register(async function testRoutes (scope) {
    await registerRouteSpecs(scope, routes, async function answer (request, reply) {
      reached.push(request.exchange)
      return await handler(request.exchange, request, reply)
    })
  })
  await app.ready()

  async function endedCount (count: number): Promise<void> {
    while (ended.length < count) await once(endings, 'ended')
  }
  return { app, logs, config, reached, ended, endedCount }
}

/**
 * An exchange tells a response sent whole from a client that left by `writableFinished`, which a
 * socket sets once every byte is handed over. inject()'s response has no socket: its bytes stay
 * in Node's output buffer and `writableFinished` never turns true, so every exchange would end as
 * `client-left` (logged 499). Here it is the response's end, which is what a socket would report.
 */
function sentWholeOnceEnded (response: ServerResponse): void {
  Object.defineProperty(response, 'writableFinished', { get (this: ServerResponse) { return this.writableEnded } })
}

/** Rows of the route table by `METHOD /path`, e.g. `tableRows('POST /api/chat', 'GET /api/tags')`. */
export function tableRows (...routes: string[]): RouteSpec[] {
  return routes.map(route => {
    const row = routeTable.find(spec => `${spec.method} ${spec.path}` === route)
    if (row === undefined) throw new Error(`no route table row ${route}`)
    return row
  })
}

/** inject()'s options for a fetch-style request (test/samples.ts): same method, path, headers and body. */
export function injectionOf (path: string, init: RequestInit): InjectOptions {
  return {
    method: (init.method ?? 'GET') as InjectOptions['method'],
    url: path,
    headers: init.headers as Record<string, string> | undefined,
    ...(init.body !== undefined && init.body !== null ? { payload: init.body as string | Buffer } : {})
  }
}
