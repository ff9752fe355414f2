import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Writable } from 'node:stream'
import type { TestContext } from 'node:test'
import { stringify } from 'yaml'
import app, { serverOptions } from '../src/app.js'
import { createLogger } from '../src/logger.js'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig, packageRoot, type ProxyConfig } from '../plugins/config/config-loader.js'

/** The usage database a config without `usage.database` names: data/usage.sqlite in the installation. */
function defaultUsageDatabasePath (): string {
  return join(packageRoot(), 'data', 'usage.sqlite')
}
import { startFakeOllama, type FakeOllama } from './fake-ollama.js'
import { TOKENS } from './fixtures/keys.js'

// Keys and credentials live in fixtures/keys.ts; re-exported for the files that import them from here.
export { TOKENS, bearer } from './fixtures/keys.js'

/** Collects the proxy's JSON log lines so tests can read them. */
export class LogCapture extends Writable {
  readonly lines: string[] = []
  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.lines.push(...chunk.toString().split('\n').filter(Boolean))
    callback()
  }

  get text (): string {
    return this.lines.join('\n')
  }

  entries (): Array<Record<string, unknown>> {
    return this.lines.map(line => JSON.parse(line) as Record<string, unknown>)
  }

  requestLines (): Array<Record<string, unknown>> {
    return this.entries().filter(e => e.msg === 'request')
  }
}

export interface Stack {
  url: string
  app: FastifyInstance
  fake: FakeOllama
  logs: LogCapture
  config: ProxyConfig
}

export function testConfig (fakeUrl: string, extra: Record<string, unknown> = {}): ProxyConfig {
  const { auth, service, ...rest } = extra as { auth?: object, service?: object }
  const document = {
    auth: { generate_tokens: [TOKENS.generate], model_tokens: [TOKENS.model], ...auth },
    service: { base_url: fakeUrl, ...service },
    log: { level: 'info' },
    ...rest
  }
  return parseConfig(stringify(document), 'test-config.yaml')
}

/** Every proxy of the tests gets a usage database of its own, unless the test chose one. */
export function withOwnUsageDatabase (config: ProxyConfig): ProxyConfig {
  if (config.usage.database === defaultUsageDatabasePath()) config.usage = { ...config.usage, database: join(mkdtempSync(join(tmpdir(), 'proxy-usage-')), 'usage.sqlite') }
  return config
}

/** What a test may set on the app besides its config. */
export interface AppTestOptions {
  /** A clock for time windows, budgets and expiry (ms since the epoch); Date.now when absent. */
  clock?: () => number
}

/** Builds the proxy exactly as server.ts does and listens on a real loopback port. */
export async function startProxy (t: TestContext | undefined, config: ProxyConfig, logs = new LogCapture(), watchConfig = false, options: AppTestOptions = {}): Promise<{ url: string, app: FastifyInstance, logs: LogCapture }> {
  withOwnUsageDatabase(config)
  const server = Fastify(serverOptions(config, createLogger(config.log.level, logs)))
  try {
    await server.register(fp(app), { config, watchConfig, clock: options.clock })
    await server.listen({ host: '127.0.0.1', port: 0 })
  } catch (err) {
    // What started before the failure (Redis links, health checks, timers) would keep the test file running.
    await server.close().catch(() => {})
    throw err
  }
  const address = server.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  t?.after(async () => {
    server.server.closeAllConnections()
    await server.close()
  })
  return { url: `http://127.0.0.1:${address.port}`, app: server, logs }
}

/** A fake Ollama and the proxy in front of it, both torn down after the test. */
export async function startStack (t: TestContext, extraConfig: Record<string, unknown> = {}, options: AppTestOptions = {}): Promise<Stack> {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const config = testConfig(fake.url, extraConfig)
  const proxy = await startProxy(t, config, new LogCapture(), false, options)
  return { ...proxy, fake, config }
}

/** The parsed JSON body of a response, loosely typed for assertions. */
export async function jsonOf (response: Response): Promise<any> {
  return JSON.parse(await response.text())
}

export const sleep = async (ms: number) => await new Promise(resolve => setTimeout(resolve, ms))

/**
 * Resolves once `check` holds, testing it again every few ms. No time budget of its own: a
 * condition that never comes is caught by the test runner's timeout, not by a guess at how
 * fast a busy machine is. `what` names the condition in that failure.
 */
export async function waitUntil (what: string, check: () => boolean | Promise<boolean>, signal?: AbortSignal): Promise<void> {
  while (!(await check())) {
    if (signal?.aborted === true) throw new Error(`gave up waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
