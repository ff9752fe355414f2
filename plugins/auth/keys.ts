import { hash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { KeyScope, NamedKeyConfig } from '../config/config-schema.js'
import { secretDigest, type ProxyConfig } from '../config/config-loader.js'
import { compilePattern, type ModelPattern } from './model-names.js'

/** What a route demands; 'public' routes need no key at all. */
export type Access = 'public' | KeyScope | 'metrics'

export interface KeyLimits {
  requestsPerMinute: number | null
  tokensPerMinute: number | null
  concurrent: number | null
  /** Requests the key may have waiting for a host slot; null = only the shared queue_size. */
  queued: number | null
}

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
  limits: KeyLimits
  /** Share of a busy host's slots while several keys wait (1 for seed tokens). */
  weight: number
  digest: Buffer
}

/**
 * A key that may chat with a model or manage models may also see them: Open WebUI and Ollama's
 * clients call /api/tags, /api/show and /api/version before they chat. What it sees is still
 * filtered by its model allowlist.
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
const NO_LIMITS: KeyLimits = { requestsPerMinute: null, tokensPerMinute: null, concurrent: null, queued: null }

export function sha256 (value: string): Buffer {
  return hash('sha256', value, 'buffer')
}

/** Config entries are plaintext or "sha256:<hex>", so the file need not hold the secret itself. */
function digestOf (configured: string): Buffer {
  return Buffer.from(secretDigest(configured), 'hex')
}

/**
 * The set of valid keys. Lookup hashes the presented token once and compares digests in
 * constant time; the map is keyed by digest, so the secret itself never steers a comparison.
 */
export class KeyRing {
  private byDigest = new Map<string, ApiKey>()

  constructor (auth: ProxyConfig['auth']) {
    this.load(auth)
  }

  /** Swaps in a whole new set of keys at once; requests in flight keep the key they matched. */
  load (auth: ProxyConfig['auth']): void {
    const previous = this.byDigest
    this.byDigest = new Map()
    try {
      auth.generateTokens.forEach(t => this.add(t, 'generate', SEED_GENERATE_SCOPES))
      auth.modelTokens.forEach(t => this.add(t, 'models', SEED_MODEL_SCOPES))
      auth.metricsTokens.forEach(t => this.add(t, 'metrics', ['metrics']))
      auth.keys.forEach(k => this.addNamed(k))
    } catch (err) {
      this.byDigest = previous
      throw err
    }
  }

  get size (): number {
    return this.byDigest.size
  }

  get keys (): ApiKey[] {
    return [...this.byDigest.values()]
  }

  find (token: string): ApiKey | undefined {
    const digest = sha256(token)
    const key = this.byDigest.get(digest.toString('hex'))
    return key !== undefined && timingSafeEqual(key.digest, digest) ? key : undefined
  }

  private add (configured: string, kind: 'generate' | 'models' | 'metrics', scopes: Access[]): void {
    const digest = digestOf(configured)
    const id = digest.toString('hex').slice(0, 8)
    this.store({ name: `${kind}-${id}`, id, kind, scopes: new Set(scopes), models: null, limits: NO_LIMITS, weight: 1, digest })
  }

  private addNamed (config: NamedKeyConfig): void {
    const digest = digestOf(config.key)
    this.store({
      name: config.name,
      id: digest.toString('hex').slice(0, 8),
      kind: 'named',
      scopes: effectiveScopes(config.scopes),
      models: config.models?.map(compilePattern) ?? null,
      limits: {
        requestsPerMinute: config.limits?.requests_per_minute ?? null,
        tokensPerMinute: config.limits?.tokens_per_minute ?? null,
        concurrent: config.limits?.concurrent ?? null,
        queued: null
      },
      weight: 1,
      digest
    })
  }

  private store (key: ApiKey): void {
    const hex = key.digest.toString('hex')
    const existing = this.byDigest.get(hex)
    if (existing !== undefined) {
      // A named key's allowlist and limits would be lost in a merge; the config loader refuses
      // this first, with field names.
      if (existing.kind === 'named' || key.kind === 'named') {
        throw new Error(`keys "${existing.name}" and "${key.name}" hold the same secret`)
      }
      // The same secret in two seed lists: the seed's way of granting both lists' rights.
      this.byDigest.set(hex, { ...existing, scopes: new Set([...existing.scopes, ...key.scopes]) })
      return
    }
    this.byDigest.set(hex, key)
  }
}

const SCHEME = /^(bearer|basic)\s+/i

/**
 * The keys a client presented, distinct, in header order: from `Authorization` (`Bearer <key>`
 * in any case of Bearer, the seed's bare `<key>`, or HTTP Basic with the key as the password, or
 * as the user name when the password is empty: `curl -u key:`) and from `x-api-key`. Clients may
 * send two (Claude Code: Ollama's placeholder `ollama` as Bearer, the real key as x-api-key);
 * {@link KeyRing.identify} decides which one counts.
 */
export function presentedTokens (headers: IncomingHttpHeaders): string[] {
  const tokens: string[] = []
  const add = (value: string | undefined) => {
    const token = value?.trim()
    if (token !== undefined && token !== '' && !tokens.includes(token)) tokens.push(token)
  }
  const authorization = headers.authorization
  if (authorization !== undefined) {
    const scheme = SCHEME.exec(authorization)?.[1]?.toLowerCase()
    const credentials = scheme === undefined ? authorization : authorization.slice(SCHEME.exec(authorization)![0].length)
    add(scheme === 'basic' ? basicKey(credentials) : credentials)
  }
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

/**
 * Which key a request carries: the one presented token that is a valid key. 'missing' when no
 * token was sent, 'invalid' when none is valid, 'ambiguous' when two different valid keys were.
 */
export function identify (ring: KeyRing, headers: IncomingHttpHeaders): Identification {
  const tokens = presentedTokens(headers)
  if (tokens.length === 0) return { error: 'missing' }
  let found: ApiKey | undefined
  for (const token of tokens) {
    const key = ring.find(token)
    if (key === undefined) continue
    if (found !== undefined && found !== key) return { error: 'ambiguous' }
    found = key
  }
  return found === undefined ? { error: 'invalid' } : { key: found }
}
