import { Type, type Static } from 'typebox'

// Every section is closed (additionalProperties: false) so a typo in the file is an error
// at start-up instead of a setting that silently does nothing.
const closed = { additionalProperties: false } as const

/** The longest wait a Node.js timer holds (2^31 - 1 ms); a longer one fires at once. */
const MAX_TIMER_SECONDS = 2_147_483
const Seconds = (description: string) => Type.Number({ exclusiveMinimum: 0, maximum: MAX_TIMER_SECONDS, description: `${description}: more than 0, at most ${MAX_TIMER_SECONDS} (24 days)` })
/** A whole number JavaScript holds exactly: larger ones break counting, weights and headers. */
const Whole = (minimum: number, description?: string) => Type.Integer({ minimum, maximum: Number.MAX_SAFE_INTEGER, ...(description === undefined ? {} : { description }) })

export const HttpUrl = Type.String({ pattern: '^https?://[^\\s/]+', description: 'an http(s) URL' })

// None implies another except that generate and models:admin each include models:read
// (plugins/auth/keys.ts IMPLIED_SCOPES); the seed lists get none of the last three.
export const Scope = Type.Union([
  Type.Literal('generate'),
  Type.Literal('models:read'),
  Type.Literal('models:admin'),
  Type.Literal('metrics'),
  Type.Literal('usage:read'),
  Type.Literal('keys:admin')
])

const AtLeastOne = (description: string) => Whole(1, description)
const ZeroOrMore = (description: string) => Whole(0, description)

/** ISO 8601; checked further (a real calendar date) when the config is resolved. */
export const IsoTime = Type.String({ minLength: 1, description: 'an ISO 8601 date ("2027-06-30") or date and time ("2027-06-30T18:00:00Z")' })

export const KeyLimits = Type.Object({
  requests_per_minute: Type.Optional(AtLeastOne('a whole number of requests, at least 1')),
  tokens_per_minute: Type.Optional(AtLeastOne('a whole number of tokens, at least 1')),
  concurrent: Type.Optional(AtLeastOne('a whole number of requests at once, at least 1')),
  tokens_per_day: Type.Optional(ZeroOrMore('a whole number of tokens, 0 or more')),
  tokens_per_month: Type.Optional(ZeroOrMore('a whole number of tokens, 0 or more')),
  requests_per_day: Type.Optional(ZeroOrMore('a whole number of requests, 0 or more')),
  queued: Type.Optional(ZeroOrMore('a whole number of waiting requests, 0 or more'))
}, closed)

export const KeyCaps = Type.Object({
  num_ctx: Type.Optional(AtLeastOne('a whole number of tokens, at least 1')),
  keep_alive: Type.Optional(Type.Union([Type.String(), Type.Number()], { description: 'a duration as Ollama reads keep_alive: "30m", "1h", or a number of seconds' })),
  unload: Type.Optional(Type.Boolean({ description: 'true or false' }))
}, closed)

export const PreviousKey = Type.Object({
  key: Type.String({ minLength: 1 }),
  expires_at: IsoTime
}, closed)

export const KeyName = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'a name of letters, digits, dot, dash or underscore' })

export const NamedKey = Type.Object({
  name: KeyName,
  key: Type.String({ minLength: 1 }),
  scopes: Type.Array(Scope, { minItems: 1 }),
  models: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
  limits: Type.Optional(KeyLimits),
  caps: Type.Optional(KeyCaps),
  expires_at: Type.Optional(IsoTime),
  weight: Type.Optional(AtLeastOne('a positive whole number (default 1)')),
  previous_keys: Type.Optional(Type.Array(PreviousKey))
}, closed)

/** Header name -> value; names and values are checked further when the config is resolved. */
const Headers = Type.Record(Type.String(), Type.String({ description: 'a text value' }))

export const Upstream = Type.Object({
  url: HttpUrl,
  name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' })),
  max_concurrent: Type.Optional(AtLeastOne('a whole number of requests at once, at least 1')),
  headers: Type.Optional(Headers)
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
    max_concurrent: Type.Optional(AtLeastOne('a whole number of requests at once, at least 1')),
    headers: Type.Optional(Headers),
    connect_timeout: Type.Optional(Seconds('seconds to open a connection to Ollama')),
    first_byte_timeout: Type.Optional(Seconds('seconds to wait for the first byte of an answer')),
    idle_timeout: Type.Optional(Seconds('seconds allowed between two chunks of an answer')),
    max_connections: Type.Optional(Whole(1)),
    queue_size: Type.Optional(Whole(0)),
    queue_timeout: Type.Optional(Seconds('seconds a request may wait for a free upstream')),
    health_interval: Type.Optional(Seconds('seconds between upstream health checks')),
    healthy_threshold: Type.Optional(Whole(1)),
    unhealthy_threshold: Type.Optional(Whole(1)),
    refresh_interval: Type.Optional(Seconds('seconds between model list refreshes'))
  }, closed)),
  server: Type.Optional(Type.Object({
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'a port number from 0 to 65535' })),
    body_limit: Type.Optional(Whole(1, 'bytes')),
    upload_limit: Type.Optional(Whole(1, 'bytes')),
    transcription_limit: Type.Optional(Whole(1, 'bytes of a multipart transcription upload')),
    max_body_bytes_in_flight: Type.Optional(Whole(1, 'bytes of request bodies held at once')),
    body_timeout: Type.Optional(Seconds('seconds a client has to send a buffered body (longest pause in a streamed upload)')),
    max_connections: Type.Optional(Whole(1, 'open client connections')),
    headers_timeout: Type.Optional(Seconds('seconds for a client to send its request headers')),
    drain_timeout: Type.Optional(Type.Number({ minimum: 0, maximum: MAX_TIMER_SECONDS, description: `seconds requests in flight get on SIGTERM: 0 or more, at most ${MAX_TIMER_SECONDS} (24 days)` })),
    trust_proxy: Type.Optional(Type.Union([Type.Boolean(), Type.String(), Type.Array(Type.String())]))
  }, closed)),
  cors: Type.Optional(Type.Object({
    origins: Type.Optional(Type.Union([Type.Literal('*'), Type.Array(Type.String({ minLength: 1 }))])),
    max_age: Type.Optional(Whole(0, 'seconds a browser may cache a preflight'))
  }, closed)),
  log: Type.Optional(Type.Object({
    level: Type.Optional(Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l))))
  }, closed)),
  redis: Type.Optional(Type.Object({
    url: Type.String({ pattern: '^rediss?://' }),
    prefix: Type.Optional(Type.String())
  }, closed)),
  usage: Type.Optional(Type.Object({
    database: Type.Optional(Type.String({ minLength: 1, description: 'a file path' })),
    timezone: Type.Optional(Type.String({ minLength: 1, description: 'an IANA time zone name ("UTC", "Europe/Berlin")' })),
    // Redis keeps each day until the retention ends: a date past Redis's clock fails every sync.
    retention_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 36_500, description: 'a whole number of days, at least 1, at most 36500 (100 years)' }))
  }, closed)),
  ui: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean({ description: 'true or false' }))
  }, closed))
}, closed)

export type ConfigFile = Static<typeof ConfigSchema>
export type KeyScope = Static<typeof Scope>
export type NamedKeyConfig = Static<typeof NamedKey>
export type UpstreamConfig = Static<typeof Upstream>
export type KeyLimitsConfig = Static<typeof KeyLimits>
export type KeyCapsConfig = Static<typeof KeyCaps>
