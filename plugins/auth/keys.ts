import { hash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { KeyScope } from '../config/config-schema.js'
import type { KeyCaps, KeyLimits, NamedKeySettings, ProxyConfig } from '../config/proxy-config.js'
import { secretSha256Hex } from '../config/token-rules.js'
import { repeatedHeader } from '../http/raw-headers.js'
import { compilePattern, type ModelPattern } from './model-names.js'

export type { KeyCaps, KeyLimits } from '../config/proxy-config.js'

/** What a route demands; 'public' routes need no key at all. */
export type Access = 'public' | KeyScope

export interface ApiKey {
  /** Shown in logs and metrics instead of the key. */
  name: string
  /** First 8 hex digits of the key's SHA-256: tells keys apart in logs, reveals nothing. */
  id: string
  /** 'generate' or 'models' for the seed's token lists, 'metrics', or 'named'. */
  kind: 'generate' | 'models' | 'metrics' | 'named'
  scopes: ReadonlySet<Access>
  /** Model allowlist, or null for every model. */
  models: readonly ModelPattern[] | null
  /** Requests and tokens (prompt + completion) per window, at once, and waiting; null where unlimited. */
  limits: KeyLimits
  /** What one request may ask of the GPU (num_ctx, keep_alive, unload). */
  caps: KeyCaps
  /** ms since the epoch from which the key is refused ({@link identify} says 'expired'), or null. */
  expiresAt: number | null
  /** Share of a host's slots while keys wait for it; positive integer, 1 unless configured. */
  weight: number
  /** SHA-256 of the key's current secret. */
  digest: Buffer
}

/**
 * A key that may chat with a model or manage models may also see them: Open WebUI and Ollama's
 * clients call /api/tags, /api/show and /api/version before they chat. What it sees is still
 * filtered by its model allowlist. Nothing implies metrics, usage:read or keys:admin.
 */
const IMPLIED_SCOPES: Partial<Record<Access, Access[]>> = {
  generate: ['models:read'],
  'models:admin': ['models:read']
}

/** The scopes a key holds: the configured ones plus those they imply ({@link IMPLIED_SCOPES}). */
export function effectiveScopes (configured: readonly Access[]): Set<Access> {
  return new Set(configured.flatMap(scope => [scope, ...(IMPLIED_SCOPES[scope] ?? [])]))
}

const SEED_GENERATE_SCOPES: Access[] = ['generate', 'models:read']
const SEED_MODEL_SCOPES: Access[] = ['models:read', 'models:admin', 'metrics']
const NO_LIMITS: KeyLimits = { requestsPerMinute: null, tokensPerMinute: null, concurrent: null, tokensPerDay: null, tokensPerMonth: null, requestsPerDay: null, queued: null }
const NO_CAPS: KeyCaps = { numCtx: null, keepAliveSeconds: null, unload: true }

/** SHA-256 of a presented token, as 32 bytes. */
export function sha256 (value: string): Buffer {
  return hash('sha256', value, 'buffer')
}

/** The 32-byte SHA-256 a config entry stands for (plaintext or "sha256:<hex>"), so the file need not hold the secret itself. */
function configuredDigestBytes (configured: string): Buffer {
  return Buffer.from(secretSha256Hex(configured), 'hex')
}

/** One secret the ring accepts: a key's current one, or a previous one valid until `validUntil` (ms). */
interface Secret {
  key: ApiKey
  digest: Buffer
  validUntil: number | null
}

/** What a presented token is: a key in force, a key past its `expiresAt`, or nothing (undefined). */
export type Lookup = { key: ApiKey } | { expired: ApiKey }

export interface KeyRingOptions {
  /** The current time in ms since the epoch, read at each lookup; Date.now unless given (tests). */
  clock?: () => number
}

/**
 * The set of valid keys. Lookup hashes the presented token once and compares digests in
 * constant time; the map is keyed by digest, so the secret itself never steers a comparison.
 * Expiry is read against the clock at each lookup, so a key expires on time without a reload.
 */
export class KeyRing {
  private bySecret = new Map<string, Secret>()
  private all: ApiKey[] = []
  /** The current time in ms since the epoch. */
  readonly clock: () => number

  /** @throws Error when a named key shares a secret with another entry (the config loader refuses this first, naming the fields). */
  constructor (auth: ProxyConfig['auth'], options: KeyRingOptions = {}) {
    this.clock = options.clock ?? Date.now
    this.load(auth)
  }

  /** Swaps in a whole new set of keys at once; requests in flight keep the key they matched. */
  load (auth: ProxyConfig['auth']): void {
    const previous = this.bySecret
    this.bySecret = new Map()
    try {
      auth.generateTokens.forEach(t => this.addSeed(t, 'generate', SEED_GENERATE_SCOPES))
      auth.modelTokens.forEach(t => this.addSeed(t, 'models', SEED_MODEL_SCOPES))
      auth.metricsTokens.forEach(t => this.addSeed(t, 'metrics', ['metrics']))
      auth.keys.forEach(k => this.addNamed(k))
    } catch (err) {
      this.bySecret = previous
      throw err
    }
    this.all = [...new Set([...this.bySecret.values()].map(secret => secret.key))]
  }

  /** Number of keys (a rotated key's previous secrets count with it). */
  get size (): number {
    return this.all.length
  }

  /** Every key, each once. */
  get keys (): ApiKey[] {
    return [...this.all]
  }

  /**
   * What `token` is at `now` (ms): `{ key }` for a key in force, `{ expired }` for a key past its
   * expiresAt, undefined for an unknown token or a previous secret past its grace.
   */
  lookup (token: string, now = this.clock()): Lookup | undefined {
    const digest = sha256(token)
    const secret = this.bySecret.get(digest.toString('hex'))
    if (secret === undefined || !timingSafeEqual(secret.digest, digest)) return undefined
    if (secret.validUntil !== null && now >= secret.validUntil) return undefined
    const { key } = secret
    return key.expiresAt !== null && now >= key.expiresAt ? { expired: key } : { key }
  }

  /** The key `token` stands for at `now` (ms), or undefined when it is unknown or expired. */
  find (token: string, now = this.clock()): ApiKey | undefined {
    const found = this.lookup(token, now)
    return found !== undefined && 'key' in found ? found.key : undefined
  }

  private addSeed (configured: string, kind: 'generate' | 'models' | 'metrics', scopes: Access[]): void {
    const digest = configuredDigestBytes(configured)
    const hex = digest.toString('hex')
    const existing = this.bySecret.get(hex)
    if (existing !== undefined) {
      this.refuseShared(existing.key.name, `${kind}-${hex.slice(0, 8)}`, existing.key.kind === 'named')
      // The same secret in two seed lists: the seed's way of granting both lists' rights.
      existing.key = { ...existing.key, scopes: new Set([...existing.key.scopes, ...scopes]) }
      return
    }
    const id = hex.slice(0, 8)
    const key: ApiKey = { name: `${kind}-${id}`, id, kind, scopes: new Set(scopes), models: null, limits: NO_LIMITS, caps: NO_CAPS, expiresAt: null, weight: 1, digest }
    this.bySecret.set(hex, { key, digest, validUntil: null })
  }

  private addNamed (config: NamedKeySettings): void {
    const digest = configuredDigestBytes(config.key)
    const current = this.bySecret.get(digest.toString('hex'))
    if (current !== undefined) this.refuseShared(current.key.name, config.name, true)
    const secrets = [{ digest, validUntil: null }, ...config.previousKeys.map(p => ({ digest: configuredDigestBytes(p.key), validUntil: p.expiresAt }))]
    for (const secret of secrets.slice(1)) {
      const existing = this.bySecret.get(secret.digest.toString('hex'))
      if (existing !== undefined) this.refuseShared(existing.key.name, config.name, true)
    }
    const key: ApiKey = {
      name: config.name,
      id: digest.toString('hex').slice(0, 8),
      kind: 'named',
      scopes: effectiveScopes(config.scopes),
      models: config.models?.map(compilePattern) ?? null,
      limits: { ...config.limits },
      caps: { ...config.caps },
      expiresAt: config.expiresAt,
      weight: config.weight,
      digest
    }
    for (const secret of secrets) this.bySecret.set(secret.digest.toString('hex'), { key, ...secret })
  }

  /** A named key's allowlist and limits would be lost in a merge. */
  private refuseShared (first: string, second: string, named: boolean): void {
    if (named) throw new Error(`keys "${first}" and "${second}" hold the same secret`)
  }
}

const SCHEME = /^(bearer|basic)\s+/i

/**
 * The keys a client presented, distinct, in header order: from `Authorization` (`Bearer <key>`
 * in any case of Bearer, the seed's bare `<key>`, or HTTP Basic with the key as the password, or
 * as the user name when the password is empty: `curl -u key:`) and from `x-api-key`. Clients may
 * send two (Claude Code: Ollama's placeholder `ollama` as Bearer, the real key as x-api-key);
 * {@link identify} decides which one counts. Node keeps only the first of several Authorization
 * headers; with `rawHeaders` (the request's, as Node read them) every one counts, so two
 * different keys are refused as ambiguous rather than one of them picked silently.
 */
export function presentedTokens (headers: IncomingHttpHeaders, rawHeaders?: readonly string[]): string[] {
  const tokens: string[] = []
  const add = (value: string | undefined) => {
    const token = value?.trim()
    if (token !== undefined && token !== '' && !tokens.includes(token)) tokens.push(token)
  }
  const addAuthorization = (authorization: string) => {
    const scheme = SCHEME.exec(authorization)?.[1]?.toLowerCase()
    const credentials = scheme === undefined ? authorization : authorization.slice(SCHEME.exec(authorization)![0].length)
    add(scheme === 'basic' ? basicKey(credentials) : credentials)
  }
  const repeated = rawHeaders === undefined ? undefined : repeatedHeader(rawHeaders, 'authorization')
  if (repeated !== undefined) for (const authorization of repeated) addAuthorization(authorization)
  else if (headers.authorization !== undefined) addAuthorization(headers.authorization)
  const apiKey = headers['x-api-key']
  add(Array.isArray(apiKey) ? apiKey[0] : apiKey)
  return tokens
}

/** The key inside HTTP Basic credentials (RFC 7617): the password, else the user name. */
function basicKey (encoded: string): string | undefined {
  const decoded = Buffer.from(encoded.trim(), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  const password = decoded.slice(colon + 1)
  return password !== '' ? password : decoded.slice(0, colon)
}

export type Identification =
  | { key: ApiKey }
  | { error: 'missing' | 'invalid' | 'ambiguous' }
  /** A known key past its expiry: answer 401 saying when (`expiredAt`, ms since the epoch), never echoing the key. */
  | { error: 'expired', name: string, expiredAt: number }

/**
 * Which key a request carries at `now` (ms; the ring's clock unless given): the one presented
 * token that is a valid key. 'missing' when no token was sent, 'ambiguous' when two different
 * valid keys were, 'expired' when none is valid but one is a key past its expiresAt, 'invalid'
 * otherwise (a previous secret past its grace included). `rawHeaders`: see {@link presentedTokens}.
 */
export function identify (ring: KeyRing, headers: IncomingHttpHeaders, now = ring.clock(), rawHeaders?: readonly string[]): Identification {
  const tokens = presentedTokens(headers, rawHeaders)
  if (tokens.length === 0) return { error: 'missing' }
  let found: ApiKey | undefined
  let expired: ApiKey | undefined
  for (const token of tokens) {
    const result = ring.lookup(token, now)
    if (result === undefined) continue
    if ('expired' in result) {
      expired ??= result.expired
      continue
    }
    if (found !== undefined && found !== result.key) return { error: 'ambiguous' }
    found = result.key
  }
  if (found !== undefined) return { key: found }
  if (expired?.expiresAt != null) return { error: 'expired', name: expired.name, expiredAt: expired.expiresAt }
  return { error: 'invalid' }
}
