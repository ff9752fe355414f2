import Fastify from 'fastify'
import fp from 'fastify-plugin'
import { parseArgs } from 'node:util'
import app, { serverOptions } from './app.js'
import { createLogger } from './logger.js'
import { ConfigError, loadConfig, redactUrlCredentials, sharedSeedTokens, shortTokenFields, type ProxyConfig } from '../plugins/config/config-loader.js'
import { handleShutdownSignals } from './shutdown.js'

function readConfig (): { config: ProxyConfig, created: string | undefined } {
  const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } }, allowPositionals: false })
  const path = values.config ?? (process.env.OLLAMA_PROXY_CONFIG || undefined)
  let created: string | undefined
  const config = loadConfig({ path, createIfMissing: true, onCreated: file => { created = file } })
  return { config, created }
}

async function main (): Promise<void> {
  let loaded: ReturnType<typeof readConfig>
  try {
    loaded = readConfig()
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
  handleShutdownSignals(server, { drainTimeoutMs: config.server.drainTimeoutMs })
  await server.listen({ host: config.server.host, port: config.server.port })
  logger.info({
    address: server.addresses().map(a => typeof a === 'string' ? a : `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`),
    config: config.file,
    upstreams: config.service.upstreams.map(u => u.url),
    keys: server.keyRing.size
  }, 'ollama-proxy ready')
}

main().catch((err: unknown) => {
  // Errors from ioredis or the listener may quote a URL; its credentials never reach the terminal.
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err)
  console.error(`ollama-proxy failed to start: ${redactUrlCredentials(detail)}`)
  process.exit(1)
})
