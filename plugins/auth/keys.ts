import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { KeyScope, NamedKeyConfig } from '../config/config-schema.js'
import type { ProxyConfig } from '../config/config-loader.js'
import { compilePattern, type ModelPattern } from './model-names.js'

/** What a route demands; 'public' routes need no key at all. */
export type Access = 'public' | KeyScope | 'metrics'

export interface KeyLimits {
  requestsPerMinute: number | null
  tokensPerMinute: number | null
  concurrent: number | null
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
  digest: Buffer
}

const SEED_GENERATE_SCOPES: Access[] = ['generate', 'models:read']
const SEED_MODEL_SCOPES: Access[] = ['models:read', 'models:admin', 'metrics']
const NO_LIMITS: KeyLimits = { requestsPerMinute: null, tokensPerMinute: null, concurrent: null }

export function sha256 (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** Config entries are plaintext or "sha256:<hex>", so the file need not hold the secret itself. */
function digestOf (configured: string): Buffer {
  return configured.startsWith('sha256:') ? Buffer.from(configured.slice(7).toLowerCase(), 'hex') : sha256(configured)
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
    this.store({ name: `${kind}-${id}`, id, kind, scopes: new Set(scopes), models: null, limits: NO_LIMITS, digest })
  }

  private addNamed (config: NamedKeyConfig): void {
    const digest = digestOf(config.key)
    this.store({
      name: config.name,
      id: digest.toString('hex').slice(0, 8),
      kind: 'named',
      scopes: new Set<Access>(config.scopes),
      models: config.models?.map(compilePattern) ?? null,
      limits: {
        requestsPerMinute: config.limits?.requests_per_minute ?? null,
        tokensPerMinute: config.limits?.tokens_per_minute ?? null,
        concurrent: config.limits?.concurrent ?? null
      },
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

const BEARER = /^bearer\s+/i

/** The key a client presented: `Authorization: Bearer <key>`, bare `Authorization: <key>`, or `x-api-key`. */
export function presentedToken (headers: IncomingHttpHeaders): string | undefined {
  const authorization = headers.authorization
  if (authorization !== undefined && authorization !== '') {
    const token = authorization.replace(BEARER, '').trim()
    return token === '' ? undefined : token
  }
  const apiKey = headers['x-api-key']
  const value = Array.isArray(apiKey) ? apiKey[0] : apiKey
  return value !== undefined && value.trim() !== '' ? value.trim() : undefined
}
