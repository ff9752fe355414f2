import { createHash } from 'node:crypto'
import { ConfigError, fieldError } from './config-errors.js'
import { isPlaceholderToken } from './placeholder-tokens.js'
import type { ProxyConfig } from './proxy-config.js'

/** Tokens shorter than this are guessable; start-up warns about them. */
export const MIN_TOKEN_LENGTH = 16

/** The SHA-256, as 64 lower-case hex digits, a config entry stands for: plaintext is hashed, "sha256:<hex>" is taken as is. */
export function secretSha256Hex (configured: string): string {
  return configured.startsWith('sha256:') ? configured.slice(7).toLowerCase() : createHash('sha256').update(configured).digest('hex')
}

/** Every secret of the auth section with its field: seed lists, named keys, their previous keys. */
function secretsOf (auth: ProxyConfig['auth']): Array<[string, string]> {
  return [
    ...auth.generateTokens.map((t, i): [string, string] => [`auth.generate_tokens.${i}`, t]),
    ...auth.modelTokens.map((t, i): [string, string] => [`auth.model_tokens.${i}`, t]),
    ...auth.metricsTokens.map((t, i): [string, string] => [`auth.metrics_tokens.${i}`, t]),
    ...auth.keys.flatMap((k, i): Array<[string, string]> => [
      [`auth.keys.${i}.key`, k.key],
      ...k.previousKeys.map((p, j): [string, string] => [`auth.keys.${i}.previous_keys.${j}.key`, p.key])
    ])
  ]
}

/**
 * The rules every secret of the auth section follows. Throws ConfigError naming the field: no
 * token at all (unless `requireToken` is false: the keys CLI opens such a file to add the first),
 * a placeholder from the documentation, a malformed "sha256:" digest, a named key's name used
 * twice or taken by a seed token (`generate-1801b105`), or a named key (or one of its previous
 * keys) sharing its secret with any other entry.
 */
export function checkTokens (auth: ProxyConfig['auth'], file: string, requireToken: boolean): void {
  const all = secretsOf(auth)
  if (all.length === 0 && requireToken) {
    throw new ConfigError(`${file}: auth: no token configured; add at least one to auth.generate_tokens, auth.model_tokens or auth.keys (npx ollama-proxy keys add NAME --scopes generate)`, { file, field: 'auth' })
  }
  for (const [field, token] of all) {
    if (isPlaceholderToken(token)) {
      throw fieldError(file, field, 'this is a placeholder from the documentation, not a secret; put a token of your own there (openssl rand -hex 32), or delete it and mint a named key with: npx ollama-proxy keys add NAME --scopes generate')
    }
    if (token.startsWith('sha256:') && !/^sha256:[0-9a-f]{64}$/i.test(token)) {
      throw fieldError(file, field, 'expected "sha256:" followed by 64 hex digits')
    }
  }
  const names = new Set<string>()
  const seeds = seedNames(auth)
  auth.keys.forEach((key, i) => {
    if (names.has(key.name)) throw fieldError(file, `auth.keys.${i}.name`, `the name "${key.name}" is used twice`)
    names.add(key.name)
    const seed = seeds.get(key.name)
    // Usage, budgets, windows and metrics go by name: the two would count as one.
    if (seed !== undefined) throw fieldError(file, `auth.keys.${i}.name`, `"${key.name}" is the name the proxy gives the token of ${seed} in logs, metrics and usage; choose another`)
  })
  const firstByDigest = new Map<string, string>()
  for (const [field, token] of all) {
    const digest = secretSha256Hex(token)
    const first = firstByDigest.get(digest)
    if (first === undefined) {
      firstByDigest.set(digest, field)
    } else if (field.startsWith('auth.keys.') || first.startsWith('auth.keys.')) {
      // A named key shares its secret: one entry would hide the other's allowlist and limits.
      throw new ConfigError(`${file}: ${first} and ${field} hold the same secret; give every named key a secret of its own`, { file, field })
    }
  }
}

/**
 * The names seed tokens are known by (plugins/auth/keys.ts): the list's kind and the first 8 hex
 * digits of the secret's SHA-256 (`generate-1801b105`), each with its field; the first list wins.
 */
function seedNames (auth: ProxyConfig['auth']): Map<string, string> {
  const names = new Map<string, string>()
  const add = (list: string[], kind: string, field: string) => list.forEach((token, i) => {
    const name = `${kind}-${secretSha256Hex(token).slice(0, 8)}`
    if (!names.has(name)) names.set(name, `${field}.${i}`)
  })
  add(auth.generateTokens, 'generate', 'auth.generate_tokens')
  add(auth.modelTokens, 'models', 'auth.model_tokens')
  add(auth.metricsTokens, 'metrics', 'auth.metrics_tokens')
  return names
}

/**
 * Pairs of seed-list entries (generate_tokens, model_tokens, metrics_tokens) that hold the same
 * secret. That is how the seed grants one token several lists' rights, so it is allowed; start-up
 * and reload log a warning naming both fields. Named keys never share a secret (checkTokens refuses).
 */
export function sharedSeedTokens (config: ProxyConfig): Array<[string, string]> {
  const seen = new Map<string, string>()
  const pairs: Array<[string, string]> = []
  const scan = (list: string[], name: string) => list.forEach((token, i) => {
    const digest = secretSha256Hex(token)
    const first = seen.get(digest)
    if (first !== undefined) pairs.push([first, `${name}.${i}`])
    else seen.set(digest, `${name}.${i}`)
  })
  scan(config.auth.generateTokens, 'auth.generate_tokens')
  scan(config.auth.modelTokens, 'auth.model_tokens')
  scan(config.auth.metricsTokens, 'auth.metrics_tokens')
  return pairs
}

/** Fields of plaintext tokens shorter than MIN_TOKEN_LENGTH, for a warning at start. */
export function shortTokenFields (config: ProxyConfig): string[] {
  return secretsOf(config.auth)
    .filter(([, token]) => !token.startsWith('sha256:') && token.length < MIN_TOKEN_LENGTH)
    .map(([field]) => field)
}
