import { Type, type Static } from 'typebox'

// Every section is closed (additionalProperties: false) so a typo in the file is an error
// at start-up instead of a setting that silently does nothing.
const closed = { additionalProperties: false } as const

const Seconds = (description: string) => Type.Number({ exclusiveMinimum: 0, description })

export const HttpUrl = Type.String({ pattern: '^https?://[^\\s/]+', description: 'an http(s) URL' })

export const Scope = Type.Union([
  Type.Literal('generate'),
  Type.Literal('models:read'),
  Type.Literal('models:admin')
])

export const KeyLimits = Type.Object({
  requests_per_minute: Type.Optional(Type.Integer({ minimum: 1 })),
  tokens_per_minute: Type.Optional(Type.Integer({ minimum: 1 })),
  concurrent: Type.Optional(Type.Integer({ minimum: 1 }))
}, closed)

export const NamedKey = Type.Object({
  name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'a name of letters, digits, dot, dash or underscore' }),
  key: Type.String({ minLength: 1 }),
  scopes: Type.Array(Scope, { minItems: 1 }),
  models: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
  limits: Type.Optional(KeyLimits)
}, closed)

export const Upstream = Type.Object({
  url: HttpUrl,
  name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' })),
  max_concurrent: Type.Optional(Type.Integer({ minimum: 1 }))
}, closed)

export const ConfigSchema = Type.Object({
  auth: Type.Object({
    generate_tokens: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    model_tokens: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    metrics_tokens: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    keys: Type.Optional(Type.Array(NamedKey))
  }, closed),
  service: Type.Optional(Type.Object({
    base_url: Type.Optional(HttpUrl),
    upstreams: Type.Optional(Type.Array(Upstream, { minItems: 1 })),
    connect_timeout: Type.Optional(Seconds('seconds to open a connection to Ollama')),
    first_byte_timeout: Type.Optional(Seconds('seconds to wait for the first byte of an answer')),
    idle_timeout: Type.Optional(Seconds('seconds allowed between two chunks of an answer')),
    max_connections: Type.Optional(Type.Integer({ minimum: 1 })),
    queue_size: Type.Optional(Type.Integer({ minimum: 0 })),
    queue_timeout: Type.Optional(Seconds('seconds a request may wait for a free upstream')),
    health_interval: Type.Optional(Seconds('seconds between upstream health checks')),
    healthy_threshold: Type.Optional(Type.Integer({ minimum: 1 })),
    unhealthy_threshold: Type.Optional(Type.Integer({ minimum: 1 })),
    refresh_interval: Type.Optional(Seconds('seconds between model list refreshes'))
  }, closed)),
  server: Type.Optional(Type.Object({
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'a port number from 0 to 65535' })),
    body_limit: Type.Optional(Type.Integer({ minimum: 1, description: 'bytes' })),
    upload_limit: Type.Optional(Type.Integer({ minimum: 1, description: 'bytes' })),
    transcription_limit: Type.Optional(Type.Integer({ minimum: 1, description: 'bytes of a multipart transcription upload' })),
    max_body_bytes_in_flight: Type.Optional(Type.Integer({ minimum: 1, description: 'bytes of request bodies held at once' })),
    body_timeout: Type.Optional(Seconds('seconds a client has to send a buffered body (longest pause in a streamed upload)')),
    max_connections: Type.Optional(Type.Integer({ minimum: 1, description: 'open client connections' })),
    headers_timeout: Type.Optional(Seconds('seconds for a client to send its request headers')),
    drain_timeout: Type.Optional(Type.Number({ minimum: 0 })),
    trust_proxy: Type.Optional(Type.Union([Type.Boolean(), Type.String(), Type.Array(Type.String())]))
  }, closed)),
  cors: Type.Optional(Type.Object({
    origins: Type.Optional(Type.Union([Type.Literal('*'), Type.Array(Type.String({ minLength: 1 }))])),
    max_age: Type.Optional(Type.Integer({ minimum: 0 }))
  }, closed)),
  log: Type.Optional(Type.Object({
    level: Type.Optional(Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l))))
  }, closed)),
  redis: Type.Optional(Type.Object({
    url: Type.String({ pattern: '^rediss?://' }),
    prefix: Type.Optional(Type.String())
  }, closed))
}, closed)

export type ConfigFile = Static<typeof ConfigSchema>
export type KeyScope = Static<typeof Scope>
export type NamedKeyConfig = Static<typeof NamedKey>
export type UpstreamConfig = Static<typeof Upstream>
