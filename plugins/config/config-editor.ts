import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { isMap, isSeq, parseDocument, type Document, type YAMLMap, type YAMLSeq } from 'yaml'
import { ConfigError } from './config-errors.js'
import { parseConfig, readConfigText } from './config-loader.js'
import type { EditedConfigFile } from './config-file-writer.js'
import { KeyName, Scope, type KeyCapsConfig, type KeyLimitsConfig, type KeyScope } from './config-schema.js'
import { expiryFromIso, isoTime } from './iso-times.js'
import type { ProxyConfig } from './proxy-config.js'
import { secretSha256Hex } from './token-rules.js'
import { applyEdits, entryLines, flowLiteral, mapEdits, newlineBefore, afterLine, lineStart, rangeOf, removeItemEdits, type FieldChange, type TextEdit } from './yaml-text-edits.js'

/** Every scope a named key may have, in the schema's order. */
export const SCOPES: readonly KeyScope[] = (Scope.anyOf as Array<{ const: KeyScope }>).map(s => s.const)
const NAME_PATTERN = new RegExp((KeyName as { pattern?: string }).pattern ?? '')

/** A key's limits as the file writes them; null (in changes) removes one. */
export type LimitChanges = { [K in keyof KeyLimitsConfig]?: number | null }
/** A key's caps as the file writes them; null (in changes) removes one. */
export type CapChanges = { [K in keyof KeyCapsConfig]?: KeyCapsConfig[K] | null }

/** A key to mint, in the file's (and the key API's) field names; validated as the file would be. */
export interface NewKey {
  name: string
  scopes: KeyScope[]
  models?: string[]
  limits?: KeyLimitsConfig
  caps?: KeyCapsConfig
  /** ISO 8601 date or date and time; must lie in the future. */
  expires_at?: string
  weight?: number
}

/** Changes to an existing key; absent fields stay, null removes a field (weight back to 1, every model, no expiry). */
export interface KeyChanges {
  scopes?: KeyScope[]
  models?: string[] | null
  /** Merged limit by limit. */
  limits?: LimitChanges
  /** Merged cap by cap. */
  caps?: CapChanges
  expires_at?: string | null
  weight?: number | null
}

/**
 * A config file opened for editing. Edits splice `text` where the YAML document says the keys
 * are (yaml-text-edits.ts), so every other byte stays; `config` is `text` as the proxy reads it.
 */
export interface EditableConfig extends EditedConfigFile {
  document: Document
  config: ProxyConfig
}

/**
 * Reads and validates a config file for editing. Errors (ConfigError, one line): no such file,
 * invalid YAML, or a file the proxy itself would refuse, except for having no token yet: adding
 * the first key is how such a file is fixed (saveConfig still refuses to write a file without).
 */
export function openConfig (file: string): EditableConfig {
  if (!existsSync(file)) {
    throw new ConfigError(`${file}: no config file there; start the proxy once to create one, or name another with --config`, { file })
  }
  const text = readConfigText(file)
  const config = parseConfig(text, file, {}, { requireToken: false })
  return { file, original: text, text, document: parseDocument(text), config }
}

/** A fresh key: 32 random bytes, base64url, with a prefix that makes it recognisable in a leak scan. */
export function generateKey (): string {
  return `olp_${randomBytes(32).toString('base64url')}`
}

/** The config entry that stands for `key` without holding it: "sha256:<64 hex>" (see plugins/auth/keys.ts). */
export function sha256Entry (key: string): string {
  return `sha256:${createHash('sha256').update(key).digest('hex')}`
}

/** Commits `text` when the loader accepts it (a file without any token included); else throws its ConfigError and keeps the editable as it was. */
function commit (editable: EditableConfig, text: string): void {
  const config = parseConfig(text, editable.file, {}, { requireToken: false })
  editable.text = text
  editable.document = parseDocument(text)
  editable.config = config
}

function keysList (editable: EditableConfig): YAMLSeq | undefined {
  const keys = editable.document.getIn(['auth', 'keys'], true)
  return isSeq(keys) ? keys : undefined
}

function entryOf (editable: EditableConfig, name: string): { index: number, entry: YAMLMap, keys: YAMLSeq } {
  const keys = keysList(editable)
  const index = keys?.items.findIndex(item => isMap(item) && item.get('name') === name) ?? -1
  if (keys === undefined || index < 0) {
    throw new ConfigError(`${editable.file}: no key named "${name}" (see: ollama-proxy keys list)`, { file: editable.file, field: 'name' })
  }
  return { index, entry: keys.items[index] as YAMLMap, keys }
}

/**
 * Appends a named key, stored as the digest of `key`, to auth.keys (creating the list when the
 * file has none). Throws ConfigError naming the field: an invalid or taken name, an expiry in the
 * past, or anything the loader refuses in the new entry (`auth.keys.<n>.<field>`).
 */
export function addNamedKey (editable: EditableConfig, spec: NewKey, key: string, now = Date.now()): void {
  const { file } = editable
  if (typeof spec.name !== 'string' || !NAME_PATTERN.test(spec.name)) {
    throw new ConfigError(`"${String(spec.name)}" is not a valid key name: use up to 64 letters, digits, dot, dash or underscore, starting with a letter or digit`, { file, field: 'name' })
  }
  if (editable.config.auth.keys.some(k => k.name === spec.name)) {
    throw new ConfigError(`${file}: a key named "${spec.name}" exists already; revoke it first or choose another name`, { file, field: 'name' })
  }
  const entry: Record<string, unknown> = { name: spec.name, key: sha256Entry(key), scopes: spec.scopes }
  if (spec.models !== undefined && spec.models.length > 0) entry.models = spec.models
  if (spec.limits !== undefined && Object.keys(spec.limits).length > 0) entry.limits = spec.limits
  if (spec.caps !== undefined && Object.keys(spec.caps).length > 0) entry.caps = spec.caps
  if (spec.expires_at !== undefined) entry.expires_at = spec.expires_at
  if (spec.weight !== undefined) entry.weight = spec.weight
  const expiresAt = typeof spec.expires_at === 'string' ? expiryFromIso(spec.expires_at) : undefined
  if (expiresAt !== undefined && expiresAt <= now) {
    const field = `auth.keys.${editable.config.auth.keys.length}.expires_at`
    throw new ConfigError(`${file}: ${field}: ${spec.expires_at ?? ''} is in the past; a new key must expire later`, { file, field })
  }
  commit(editable, spliceNewKey(editable, entry) ?? documentWithNewKey(editable, entry))
}

/** The text with the entry added to a block-style auth.keys (or a flow one), or undefined for shapes edited through the document. */
function spliceNewKey ({ text, document }: EditableConfig, entry: Record<string, unknown>): string | undefined {
  const auth = document.get('auth', true)
  if (!isMap(auth) || auth.flow === true || auth.items.length === 0) return undefined
  const authAt = rangeOf(auth)
  const firstKey = rangeOf(auth.items[0].key)
  if (authAt === undefined || firstKey === undefined) return undefined
  const pairIndent = firstKey[0] - lineStart(text, firstKey[0])
  const pair = auth.items.find(item => (item.key as { value?: unknown } | null)?.value === 'keys')
  const keys = pair?.value
  if (pair === undefined) {
    const at = afterLine(text, authAt[1])
    return applyEdits(text, [{ start: at, end: at, text: newlineBefore(text, at) + `${' '.repeat(pairIndent)}keys:\n` + entryLines(entry, pairIndent + 2) }])
  }
  if (isSeq(keys) && keys.items.length > 0) {
    const first = rangeOf(keys.items[0])
    const last = rangeOf(keys.items[keys.items.length - 1])
    if (first === undefined || last === undefined) return undefined
    if (keys.flow === true) return applyEdits(text, [{ start: last[1], end: last[1], text: `, ${flowLiteral(entry)}` }])
    const dash = text.lastIndexOf('-', first[0])
    const at = afterLine(text, last[1])
    return applyEdits(text, [{ start: at, end: at, text: newlineBefore(text, at) + entryLines(entry, dash - lineStart(text, dash)) }])
  }
  // `keys:` empty or `keys: []`: the pair's lines become a block list.
  const keyAt = rangeOf(pair.key)
  if (!(keys === null || keys === undefined || (isSeq(keys) && keys.items.length === 0)) || keyAt === undefined) return undefined
  const end = rangeOf(keys)?.[1] ?? keyAt[1]
  return applyEdits(text, [{ start: keyAt[0], end: afterLine(text, end), text: 'keys:\n' + entryLines(entry, pairIndent + 2) }])
}

function documentWithNewKey ({ document }: EditableConfig, entry: Record<string, unknown>): string {
  const copy = document.clone()
  const node = copy.createNode(entry) as YAMLMap
  for (const name of ['scopes', 'models', 'limits', 'caps']) {
    const child = node.get(name, true)
    if (isSeq(child) || isMap(child)) child.flow = true
  }
  const keys = copy.getIn(['auth', 'keys'], true)
  if (isSeq(keys)) keys.add(node)
  else copy.setIn(['auth', 'keys'], copy.createNode([node]) as YAMLSeq)
  return copy.toString()
}

/**
 * Removes the named key from auth.keys; aliases elsewhere into its entry keep their values.
 * Throws ConfigError when there is no key of that name.
 */
export function removeNamedKey (editable: EditableConfig, name: string): void {
  const { index, keys } = entryOf(editable, name)
  const { text, document } = editable
  const auth = document.get('auth', true) as YAMLMap
  const pair = auth.items.find(p => (p.key as { value?: unknown } | null)?.value === 'keys')
  const keyAt = rangeOf(pair?.key)
  const listAt = rangeOf(keys)
  if (keyAt === undefined || listAt === undefined) throw new ConfigError(`${editable.file}: auth.keys: cannot be edited in place`, { file: editable.file, field: 'auth.keys' })
  // The last key: an empty list stays valid (a bare `keys:` would be null).
  const emptyList: TextEdit = keys.flow === true
    ? { start: listAt[0], end: listAt[1], text: '[]' }
    : { start: keyAt[0], end: afterLine(text, listAt[1]), text: 'keys: []\n' }
  commit(editable, applyEdits(text, removeItemEdits(document, text, keys, index, emptyList)))
}

/** The previous_keys change that drops those expired at `now` and adds `extra`; undefined when nothing changes. */
function previousKeysChange (editable: EditableConfig, index: number, now: number, extra?: { key: string, expires_at: string }): FieldChange | undefined {
  const settings = editable.config.auth.keys[index]
  const entry = (editable.document.getIn(['auth', 'keys', index], true) as YAMLMap).toJS(editable.document) as { previous_keys?: Array<{ key: string, expires_at: string }> }
  const written = entry.previous_keys ?? []
  const kept = written.filter((_, j) => settings.previousKeys[j].expiresAt > now)
  if (extra !== undefined) kept.push(extra)
  if (kept.length === written.length && extra === undefined) return undefined
  return kept.length === 0 ? { remove: true } : { set: kept }
}

/**
 * Replaces the named key's secret with `key` (its digest is stored). With `graceMs` > 0 the old
 * secret stays valid as the same key until now + graceMs, kept as a digest under previous_keys
 * (previous keys already expired are dropped); without, every old secret stops at once, those
 * still in the grace of an earlier rotation too (a rotation without grace is how a leaked key is
 * stopped). Returns when the old secret stops (ms since the epoch). Throws ConfigError for an
 * unknown name.
 */
export function rotateNamedKey (editable: EditableConfig, name: string, key: string, graceMs = 0, now = Date.now()): { previousValidUntil: number } {
  const { index, entry } = entryOf(editable, name)
  const old = editable.config.auth.keys[index]
  const changes = new Map<string, FieldChange>([['key', { set: sha256Entry(key) }]])
  const until = now + Math.max(0, graceMs)
  const previous = graceMs > 0
    ? previousKeysChange(editable, index, now, { key: `sha256:${secretSha256Hex(old.key)}`, expires_at: isoTime(until) })
    : entry.has('previous_keys') ? { remove: true } as const : undefined
  if (previous !== undefined) changes.set('previous_keys', previous)
  commit(editable, applyEdits(editable.text, mapEdits(editable.document, editable.text, entry, changes)))
  return { previousValidUntil: graceMs > 0 ? until : now }
}

function subChanges (changes: Record<string, unknown>): Map<string, FieldChange> {
  return new Map(Object.entries(changes).filter(([, v]) => v !== undefined).map(([k, v]) => [k, v === null ? { remove: true } : { set: v }]))
}

/**
 * Sets scopes, models, limits, caps, expires_at and weight of an existing key (see KeyChanges);
 * previous keys expired at `now` are dropped. Throws ConfigError: an unknown name (field
 * `name`), or what the loader refuses in the result, naming `auth.keys.<n>.<field>`.
 */
export function updateNamedKey (editable: EditableConfig, name: string, changes: KeyChanges, now = Date.now()): void {
  const { index, entry } = entryOf(editable, name)
  const current = editable.config.auth.keys[index]
  const fields = new Map<string, FieldChange>()
  if (changes.scopes !== undefined) fields.set('scopes', { set: changes.scopes })
  if (changes.models !== undefined) fields.set('models', changes.models === null || changes.models.length === 0 ? { remove: true } : { set: changes.models })
  const written = entry.toJS(editable.document) as Record<string, unknown>
  for (const [field, given] of [['limits', changes.limits], ['caps', changes.caps]] as const) {
    if (given === undefined) continue
    const merge = subChanges(given as Record<string, unknown>)
    const after = { ...(written[field] as Record<string, unknown> | undefined) }
    for (const [k, change] of merge) {
      if ('set' in change) after[k] = change.set
      else delete after[k]
    }
    if (merge.size > 0) fields.set(field, Object.keys(after).length === 0 ? { remove: true } : { merge })
  }
  if (changes.expires_at !== undefined) fields.set('expires_at', changes.expires_at === null ? { remove: true } : { set: changes.expires_at })
  if (changes.weight !== undefined) fields.set('weight', changes.weight === null ? { remove: true } : { set: changes.weight })
  const previous = current.previousKeys.length > 0 ? previousKeysChange(editable, index, now) : undefined
  if (previous !== undefined) fields.set('previous_keys', previous)
  for (const [field, change] of [...fields]) {
    if ('remove' in change && !entry.has(field)) fields.delete(field)
  }
  if (fields.size === 0) return
  commit(editable, applyEdits(editable.text, mapEdits(editable.document, editable.text, entry, fields)))
}

export { saveConfig } from './config-file-writer.js'
