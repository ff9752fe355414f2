import Fastify from 'fastify'
import fp from 'fastify-plugin'
import { parseArgs } from 'node:util'
import app, { serverOptions } from './app.js'
import { createLogger } from './logger.js'
import { ConfigError, loadConfig, redactUrlCredentials, sharedSeedTokens, shortTokenFields, type ProxyConfig } from '../plugins/config/config-loader.js'
import { handleShutdownSignals } from './shutdown.js'
import { UsageStoreError } from '../plugins/usage/usage-database.js'
import { reserveUploadChunkSpace } from './upload-memory.js'

export const USAGE = `Usage: ollama-proxy [--config <file>]
       ollama-proxy keys add|update|rotate|revoke|list ...   named keys in the config file (ollama-proxy keys --help)
       ollama-proxy usage [--since 7d|2026-12-01] [--until ...] [--by key,model,host,day]
                          [--format table|json|csv]   tokens and requests from the usage database

  -c, --config <file>   the config file (default: config/config.yaml in the installation,
                        or the env OLLAMA_PROXY_CONFIG)
  -h, --help            show this help

Environment:
  OLLAMA_PROXY_CONFIG   the config file, when --config is not given
  OLLAMA_BASE_URL       the Ollama address; replaces service.base_url and service.upstreams
  HOST, PORT            where to listen; replace server.host and server.port (0.0.0.0, 8080)
  LOG_LEVEL             replaces log.level: fatal, error, warn, info, debug, trace or silent
  NODE_OPTIONS          Node's own flags, e.g. --max-semi-space-size=4 where memory is short,
                        =32 where CPU is (README, "Memory and CPU")
`

/** Exit status for a command line the program does not understand (as getopt tools do). */
export const EXIT_USAGE = 2

function readArguments (): { config: string | undefined } {
  try {
    const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: false })
    if (values.help === true) {
      process.stdout.write(USAGE)
      process.exit(0)
    }
    return { config: values.config }
  } catch (err) {
    // parseArgs says what was wrong (unknown option, missing value); the usage says what is right.
    process.stderr.write(`ollama-proxy: ${(err as Error).message}\n${USAGE}`)
    process.exit(EXIT_USAGE)
  }
}

function readConfig (path: string | undefined): { config: ProxyConfig, created: string | undefined } {
  let created: string | undefined
  const config = loadConfig({ path, createIfMissing: true, onCreated: file => { created = file } })
  return { config, created }
}

/** One line for the errors a user causes and fixes outside the proxy; a stack for anything else. */
function describeListenError (err: unknown, config: ProxyConfig): string | undefined {
  const code = (err as { code?: unknown }).code
  const address = `${config.server.host}:${config.server.port}`
  if (code === 'EADDRINUSE') return `${address} is already in use: stop the other program or choose another port (server.port in ${config.file}, or PORT)`
  if (code === 'EACCES') return `not allowed to listen on ${address}: ports below 1024 need privileges; choose another port (server.port, or PORT)`
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') return `cannot listen on ${address}: no such address on this machine (server.host, or HOST)`
  return undefined
}

async function main (): Promise<void> {
  const args = readArguments()
  let loaded: ReturnType<typeof readConfig>
  try {
    loaded = readConfig(args.config ?? (process.env.OLLAMA_PROXY_CONFIG || undefined))
  } catch (err) {
    // Plain text on stderr: the logger's level and format come from the file that failed.
    console.error(`ollama-proxy: ${redactUrlCredentials(err instanceof ConfigError ? err.message : String(err))}`)
    process.exit(1)
  }
  const { config, created } = loaded
  const logger = createLogger(config.log.level)
  if (created !== undefined) {
    logger.warn({ file: created }, 'no config file found: created one with fresh random tokens (mode 0600); read the tokens there')
  }
  for (const field of shortTokenFields(config)) {
    logger.warn({ field }, 'token shorter than 16 characters: easy to guess, use a longer one')
  }
  for (const fields of sharedSeedTokens(config)) {
    logger.warn({ fields }, 'the same token is in two seed lists: it gets the rights of both')
  }

  const server = Fastify(serverOptions(config, logger))
  await server.register(fp(app), { config, watchConfig: true })
  handleShutdownSignals(server, { drainTimeoutMs: config.server.drainTimeoutMs, logger })
  try {
    await server.listen({ host: config.server.host, port: config.server.port })
  } catch (err) {
    const line = describeListenError(err, config)
    if (line === undefined) throw err
    console.error(`ollama-proxy: ${line}`)
    process.exit(1)
  }
  // After start-up, so the region lies above what the process keeps (see upload-memory.ts).
  reserveUploadChunkSpace()
  logger.info({
    address: server.addresses().map(a => typeof a === 'string' ? a : `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`),
    config: config.file,
    // `url` is the origin only: credentials from the configured URL live in `authorization`.
    upstreams: config.service.upstreams.map(u => u.url + u.basePath),
    keys: server.keyRing.size
  }, 'ollama-proxy ready')
}

main().catch((err: unknown) => {
  // A usage database that cannot be used is the user's to fix, like a config error: one line.
  if (err instanceof UsageStoreError) {
    console.error(`ollama-proxy: ${err.message}`)
    process.exit(1)
  }
  // Errors from ioredis or the listener may quote a URL; its credentials never reach the terminal.
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err)
  console.error(`ollama-proxy failed to start: ${redactUrlCredentials(detail)}`)
  process.exit(1)
})
