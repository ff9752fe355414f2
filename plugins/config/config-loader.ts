import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Compile } from 'typebox/compile'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { ConfigSchema, type ConfigFile, type NamedKeyConfig } from './config-schema.js'

/** The default config file, relative to the package root (not to the shell's folder). */
export const DEFAULT_CONFIG_PATH = 'config/config.yaml'

/**
 * The folder holding the proxy's package.json, found from this module's own location, so the
 * default config is the installation's whatever folder the process starts in (works from the
 * sources under tsx and from dist/ alike).
 */
export function packageRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) return process.cwd()
    dir = parent
  }
  return dir
}

/** Absolute path of the default config file: `<package root>/config/config.yaml`. */
export function defaultConfigPath (): string {
  return join(packageRoot(), DEFAULT_CONFIG_PATH)
}

// Tokens printed in the README and the example file: publicly known, so never accepted.
export const PLACEHOLDER_TOKENS = new Set([
  'your-generate-token-1', 'your-generate-token-2', 'your-model-token-1', 'your-model-token-2',
  'change-me-generate-token', 'change-me-model-token', 'change-me-metrics-token', 'change-me-named-token', 'change-me',
  'changeme', 'secret', 'token', 'password', 'your-token', 'your-key', 'your-api-key', 'api-key', 'xxx'
])

/**
 * A token the documentation shows instead of a real one: the list above (any case), anything
 * starting with "change-me"/"changeme"/"your-", and any `<...>` slot such as `<secret>`,
 * `<a generate token>` or `sha256:<64 hex>`.
 */
export function isPlaceholderToken (token: string): boolean {
  const lower = token.trim().toLowerCase()
  return PLACEHOLDER_TOKENS.has(lower) || /^(change-?me|your-)/.test(lower) || /<[^<>]*>/.test(lower)
}

/**
 * One Ollama host. `url` is the origin only (safe to log); a path in the configured URL (Ollama
 * behind a front on a sub-path) is `basePath`, and `user:password@` in it becomes `authorization`.
 */
export interface UpstreamSettings {
  url: string
  name: string
  maxConcurrent: number | null
  /** '' or a path without a trailing slash ('/ollama'), put before every Ollama path. */
  basePath: string
  /** `Basic <base64>` sent to this host instead of the client's credentials, or null. */
  authorization: string | null
}

export interface ProxyConfig {
  file: string
  auth: {
    generateTokens: string[]
    modelTokens: string[]
    metricsTokens: string[]
    keys: NamedKeyConfig[]
  }
  service: {
    upstreams: UpstreamSettings[]
    connectTimeoutMs: number
    firstByteTimeoutMs: number
    idleTimeoutMs: number
    maxConnections: number | null
    queueSize: number
    queueTimeoutMs: number
    healthIntervalMs: number
    healthyThreshold: number
    unhealthyThreshold: number
    refreshIntervalMs: number
  }
  server: {
    host: string
    port: number
    bodyLimit: number
    uploadLimit: number | null
    /** Bytes of a multipart /v1/audio/transcriptions body, buffered to read its model. */
    transcriptionLimit: number
    /** Bytes of request bodies all requests together may hold; past it, 503. */
    maxBodyBytesInFlight: number
    /** Time to receive a buffered body; for streamed uploads, the longest pause between bytes. */
    bodyTimeoutMs: number
    /** Open client connections; a request on a connection past it gets 503 and the connection closes. */
    maxConnections: number
    headersTimeoutMs: number
    drainTimeoutMs: number
    trustProxy: boolean | string | string[]
  }
  cors: { origins: '*' | string[], maxAge: number }
  log: { level: string }
  redis: { url: string, prefix: string } | null
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

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

export function loadConfig (options: LoadOptions = {}): ProxyConfig {
  const env = options.env ?? process.env
  const explicit = options.path !== undefined
  const file = options.path !== undefined ? resolve(options.path) : (options.defaultPath ?? defaultConfigPath())
  if (!existsSync(file)) {
    if (explicit || options.createIfMissing !== true) {
      throw new ConfigError(`${file}: config file not found`)
    }
    writeFreshConfig(file)
    options.onCreated?.(file)
  }
  return parseConfig(readFileSync(file, 'utf8'), file, env)
}

/**
 * Parses and validates a config file's text (`file` only names it in messages); throws a
 * one-line ConfigError. `requireToken: false` accepts a file without any token, which the
 * keys CLI opens to add the first one (the proxy itself never starts without a token).
 */
export function parseConfig (text: string, file: string, env: NodeJS.ProcessEnv = {}, { requireToken = true } = {}): ProxyConfig {
  let data: unknown
  try {
    data = parseYaml(text, { prettyErrors: true })
  } catch (err) {
    const detail = err instanceof YAMLParseError ? err.message.split('\n')[0] : String(err)
    throw new ConfigError(`${file}: invalid YAML: ${detail}`)
  }
  if (data === null || data === undefined) {
    throw new ConfigError(`${file}: the file is empty; expected a mapping with an "auth" section`)
  }
  const fromEnv = applyEnvOverrides(data, env)
  if (!validator.Check(data)) {
    const errors = validator.Errors(data) as SchemaError[]
    const field = fieldOf(errors[0])
    const variable = fromEnv.get(field)
    // A bad value from the environment is the variable's fault, not the file's.
    if (variable !== undefined) throw new ConfigError(`environment variable ${variable}=${JSON.stringify(env[variable])}: ${describeSchemaError(errors, data).replace(/^[^:]*: /, '')}`)
    throw new ConfigError(`${file}: ${describeSchemaError(errors, data)}`)
  }
  return resolveConfig(data, file, requireToken)
}

/** Writes the env overrides into the parsed file; returns which field each variable set. */
function applyEnvOverrides (data: unknown, env: NodeJS.ProcessEnv): Map<string, string> {
  const fromEnv = new Map<string, string>()
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return fromEnv
  const root = data as Record<string, Record<string, unknown> | undefined>
  const section = (name: string): Record<string, unknown> => {
    const current = root[name]
    if (current === undefined || current === null) root[name] = {}
    return root[name] as Record<string, unknown>
  }
  if (env.OLLAMA_BASE_URL) {
    const service = section('service')
    service.base_url = env.OLLAMA_BASE_URL
    delete service.upstreams
    fromEnv.set('service.base_url', 'OLLAMA_BASE_URL')
  }
  if (env.HOST) {
    section('server').host = env.HOST
    fromEnv.set('server.host', 'HOST')
  }
  if (env.PORT) {
    const port = /^\d+$/.test(env.PORT.trim()) ? Number(env.PORT) : NaN
    section('server').port = Number.isInteger(port) ? port : env.PORT
    fromEnv.set('server.port', 'PORT')
  }
  if (env.LOG_LEVEL) {
    section('log').level = env.LOG_LEVEL
    fromEnv.set('log.level', 'LOG_LEVEL')
  }
  return fromEnv
}

interface SchemaError { instancePath: string, schemaPath: string, message: string, keyword: string, params: Record<string, unknown> }

function fieldOf (error: SchemaError | undefined): string {
  return error?.instancePath.replace(/^\//, '').replaceAll('/', '.') || '(top level)'
}

function valueAt (data: unknown, instancePath: string): unknown {
  let node = data
  for (const part of instancePath.split('/').slice(1)) node = (node as Record<string, unknown> | undefined)?.[part]
  return node
}

function describeSchemaError (errors: SchemaError[], data: unknown): string {
  const error = errors[0]
  if (error === undefined) return 'invalid configuration'
  const field = fieldOf(error)
  // A union of literals (log.level, scopes) fails once per literal: name them all.
  const here = errors.filter(e => e.instancePath === error.instancePath)
  const allowed = here.filter(e => e.keyword === 'const').map(e => String(e.params.allowedValue))
  if (allowed.length > 1 && here.every(e => e.keyword === 'const' || e.keyword === 'anyOf')) {
    return `${field}: expected one of ${allowed.join(', ')}; got ${JSON.stringify(valueAt(data, error.instancePath))}`
  }
  if (error.keyword === 'boolean' || error.keyword === 'additionalProperties') {
    return `${field}: unknown key; check its spelling against config/config.example.yaml`
  }
  if (error.keyword === 'required') {
    const missing = (error.params.requiredProperties as string[] | undefined)?.join(', ') ?? ''
    return `${field}: missing required key "${missing}"`
  }
  const description = schemaAt(error.schemaPath)?.description
  return `${field}: ${description !== undefined ? `expected ${description}` : error.message.replace(/^must/, 'expected to')}`
}

function schemaAt (pointer: string): { description?: string } | undefined {
  let node: unknown = ConfigSchema
  for (const part of pointer.replace(/^#\/?/, '').split('/').filter(Boolean)) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<string, unknown>)[part]
  }
  return typeof node === 'object' && node !== null ? node as { description?: string } : undefined
}

function seconds (value: number | undefined, fallback: number): number {
  return Math.round((value ?? fallback) * SECOND)
}

function resolveConfig (data: ConfigFile, file: string, requireToken: boolean): ProxyConfig {
  const service = data.service ?? {}
  const upstreams = service.upstreams !== undefined
    ? service.upstreams.map((u, i) => ({ ...upstreamAddress(u.url, file, `service.upstreams.${i}.url`), name: u.name ?? neutralHostName(i), maxConcurrent: u.max_concurrent ?? null }))
    : [{ ...upstreamAddress(service.base_url ?? 'http://localhost:11434', file, 'service.base_url'), name: neutralHostName(0), maxConcurrent: null }]
  const names = new Set(upstreams.map(u => u.name))
  if (names.size !== upstreams.length) {
    throw new ConfigError(`${file}: service.upstreams: every upstream needs a distinct name (unnamed ones are called host-1, host-2, ... by position)`)
  }

  const auth = {
    generateTokens: data.auth.generate_tokens ?? [],
    modelTokens: data.auth.model_tokens ?? [],
    metricsTokens: data.auth.metrics_tokens ?? [],
    keys: data.auth.keys ?? []
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
    redis: data.redis !== undefined ? { url: checkRedisUrl(data.redis.url, file), prefix: data.redis.prefix ?? 'ollama-proxy:' } : null
  }
}

/** A redis(s) URL that parses; the message never repeats the value, which may hold a password. */
function checkRedisUrl (value: string, file: string): string {
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {
    // reported below
  }
  if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    throw new ConfigError(`${file}: redis.url: expected redis://[user:password@]host[:port][/db] or rediss://...; the value is not shown because it may hold a password`)
  }
  return value
}

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*@/gi

/** Replaces the user:password part of every URL in a text with "***"; for messages that may quote a URL. */
export function redactUrlCredentials (text: string): string {
  return text.replace(URL_CREDENTIALS, '$1***@')
}

/** Splits an Ollama URL into what may be logged (origin), its path prefix and its credentials. */
function upstreamAddress (value: string, file: string, field: string): Pick<UpstreamSettings, 'url' | 'basePath' | 'authorization'> {
  let url: URL
  // The message names the field, never the value: it may hold a password.
  const refuse = () => new ConfigError(`${file}: ${field}: expected an http(s) URL (http://host:port, optionally with a path and user:password@)`)
  try {
    url = new URL(value)
  } catch {
    throw refuse()
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refuse()
  if (url.search !== '' || url.hash !== '') {
    throw new ConfigError(`${file}: ${field}: an Ollama URL takes no query or fragment`)
  }
  let authorization: string | null = null
  if (url.username !== '' || url.password !== '') {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
    authorization = `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`
  }
  return { url: url.origin, basePath: url.pathname.replace(/\/+$/, ''), authorization }
}

/**
 * The name of an upstream the config leaves unnamed: `host-<position from 1>`. Names reach
 * clients (keyless /readyz, X-Ollama-Upstream, fan-out errors), so they never carry the address.
 */
function neutralHostName (index: number): string {
  return `host-${index + 1}`
}

function checkTokens (auth: ProxyConfig['auth'], file: string, requireToken: boolean): void {
  const all: Array<[string, string]> = [
    ...auth.generateTokens.map((t, i): [string, string] => [`auth.generate_tokens.${i}`, t]),
    ...auth.modelTokens.map((t, i): [string, string] => [`auth.model_tokens.${i}`, t]),
    ...auth.metricsTokens.map((t, i): [string, string] => [`auth.metrics_tokens.${i}`, t]),
    ...auth.keys.map((k, i): [string, string] => [`auth.keys.${i}.key`, k.key])
  ]
  if (all.length === 0 && requireToken) {
    throw new ConfigError(`${file}: auth: no token configured; add at least one to auth.generate_tokens, auth.model_tokens or auth.keys (npx ollama-proxy keys add NAME --scopes generate)`)
  }
  for (const [field, token] of all) {
    if (isPlaceholderToken(token)) {
      throw new ConfigError(`${file}: ${field}: this is a placeholder from the documentation, not a secret; put a token of your own there (openssl rand -hex 32), or delete it and mint a named key with: npx ollama-proxy keys add NAME --scopes generate`)
    }
    if (token.startsWith('sha256:') && !/^sha256:[0-9a-f]{64}$/i.test(token)) {
      throw new ConfigError(`${file}: ${field}: expected "sha256:" followed by 64 hex digits`)
    }
  }
  const names = new Set<string>()
  for (const key of auth.keys) {
    if (names.has(key.name)) throw new ConfigError(`${file}: auth.keys: the name "${key.name}" is used twice`)
    names.add(key.name)
  }
  const firstByDigest = new Map<string, string>()
  for (const [field, token] of all) {
    const digest = secretDigest(token)
    const first = firstByDigest.get(digest)
    if (first === undefined) {
      firstByDigest.set(digest, field)
    } else if (field.startsWith('auth.keys.') || first.startsWith('auth.keys.')) {
      // A named key shares its secret: one entry would hide the other's allowlist and limits.
      throw new ConfigError(`${file}: ${first} and ${field} hold the same secret; give every named key a secret of its own`)
    }
  }
}

/** The SHA-256 (hex) a config entry stands for: plaintext is hashed, "sha256:<hex>" is taken as is. */
export function secretDigest (configured: string): string {
  return configured.startsWith('sha256:') ? configured.slice(7).toLowerCase() : createHash('sha256').update(configured).digest('hex')
}

/**
 * Pairs of seed-list entries (generate_tokens, model_tokens, metrics_tokens) that hold the same
 * secret. That is how the seed grants one token several lists' rights, so it is allowed; start-up
 * and reload log a warning naming both fields. Named keys never share a secret (loadConfig refuses).
 */
export function sharedSeedTokens (config: ProxyConfig): Array<[string, string]> {
  const seen = new Map<string, string>()
  const pairs: Array<[string, string]> = []
  const scan = (list: string[], name: string) => list.forEach((token, i) => {
    const digest = secretDigest(token)
    const first = seen.get(digest)
    if (first !== undefined) pairs.push([first, `${name}.${i}`])
    else seen.set(digest, `${name}.${i}`)
  })
  scan(config.auth.generateTokens, 'auth.generate_tokens')
  scan(config.auth.modelTokens, 'auth.model_tokens')
  scan(config.auth.metricsTokens, 'auth.metrics_tokens')
  return pairs
}

/** Tokens shorter than this are guessable; start-up warns about them. */
export const MIN_TOKEN_LENGTH = 16

export function shortTokenFields (config: ProxyConfig): string[] {
  const fields: string[] = []
  const check = (list: string[], name: string) => list.forEach((t, i) => {
    if (!t.startsWith('sha256:') && t.length < MIN_TOKEN_LENGTH) fields.push(`${name}.${i}`)
  })
  check(config.auth.generateTokens, 'auth.generate_tokens')
  check(config.auth.modelTokens, 'auth.model_tokens')
  check(config.auth.metricsTokens, 'auth.metrics_tokens')
  config.auth.keys.forEach((k, i) => {
    if (!k.key.startsWith('sha256:') && k.key.length < MIN_TOKEN_LENGTH) fields.push(`auth.keys.${i}.key`)
  })
  return fields
}

function writeFreshConfig (file: string): void {
  const token = () => randomBytes(24).toString('base64url')
  mkdirSync(dirname(file), { recursive: true })
  const text = [
    '# Created by ollama-proxy on first start with fresh random tokens.',
    '# Every field is documented in config/config.example.yaml.',
    'auth:',
    '  generate_tokens:',
    `    - "${token()}"`,
    '  model_tokens:',
    `    - "${token()}"`,
    'service:',
    '  base_url: "http://localhost:11434"',
    ''
  ].join('\n')
  writeFileSync(file, text, { mode: 0o600, flag: 'wx' })
}
