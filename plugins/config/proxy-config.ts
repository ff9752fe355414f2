import type { KeyScope } from './config-schema.js'

/**
 * One Ollama host. `url` is the origin only (safe to log); a path in the configured URL (Ollama
 * behind a front on a sub-path) is `basePath`, and `user:password@` in it becomes `authorization`.
 */
export interface UpstreamSettings {
  url: string
  name: string
  /** Requests this host serves at once (`max_concurrent`; `service.max_concurrent` for base_url), or null for no cap. */
  maxConcurrent: number | null
  /** '' or a path without a trailing slash ('/ollama'), put before every Ollama path. */
  basePath: string
  /** `Basic <base64>` sent to this host instead of the client's credentials, or null. */
  authorization: string | null
  /**
   * Fixed headers for a front before this host (`headers:`), sent on every request and health
   * check to it: names lower-cased HTTP tokens, values as configured. Values are secrets (service
   * tokens): never log or show them. `{}` when none.
   */
  headers: Record<string, string>
}

/** A named key's limits; null where the file sets none. Counts are requests or tokens (prompt + completion). */
export interface KeyLimits {
  requestsPerMinute: number | null
  tokensPerMinute: number | null
  /** Requests at once. */
  concurrent: number | null
  /** Tokens per calendar day in `usage.timezone`. */
  tokensPerDay: number | null
  /** Tokens per calendar month in `usage.timezone`. */
  tokensPerMonth: number | null
  requestsPerDay: number | null
  /** Requests of this key that may wait for a host; null: only the shared `service.queue_size` bounds them. */
  queued: number | null
}

/** What one request of a key may ask of the GPU (`caps:`); null where uncapped. */
export interface KeyCaps {
  /** Largest `options.num_ctx`, in tokens. */
  numCtx: number | null
  /** Longest `keep_alive`, in seconds; when set, a negative keep_alive (forever) is refused too. */
  keepAliveSeconds: number | null
  /** Whether `keep_alive: 0` (unload the model now) is allowed; true unless `unload: false`. */
  unload: boolean
}

/** An old secret of a rotated key, valid as the same key until `expiresAt`. */
export interface PreviousKeySettings {
  /** Plaintext or "sha256:<64 hex>", as in the file. */
  key: string
  /** ms since the epoch; the secret is refused from then on. */
  expiresAt: number
}

/** A named key (`auth.keys[]`) as the proxy applies it. */
export interface NamedKeySettings {
  name: string
  /** The configured secret: plaintext or "sha256:<64 hex>". */
  key: string
  scopes: KeyScope[]
  /** The allowlist as written (every entry checked to be a glob or a name Ollama accepts); null for every model. */
  models: string[] | null
  limits: KeyLimits
  caps: KeyCaps
  /** ms since the epoch from which the key is refused (a date alone: the next day's 00:00 UTC), or null. */
  expiresAt: number | null
  /** Share of the GPU when keys queue for a host (positive integer, default 1). */
  weight: number
  previousKeys: PreviousKeySettings[]
}

/** Where and how usage is recorded (`usage:`). */
export interface UsageSettings {
  /** Absolute path of the SQLite file. */
  database: string
  /** IANA time zone where days and months begin. */
  timezone: string
  /** Days of usage kept. */
  retentionDays: number
}

/** The validated configuration, with defaults applied and times in ms. */
export interface ProxyConfig {
  /** The config file's path as given (absolute). */
  file: string
  auth: {
    generateTokens: string[]
    modelTokens: string[]
    metricsTokens: string[]
    keys: NamedKeySettings[]
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
  usage: UsageSettings
  /** The admin page at /proxy/ui/. */
  ui: { enabled: boolean }
}
