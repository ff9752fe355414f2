import { parseArgs } from 'node:util'
import { ConfigError, defaultConfigPath } from '../plugins/config/config-loader.js'
import { addNamedKey, generateKey, openConfig, removeNamedKey, saveConfig, SCOPES, type NewKey } from '../plugins/config/config-editor.js'
import type { KeyScope, NamedKeyConfig } from '../plugins/config/config-schema.js'

export const KEYS_USAGE = `Usage: ollama-proxy keys add NAME --scopes <scopes> [--models <globs>] [--rpm N] [--tpm N] [--concurrent N]
       ollama-proxy keys list
       ollama-proxy keys revoke NAME
  (npm run keys -- add NAME ...)

  --scopes <list>     comma-separated: ${SCOPES.join(', ')} (repeatable)
  --models <list>     comma-separated model names or globs (llama3.2*); all models when absent
  --rpm <n>           requests per minute      --tpm <n>   tokens per minute
  --concurrent <n>    requests at once
  -c, --config <file> the config file (default: config/config.yaml in the installation,
                      or the env OLLAMA_PROXY_CONFIG)

add prints the new key once and stores only its sha256 digest; a running proxy picks up
every change by itself (live reload).
`

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  scopes: { type: 'string', multiple: true },
  models: { type: 'string', multiple: true },
  rpm: { type: 'string' },
  tpm: { type: 'string' },
  concurrent: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const

/** A mistake on the command line: usage is printed and the exit status is 2. */
class UsageError extends Error {}

interface Io { out: (text: string) => void, err: (text: string) => void, env: NodeJS.ProcessEnv }

/**
 * `ollama-proxy keys ...`: mints, lists and revokes named keys in the config file.
 * Returns the exit status: 0 done, 1 a refused change (no file, name taken, unknown name, a file
 * the proxy would refuse), 2 a command line it does not understand.
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
      case 'add':
        return add(file, requireName(name), values, io)
      case 'list':
        if (name !== undefined) throw new UsageError(`unexpected argument "${name}"`)
        return list(file, io)
      case 'revoke':
        return revoke(file, requireName(name), io)
      case undefined:
        throw new UsageError('missing command: add, list or revoke')
      default:
        throw new UsageError(`unknown command "${action}": use add, list or revoke`)
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`ollama-proxy keys: ${err.message}\n`)
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
  return { out: text => process.stdout.write(text), err: text => process.stderr.write(text), env: process.env }
}

function requireName (name: string | undefined): string {
  if (name === undefined || name === '') throw new UsageError('missing the key NAME')
  return name
}

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string }

function add (file: string, name: string, values: Values, io: Io): number {
  const spec: NewKey = { name, scopes: parseScopes(values.scopes), models: splitList(values.models) }
  const limits: NonNullable<NamedKeyConfig['limits']> = {}
  const rpm = positiveInteger(values.rpm, '--rpm')
  const tpm = positiveInteger(values.tpm, '--tpm')
  const concurrent = positiveInteger(values.concurrent, '--concurrent')
  if (rpm !== undefined) limits.requests_per_minute = rpm
  if (tpm !== undefined) limits.tokens_per_minute = tpm
  if (concurrent !== undefined) limits.concurrent = concurrent
  spec.limits = limits
  const editable = openConfig(file)
  const key = generateKey()
  addNamedKey(editable, spec, key)
  saveConfig(editable)
  io.out(`${key}\n`)
  io.err(`added key "${name}" (${spec.scopes.join(', ')}) to ${file}; its digest is stored, the key above is shown only this once. A running proxy reloads the file by itself.\n`)
  return 0
}

function list (file: string, io: Io): number {
  const { config } = openConfig(file)
  const rows = config.auth.keys.map(k => [
    k.name,
    k.scopes.join(','),
    k.models?.join(',') ?? '*',
    describeLimits(k.limits),
    k.key.startsWith('sha256:') ? 'digest' : 'plaintext'
  ])
  const table = [['NAME', 'SCOPES', 'MODELS', 'LIMITS', 'STORED'], ...rows]
  const widths = table[0].map((_, column) => Math.max(...table.map(row => row[column].length)))
  for (const row of table) io.out(row.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd() + '\n')
  const seed = config.auth.generateTokens.length + config.auth.modelTokens.length + config.auth.metricsTokens.length
  if (seed > 0) io.out(`(and ${seed} unnamed token(s) in generate_tokens/model_tokens/metrics_tokens)\n`)
  return 0
}

function revoke (file: string, name: string, io: Io): number {
  const editable = openConfig(file)
  removeNamedKey(editable, name)
  saveConfig(editable)
  io.err(`revoked key "${name}" in ${file}; a running proxy refuses it as soon as it has reloaded the file.\n`)
  return 0
}

function describeLimits (limits: NamedKeyConfig['limits']): string {
  if (limits === undefined) return '-'
  const parts = [
    limits.requests_per_minute !== undefined ? `rpm=${limits.requests_per_minute}` : '',
    limits.tokens_per_minute !== undefined ? `tpm=${limits.tokens_per_minute}` : '',
    limits.concurrent !== undefined ? `concurrent=${limits.concurrent}` : ''
  ].filter(Boolean)
  return parts.length > 0 ? parts.join(',') : '-'
}

function splitList (values: string[] | undefined): string[] | undefined {
  const items = (values ?? []).flatMap(v => v.split(',')).map(v => v.trim()).filter(Boolean)
  return items.length > 0 ? items : undefined
}

function parseScopes (values: string[] | undefined): KeyScope[] {
  const scopes = splitList(values)
  if (scopes === undefined) throw new UsageError(`--scopes is required: ${SCOPES.join(', ')}`)
  for (const scope of scopes) {
    if (!(SCOPES as readonly string[]).includes(scope)) {
      throw new ConfigError(`unknown scope "${scope}": use ${SCOPES.join(', ')}`)
    }
  }
  return [...new Set(scopes)] as KeyScope[]
}

function positiveInteger (value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^[1-9]\d*$/.test(value.trim())) throw new UsageError(`${option} expects a whole number of at least 1, got "${value}"`)
  return Number(value)
}
