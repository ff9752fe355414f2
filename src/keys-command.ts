import { parseArgs } from 'node:util'
import { ConfigError } from '../plugins/config/config-errors.js'
import { defaultConfigPath } from '../plugins/config/config-location.js'
import {
  addNamedKey, generateKey, openConfig, removeNamedKey, rotateNamedKey, saveConfig, SCOPES, updateNamedKey,
  type KeyChanges, type NewKey
} from '../plugins/config/config-editor.js'
import type { KeyCapsConfig, KeyLimitsConfig, KeyScope } from '../plugins/config/config-schema.js'
import { keepAliveSeconds, parseSpan } from '../plugins/config/durations.js'
import { expiryFromIso, isoTime } from '../plugins/config/iso-times.js'
import type { KeyCaps, KeyLimits, NamedKeySettings } from '../plugins/config/proxy-config.js'

export const KEYS_USAGE = `Usage: ollama-proxy keys add NAME --scopes <scopes> [options]
       ollama-proxy keys update NAME [options]
       ollama-proxy keys rotate NAME [--grace <span>]
       ollama-proxy keys revoke NAME
       ollama-proxy keys list
  (npm run keys -- add NAME ...)

  --scopes <list>            comma-separated: ${SCOPES.join(', ')}
  --models <list>            comma-separated model names or globs (llama3.2*); all models when absent
  --expires <when>           a span from now (30d, 12h, 2w) or an ISO 8601 date (2027-06-30: valid
                             through that day, UTC) or date and time (2027-06-30T18:00:00Z)
  --rpm <n>                  requests per minute         --tpm <n>   tokens per minute
  --concurrent <n>           requests at once            --queued <n> requests waiting for a host
  --requests-per-day <n>     requests per day            (days and months in usage.timezone)
  --tokens-per-day <n>       tokens per day              --tokens-per-month <n>  tokens per month
  --weight <n>               share of the GPU while keys wait (default 1)
  --max-num-ctx <n>          largest options.num_ctx a request may ask for
  --max-keep-alive <time>    longest keep_alive (30m, 1h, or seconds); forever is then refused
  --no-unload                refuse keep_alive 0 (unloading a model others use)
  --grace <span>             rotate: the old key keeps working this long (24h, 7d); default none
  -c, --config <file>        the config file (default: config/config.yaml in the installation,
                             or the env OLLAMA_PROXY_CONFIG)

add and rotate print the new key once and store only its sha256 digest; a running proxy picks up
every change by itself (live reload). Bad options exit 2; a refused change exits 1.
`

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  scopes: { type: 'string', multiple: true },
  models: { type: 'string', multiple: true },
  expires: { type: 'string' },
  rpm: { type: 'string' },
  tpm: { type: 'string' },
  concurrent: { type: 'string' },
  queued: { type: 'string' },
  'requests-per-day': { type: 'string' },
  'tokens-per-day': { type: 'string' },
  'tokens-per-month': { type: 'string' },
  weight: { type: 'string' },
  'max-num-ctx': { type: 'string' },
  'max-keep-alive': { type: 'string' },
  'no-unload': { type: 'boolean' },
  grace: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const

/** A mistake on the command line: usage is printed and the exit status is 2. */
class UsageError extends Error {}

export interface Io { out: (text: string) => void, err: (text: string) => void, env: NodeJS.ProcessEnv, now: () => number }
type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string }

/**
 * `ollama-proxy keys ...`: mints, changes, rotates, lists and revokes named keys in the config
 * file; every change is checked with the proxy's own loader before it is written. Returns the
 * exit status: 0 done, 1 a refused change (one line: no file, name taken, unknown name, a file
 * the proxy would refuse, a folder not writable), 2 a command line it does not understand.
 */
export function runKeysCommand (argv: string[], io: Io = defaultIo()): number {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true })
    if (values.help === true) {
      io.out(KEYS_USAGE)
      return 0
    }
    const [action, name, ...extra] = positionals
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`)
    const file = values.config ?? (io.env.OLLAMA_PROXY_CONFIG || defaultConfigPath())
    switch (action) {
      case 'add': return add(file, requireName(name), values, io)
      case 'update': return update(file, requireName(name), values, io)
      case 'rotate': return rotate(file, requireName(name), values, io)
      case 'revoke': return revoke(file, requireName(name), io)
      case 'list':
        if (name !== undefined) throw new UsageError(`unexpected argument "${name}"`)
        return list(file, io)
      case undefined: throw new UsageError('missing command: add, update, rotate, revoke or list')
      default: throw new UsageError(`unknown command "${action}": use add, update, rotate, revoke or list`)
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`ollama-proxy keys: ${err.message.split('\n')[0]}\n`)
      return 1
    }
    const code = (err as { code?: string }).code
    if (err instanceof UsageError || code?.startsWith('ERR_PARSE_ARGS') === true) {
      io.err(`ollama-proxy keys: ${(err as Error).message}\n${KEYS_USAGE}`)
      return 2
    }
    throw err
  }
}

function defaultIo (): Io {
  return { out: text => process.stdout.write(text), err: text => process.stderr.write(text), env: process.env, now: Date.now }
}

function requireName (name: string | undefined): string {
  if (name === undefined || name === '') throw new UsageError('missing the key NAME')
  return name
}

/** Flags of one command only. */
function refuseOptions (values: Values, names: Array<keyof Values>, command: string): void {
  const given = names.find(option => values[option] !== undefined)
  if (given !== undefined) throw new UsageError(`--${given} does not apply to keys ${command}`)
}

const KEY_OPTIONS: Array<keyof Values> = ['scopes', 'models', 'expires', 'rpm', 'tpm', 'concurrent', 'queued', 'requests-per-day', 'tokens-per-day', 'tokens-per-month', 'weight', 'max-num-ctx', 'max-keep-alive', 'no-unload']

/** The key's fields set by the flags, in the file's names. */
function fieldsFromFlags (values: Values, now: number): KeyChanges & { limits: KeyLimitsConfig, caps: KeyCapsConfig } {
  const limits: KeyLimitsConfig = {}
  const limitFlags: Array<[keyof Values, keyof KeyLimitsConfig, number]> = [
    ['rpm', 'requests_per_minute', 1], ['tpm', 'tokens_per_minute', 1], ['concurrent', 'concurrent', 1], ['queued', 'queued', 0],
    ['requests-per-day', 'requests_per_day', 0], ['tokens-per-day', 'tokens_per_day', 0], ['tokens-per-month', 'tokens_per_month', 0]
  ]
  for (const [flag, field, minimum] of limitFlags) {
    const value = wholeNumber(values[flag] as string | undefined, `--${flag}`, minimum)
    if (value !== undefined) limits[field] = value
  }
  const caps: KeyCapsConfig = {}
  const numCtx = wholeNumber(values['max-num-ctx'], '--max-num-ctx', 1)
  if (numCtx !== undefined) caps.num_ctx = numCtx
  const keepAlive = values['max-keep-alive']
  if (keepAlive !== undefined) {
    const stored = /^\d+(\.\d+)?$/.test(keepAlive.trim()) ? Number(keepAlive) : keepAlive.trim()
    const seconds = keepAliveSeconds(stored)
    if (seconds === undefined || seconds <= 0 || seconds === Infinity) throw new UsageError(`--max-keep-alive expects a positive duration (30m, 1h, or seconds), got "${keepAlive}"`)
    caps.keep_alive = stored
  }
  if (values['no-unload'] === true) caps.unload = false
  const fields: KeyChanges & { limits: KeyLimitsConfig, caps: KeyCapsConfig } = { limits, caps }
  const scopes = parseScopes(values.scopes)
  if (scopes !== undefined) fields.scopes = scopes
  const models = splitList(values.models, '--models')
  if (models !== undefined) fields.models = models
  if (values.expires !== undefined) fields.expires_at = expiry(values.expires, now)
  const weight = wholeNumber(values.weight, '--weight', 1)
  if (weight !== undefined) fields.weight = weight
  return fields
}

function add (file: string, name: string, values: Values, io: Io): number {
  refuseOptions(values, ['grace'], 'add')
  const fields = fieldsFromFlags(values, io.now())
  if (fields.scopes === undefined) throw new UsageError(`--scopes is required: ${SCOPES.join(', ')}`)
  const spec: NewKey = { name, scopes: fields.scopes, limits: fields.limits, caps: fields.caps }
  if (fields.models != null) spec.models = fields.models
  if (fields.expires_at != null) spec.expires_at = fields.expires_at
  if (fields.weight != null) spec.weight = fields.weight
  const editable = openConfig(file)
  const key = generateKey()
  addNamedKey(editable, spec, key, io.now())
  saveConfig(editable)
  io.out(`${key}\n`)
  io.err(`added key "${name}" (${spec.scopes.join(', ')}) to ${file}; its digest is stored, the key above is shown only this once. A running proxy reloads the file by itself.\n`)
  return 0
}

function update (file: string, name: string, values: Values, io: Io): number {
  refuseOptions(values, ['grace'], 'update')
  if (!KEY_OPTIONS.some(option => values[option] !== undefined)) throw new UsageError('nothing to change: give at least one option')
  const changes = fieldsFromFlags(values, io.now())
  const editable = openConfig(file)
  updateNamedKey(editable, name, changes, io.now())
  saveConfig(editable)
  io.err(`updated key "${name}" in ${file}; a running proxy applies it as soon as it has reloaded the file.\n`)
  return 0
}

function rotate (file: string, name: string, values: Values, io: Io): number {
  refuseOptions(values, KEY_OPTIONS, 'rotate')
  const grace = values.grace === undefined ? 0 : parseSpan(values.grace)
  if (grace === undefined) throw new UsageError(`--grace expects a span such as 24h or 7d (at most 36500d), got "${values.grace}"`)
  const editable = openConfig(file)
  const key = generateKey()
  const { previousValidUntil } = rotateNamedKey(editable, name, key, grace, io.now())
  saveConfig(editable)
  io.out(`${key}\n`)
  const old = grace > 0 ? `the old key keeps working until ${isoTime(previousValidUntil)}` : 'the old key stops as soon as a running proxy has reloaded the file'
  io.err(`rotated key "${name}" in ${file}; the key above is shown only this once, ${old}.\n`)
  return 0
}

function revoke (file: string, name: string, io: Io): number {
  const editable = openConfig(file)
  removeNamedKey(editable, name)
  saveConfig(editable)
  io.err(`revoked key "${name}" in ${file}; a running proxy refuses it as soon as it has reloaded the file.\n`)
  return 0
}

function list (file: string, io: Io): number {
  const { config } = openConfig(file)
  const now = io.now()
  const rows = config.auth.keys.map(k => [
    k.name,
    k.scopes.join(','),
    k.models?.join(',') ?? '*',
    describeLimits(k.limits),
    describeCaps(k.caps),
    String(k.weight),
    k.expiresAt === null ? '-' : `${isoTime(k.expiresAt)}${k.expiresAt <= now ? ' (expired)' : ''}`,
    describeStored(k, now)
  ])
  const table = [['NAME', 'SCOPES', 'MODELS', 'LIMITS', 'CAPS', 'WEIGHT', 'EXPIRES', 'STORED'], ...rows]
  const widths = table[0].map((_, column) => Math.max(...table.map(row => row[column].length)))
  for (const row of table) io.out(row.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd() + '\n')
  const seed = config.auth.generateTokens.length + config.auth.modelTokens.length + config.auth.metricsTokens.length
  if (seed > 0) io.out(`(and ${seed} unnamed token(s) in generate_tokens/model_tokens/metrics_tokens)\n`)
  return 0
}

function describeLimits (limits: KeyLimits): string {
  const parts = ([
    ['rpm', limits.requestsPerMinute], ['tpm', limits.tokensPerMinute], ['concurrent', limits.concurrent], ['queued', limits.queued],
    ['requests/day', limits.requestsPerDay], ['tokens/day', limits.tokensPerDay], ['tokens/month', limits.tokensPerMonth]
  ] as const).filter(([, value]) => value !== null).map(([label, value]) => `${label}=${value}`)
  return parts.length > 0 ? parts.join(',') : '-'
}

function describeCaps (caps: KeyCaps): string {
  const parts = [
    caps.numCtx !== null ? `num_ctx=${caps.numCtx}` : '',
    caps.keepAliveSeconds !== null ? `keep_alive=${caps.keepAliveSeconds}s` : '',
    caps.unload ? '' : 'no-unload'
  ].filter(Boolean)
  return parts.length > 0 ? parts.join(',') : '-'
}

function describeStored (key: NamedKeySettings, now: number): string {
  const stored = key.key.startsWith('sha256:') ? 'digest' : 'plaintext'
  const previous = key.previousKeys.filter(p => p.expiresAt > now)
  if (previous.length === 0) return stored
  const until = Math.max(...previous.map(p => p.expiresAt))
  return `${stored} (+${previous.length} old until ${isoTime(until)})`
}

/**
 * A list option's items; undefined when the option is absent. Given with nothing in it (an empty
 * shell variable) it is refused: read as absent, `--models ""` would give a key every model.
 */
function splitList (values: string[] | undefined, option: string): string[] | undefined {
  if (values === undefined) return undefined
  const items = values.flatMap(v => v.split(',')).map(v => v.trim()).filter(Boolean)
  if (items.length === 0) throw new UsageError(`${option} expects a comma-separated list, got ${JSON.stringify(values.join(','))}`)
  return items
}

function parseScopes (values: string[] | undefined): KeyScope[] | undefined {
  const scopes = splitList(values, '--scopes')
  if (scopes === undefined) return undefined
  for (const scope of scopes) {
    if (!(SCOPES as readonly string[]).includes(scope)) throw new ConfigError(`unknown scope "${scope}": use ${SCOPES.join(', ')}`)
  }
  return [...new Set(scopes)] as KeyScope[]
}

/** `--expires`: a span from now, stored as the moment it ends, or an ISO 8601 date or time as typed. */
function expiry (text: string, now: number): string {
  const span = parseSpan(text)
  if (span !== undefined) return isoTime(now + span)
  if (expiryFromIso(text) !== undefined) return text.trim()
  throw new UsageError(`--expires expects a span (30d, 12h; at most 36500d) or an ISO 8601 date (2027-06-30) or date and time, got "${text}"`)
}

function wholeNumber (value: string | undefined, option: string, minimum: number): number | undefined {
  if (value === undefined) return undefined
  const text = value.trim()
  if (!/^\d+$/.test(text) || Number(text) < minimum || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${option} expects a whole number of at least ${minimum}, got "${value}"`)
  }
  return Number(text)
}
