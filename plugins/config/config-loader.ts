import { existsSync, readFileSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { Compile } from 'typebox/compile'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { ConfigError, fieldError } from './config-errors.js'
import { defaultConfigPath, packageRoot } from './config-location.js'
import { ConfigSchema, type ConfigFile } from './config-schema.js'
import { applyEnvOverrides } from './env-overrides.js'
import { writeFreshConfig } from './first-start.js'
import { resolveNamedKeys } from './key-settings.js'
import type { ProxyConfig, UsageSettings } from './proxy-config.js'
import { describeSchemaError, fieldOf, type SchemaError } from './schema-errors.js'
import { checkTokens } from './token-rules.js'
import { resolveUpstreams } from './upstream-settings.js'
import { checkRedisUrl } from './url-credentials.js'

// The config's modules, re-exported for the importers that know this one.
export { ConfigError, ConfigNotWritableError } from './config-errors.js'
export { DEFAULT_CONFIG_PATH, defaultConfigPath, packageRoot } from './config-location.js'
export { isPlaceholderToken, PLACEHOLDER_TOKENS } from './placeholder-tokens.js'
export type { KeyCaps, KeyLimits, NamedKeySettings, PreviousKeySettings, ProxyConfig, UpstreamSettings, UsageSettings } from './proxy-config.js'
export { MIN_TOKEN_LENGTH, secretSha256Hex, sharedSeedTokens, shortTokenFields } from './token-rules.js'
export { redactUrlCredentials } from './url-credentials.js'

const validator = Compile(ConfigSchema)
const SECOND = 1000

export interface LoadOptions {
  /** path given by --config or OLLAMA_PROXY_CONFIG; undefined means the default path */
  path?: string
  env?: NodeJS.ProcessEnv
  /** create the default file with fresh tokens when it does not exist (only for the default path) */
  createIfMissing?: boolean
  onCreated?: (file: string) => void
  /** the default file when `path` is undefined; defaultConfigPath() unless given (tests) */
  defaultPath?: string
}

/**
 * Finds, reads (through symlinks) and validates the config file; with `createIfMissing`, a
 * missing default file is first created (first-start.ts). Throws ConfigError, one line naming
 * the file (and the field): no such file, unreadable, invalid (see parseConfig); a
 * ConfigNotWritableError when the first-start file cannot be created.
 */
export function loadConfig (options: LoadOptions = {}): ProxyConfig {
  const env = options.env ?? process.env
  const explicit = options.path !== undefined
  const file = options.path !== undefined ? resolve(options.path) : (options.defaultPath ?? defaultConfigPath())
  if (!existsSync(file)) {
    if (explicit || options.createIfMissing !== true) {
      throw new ConfigError(`${file}: config file not found`, { file })
    }
    writeFreshConfig(file)
    options.onCreated?.(file)
  }
  return parseConfig(readConfigText(file), file, env)
}

/** The config file's text (through symlinks). Throws a one-line ConfigError naming the file when it cannot be read. */
export function readConfigText (file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as { code?: string }).code
    const reason = code === 'EACCES' || code === 'EPERM' ? `permission denied (running as uid ${process.getuid?.() ?? '?'}); make it readable for this user` : `cannot be read (${code ?? (err as Error).message})`
    throw new ConfigError(`${file}: the config file ${reason}`, { file })
  }
}

/** YAML's own message as one line: `at line L, column C: <what>`, never ending in a colon. */
function describeYamlError (err: unknown): string {
  if (!(err instanceof YAMLParseError)) return String(err).split('\n')[0]
  const what = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?\s*$/, '').replace(/[:\s]+$/, '')
  const at = err.linePos?.[0]
  return at === undefined ? what : `at line ${at.line}, column ${at.col}: ${what}`
}

/**
 * Parses and validates a config file's text (`file` only names it in messages); throws a
 * one-line ConfigError naming the file and the field (or the environment variable that set
 * it). `requireToken: false` accepts a file without any token, which the keys CLI opens to add
 * the first one (the proxy itself never starts without a token).
 */
export function parseConfig (text: string, file: string, env: NodeJS.ProcessEnv = {}, { requireToken = true } = {}): ProxyConfig {
  let data: unknown
  try {
    data = parseYaml(text, { prettyErrors: true })
  } catch (err) {
    throw new ConfigError(`${file}: invalid YAML ${describeYamlError(err)}`, { file })
  }
  if (data === null || data === undefined) {
    throw new ConfigError(`${file}: the file is empty; expected a mapping with an "auth" section`, { file })
  }
  const fromEnv = applyEnvOverrides(data, env)
  if (!validator.Check(data)) {
    const errors = validator.Errors(data) as SchemaError[]
    const field = fieldOf(errors[0])
    const variable = fromEnv.get(field)
    // A bad value from the environment is the variable's fault, not the file's.
    if (variable !== undefined) throw new ConfigError(`environment variable ${variable}=${JSON.stringify(env[variable])}: ${describeSchemaError(errors, data).replace(/^[^:]*: /, '')}`, { field })
    throw new ConfigError(`${file}: ${describeSchemaError(errors, data)}`, { file, field })
  }
  return resolveConfig(data, file, requireToken)
}

function seconds (value: number | undefined, fallback: number): number {
  return Math.round((value ?? fallback) * SECOND)
}

/** The usage store's settings: paths relative to the installation folder, a time zone Intl knows. */
function resolveUsage (usage: ConfigFile['usage'], file: string): UsageSettings {
  const database = usage?.database ?? 'data/usage.sqlite'
  let timezone = 'UTC'
  if (usage?.timezone !== undefined) {
    try {
      timezone = new Intl.DateTimeFormat('en-US', { timeZone: usage.timezone }).resolvedOptions().timeZone
    } catch {
      throw fieldError(file, 'usage.timezone', `expected an IANA time zone name ("UTC", "Europe/Berlin"); got ${JSON.stringify(usage.timezone)}`)
    }
  }
  return {
    database: isAbsolute(database) ? database : resolve(packageRoot(), database),
    timezone,
    retentionDays: usage?.retention_days ?? 400
  }
}

function resolveConfig (data: ConfigFile, file: string, requireToken: boolean): ProxyConfig {
  const service = data.service ?? {}
  const upstreams = resolveUpstreams(service, file)
  const auth = {
    generateTokens: data.auth.generate_tokens ?? [],
    modelTokens: data.auth.model_tokens ?? [],
    metricsTokens: data.auth.metrics_tokens ?? [],
    keys: resolveNamedKeys(data.auth.keys ?? [], file)
  }
  checkTokens(auth, file, requireToken)

  const server = data.server ?? {}
  const bodyLimit = server.body_limit ?? 100 * 1024 * 1024
  return {
    file,
    auth,
    service: {
      upstreams,
      connectTimeoutMs: seconds(service.connect_timeout, 10),
      firstByteTimeoutMs: seconds(service.first_byte_timeout, 600),
      idleTimeoutMs: seconds(service.idle_timeout, 600),
      maxConnections: service.max_connections ?? null,
      queueSize: service.queue_size ?? 100,
      queueTimeoutMs: seconds(service.queue_timeout, 30),
      healthIntervalMs: seconds(service.health_interval, 5),
      healthyThreshold: service.healthy_threshold ?? 1,
      unhealthyThreshold: service.unhealthy_threshold ?? 2,
      refreshIntervalMs: seconds(service.refresh_interval, 30)
    },
    server: {
      host: server.host ?? '0.0.0.0',
      port: server.port ?? 8080,
      bodyLimit,
      uploadLimit: server.upload_limit ?? null,
      // Ollama parses the form with 25 MiB of memory (middleware/openai.go, ParseMultipartForm(25 << 20)).
      transcriptionLimit: server.transcription_limit ?? 25 * 1024 * 1024,
      maxBodyBytesInFlight: server.max_body_bytes_in_flight ?? 4 * bodyLimit,
      bodyTimeoutMs: seconds(server.body_timeout, 60),
      maxConnections: server.max_connections ?? 2048,
      headersTimeoutMs: seconds(server.headers_timeout, 30),
      drainTimeoutMs: seconds(server.drain_timeout, 30),
      trustProxy: server.trust_proxy ?? false
    },
    cors: { origins: data.cors?.origins ?? '*', maxAge: data.cors?.max_age ?? 43200 },
    log: { level: data.log?.level ?? 'info' },
    redis: data.redis !== undefined ? { url: checkRedisUrl(data.redis.url, file), prefix: data.redis.prefix ?? 'ollama-proxy:' } : null,
    usage: resolveUsage(data.usage, file),
    ui: { enabled: data.ui?.enabled ?? true }
  }
}
