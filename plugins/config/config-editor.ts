import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { isMap, isSeq, parseDocument, type Document, type YAMLMap, type YAMLSeq } from 'yaml'
import { ConfigError, parseConfig, type ProxyConfig } from './config-loader.js'
import { NamedKey, Scope, type KeyScope, type NamedKeyConfig } from './config-schema.js'

/** Every scope a named key may have, in the schema's order. */
export const SCOPES: readonly KeyScope[] = (Scope.anyOf as Array<{ const: KeyScope }>).map(s => s.const)
const NAME_PATTERN = new RegExp((NamedKey.properties.name as { pattern?: string }).pattern ?? '')

export interface NewKey {
  name: string
  scopes: KeyScope[]
  models?: string[]
  limits?: NonNullable<NamedKeyConfig['limits']>
}

/**
 * A config file opened for editing. Edits splice the original text where the YAML document says
 * the keys list is, so every other line (comments, alignment, quoting) stays byte for byte;
 * shapes it cannot splice (a flow-style `keys: [{...}]`) are edited through the document instead.
 */
export interface EditableConfig {
  file: string
  text: string
  document: Document
  /** the file as the proxy reads it (validated), before the edit */
  config: ProxyConfig
}

/**
 * Reads and validates a config file for editing. Errors (ConfigError, one line): no such file,
 * invalid YAML, or a file the proxy itself would refuse, except for having no token yet: adding
 * the first key is how such a file is fixed (saveConfig still refuses to write a file without).
 */
export function openConfig (file: string): EditableConfig {
  if (!existsSync(file)) {
    throw new ConfigError(`${file}: no config file there; start the proxy once to create one, or name another with --config`)
  }
  const text = readFileSync(file, 'utf8')
  const config = parseConfig(text, file, {}, { requireToken: false })
  const document = parseDocument(text)
  return { file, text, document, config }
}

/** A fresh key: 32 random bytes, base64url, with a prefix that makes it recognisable in a leak scan. */
export function generateKey (): string {
  return `olp_${randomBytes(32).toString('base64url')}`
}

/** The form the config stores instead of the key: `sha256:<64 hex>` (see plugins/auth/keys.ts). */
export function digestOf (key: string): string {
  return `sha256:${createHash('sha256').update(key).digest('hex')}`
}

/**
 * Appends a named key (stored as the digest of `key`) to auth.keys, creating the list when the
 * file has none. Throws ConfigError when the name is invalid or already taken.
 */
export function addNamedKey (editable: EditableConfig, spec: NewKey, key: string): void {
  if (!NAME_PATTERN.test(spec.name)) {
    throw new ConfigError(`"${spec.name}" is not a valid key name: use up to 64 letters, digits, dot, dash or underscore, starting with a letter or digit`)
  }
  if (editable.config.auth.keys.some(k => k.name === spec.name)) {
    throw new ConfigError(`${editable.file}: a key named "${spec.name}" exists already; revoke it first or choose another name`)
  }
  const entry: Record<string, unknown> = { name: spec.name, key: digestOf(key), scopes: spec.scopes }
  if (spec.models !== undefined && spec.models.length > 0) entry.models = spec.models
  if (spec.limits !== undefined && Object.keys(spec.limits).length > 0) entry.limits = spec.limits
  const spliced = spliceNewKey(editable, entry)
  if (spliced !== undefined) {
    editable.text = spliced
    return
  }
  const { document } = editable
  const node = document.createNode(entry) as YAMLMap
  for (const name of ['scopes', 'models', 'limits']) {
    const child = node.get(name, true)
    if (isSeq(child) || isMap(child)) child.flow = true
  }
  const keys = document.getIn(['auth', 'keys'], true)
  if (isSeq(keys)) keys.add(node)
  else document.setIn(['auth', 'keys'], document.createNode([node]) as YAMLSeq)
  editable.text = document.toString()
}

/** The entry as block YAML lines, every value a JSON literal (valid YAML), `-` at `indent`. */
function entryLines (entry: Record<string, unknown>, indent: number): string {
  const pad = ' '.repeat(indent)
  const flow = (value: unknown): string => typeof value === 'object' && value !== null && !Array.isArray(value)
    ? `{ ${Object.entries(value).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ')} }`
    : Array.isArray(value) ? `[${value.map(v => JSON.stringify(v)).join(', ')}]` : JSON.stringify(value)
  return Object.entries(entry).map(([k, v], i) => `${pad}${i === 0 ? '- ' : '  '}${k}: ${flow(v)}\n`).join('')
}

function lineStart (text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1
}

/** Offset just past the newline ending the line that holds `offset - 1` (the end of a node). */
function afterLine (text: string, end: number): number {
  const newline = text.indexOf('\n', Math.max(0, end - 1))
  return newline < 0 ? text.length : newline + 1
}

function withNewline (text: string, at: number): string {
  return at === text.length && !text.endsWith('\n') && text.length > 0 ? '\n' : ''
}

/** The original text with the entry added to a block-style auth.keys, or undefined when it cannot be spliced. */
function spliceNewKey ({ text, document }: EditableConfig, entry: Record<string, unknown>): string | undefined {
  const auth = document.get('auth', true)
  if (!isMap(auth) || auth.flow === true || auth.range == null || auth.items.length === 0) return undefined
  const firstKey = auth.items[0].key as { range?: [number, number, number] } | null
  if (firstKey?.range == null) return undefined
  const pairIndent = firstKey.range[0] - lineStart(text, firstKey.range[0])
  const pair = auth.items.find(item => (item.key as { value?: unknown } | null)?.value === 'keys')
  const keys = pair?.value
  if (pair === undefined) {
    const at = afterLine(text, auth.range[1])
    return text.slice(0, at) + withNewline(text, at) + `${' '.repeat(pairIndent)}keys:\n` + entryLines(entry, pairIndent + 2) + text.slice(at)
  }
  if (isSeq(keys) && keys.flow !== true && keys.items.length > 0) {
    const first = keys.items[0] as { range?: [number, number, number] }
    const last = keys.items[keys.items.length - 1] as { range?: [number, number, number] }
    if (first.range == null || last.range == null) return undefined
    const dash = text.lastIndexOf('-', first.range[0])
    const at = afterLine(text, last.range[1])
    return text.slice(0, at) + withNewline(text, at) + entryLines(entry, dash - lineStart(text, dash)) + text.slice(at)
  }
  // `keys:` empty or `keys: []`: the pair's lines become a block list.
  const emptyList = keys === null || keys === undefined || (isSeq(keys) && keys.items.length === 0)
  const keyRange = (pair.key as { range?: [number, number, number] } | null)?.range
  if (!emptyList || keyRange == null) return undefined
  const end = (keys as { range?: [number, number, number] } | null)?.range?.[1] ?? keyRange[1]
  const at = afterLine(text, end)
  return text.slice(0, keyRange[0]) + 'keys:\n' + entryLines(entry, pairIndent + 2) + text.slice(at)
}

/** Removes the named key from auth.keys. Throws ConfigError when there is no key of that name. */
export function removeNamedKey (editable: EditableConfig, name: string): void {
  const keys = editable.document.getIn(['auth', 'keys'], true)
  const index = isSeq(keys) ? keys.items.findIndex(item => isMap(item) && item.get('name') === name) : -1
  if (!isSeq(keys) || index < 0) {
    throw new ConfigError(`${editable.file}: no key named "${name}" (see: ollama-proxy keys list)`)
  }
  const { text } = editable
  const item = keys.items[index] as { range?: [number, number, number] }
  if (keys.flow !== true && item.range != null && keys.items.length > 1) {
    const dash = text.lastIndexOf('-', item.range[0])
    editable.text = text.slice(0, lineStart(text, dash)) + text.slice(afterLine(text, item.range[1]))
    return
  }
  const auth = editable.document.get('auth', true)
  const pair = isMap(auth) ? auth.items.find(p => (p.key as { value?: unknown } | null)?.value === 'keys') : undefined
  const keyRange = (pair?.key as { range?: [number, number, number] } | null | undefined)?.range
  if (keys.flow !== true && item.range != null && keyRange != null) {
    // The last key: an empty list stays valid (a bare `keys:` would be null).
    editable.text = text.slice(0, keyRange[0]) + 'keys: []\n' + text.slice(afterLine(text, item.range[1]))
    return
  }
  keys.delete(index)
  editable.text = editable.document.toString()
}

/**
 * Writes the edited document back, after checking the proxy would accept it: to a temporary
 * file in the same folder with the original's mode, flushed, then renamed over the original, so
 * a reader (live reload) sees the old file or the new one, never half of one.
 */
export function saveConfig (editable: EditableConfig): void {
  const { file, text } = editable
  parseConfig(text, file)
  const mode = statSync(file).mode & 0o777
  const temporary = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    const fd = openSync(temporary, 'wx', mode)
    try {
      writeSync(fd, text)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    // openSync's mode is reduced by the umask; the original's mode is what the owner chose.
    chmodSync(temporary, mode)
    renameSync(temporary, file)
  } catch (err) {
    rmSync(temporary, { force: true })
    throw new ConfigError(`${file}: cannot write: ${(err as Error).message}`)
  }
}
