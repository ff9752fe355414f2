/**
 * A port of Ollama's two model-name parsers, kept step for step so the proxy reads a name exactly
 * as the Ollama server does (referenced commit: see ../shared/reference/ollama-api.md):
 * - `parseRef` / `normalizePullName` / `hasExplicitTag`: internal/modelref/modelref.go, which
 *   strips an explicit source suffix (`:cloud`, `:local`, a `-cloud` tag ending);
 * - `parseNameBare` / `parseName` / `isValidName`: types/model/name.go, which splits
 *   `scheme://host/namespace/model:tag` and fills defaults.
 * Go strings are bytes and these parsers only cut at ASCII separators, so UTF-16 indices give the
 * same cuts; any non-ASCII character makes a part invalid in both languages.
 */

export type ModelSource = 'unspecified' | 'local' | 'cloud'

export interface ParsedRef {
  /** The name with surrounding white space removed and any source suffix stripped. */
  base: string
  source: ModelSource
}

/** ParseRef's two errors, with Ollama's messages. */
export type RefError = 'model is required' | 'use either :local or :cloud, not both'

/** The parts of a name; absent parts are '' (as in Go's zero value). */
export interface NameParts {
  host: string
  namespace: string
  model: string
  tag: string
  scheme: string
}

/** Ollama's placeholder for a part promised by a separator but empty; never a valid part. */
export const MISSING_PART = '!MISSING!'

const DEFAULTS: NameParts = { host: 'registry.ollama.ai', namespace: 'library', model: '', tag: 'latest', scheme: 'https' }

/**
 * Go's `strings.TrimSpace`: removes `unicode.IsSpace` runes at both ends. Differs from
 * `String.prototype.trim`, which also strips U+FEFF and keeps U+0085.
 */
export function goTrimSpace (text: string): string {
  let start = 0
  let end = text.length
  while (start < end && isGoSpace(text.charCodeAt(start))) start++
  while (end > start && isGoSpace(text.charCodeAt(end - 1))) end--
  return text.slice(start, end)
}

function isGoSpace (code: number): boolean {
  return (code >= 0x09 && code <= 0x0d) || code === 0x20 || code === 0x85 || code === 0xa0 ||
    code === 0x1680 || (code >= 0x2000 && code <= 0x200a) || code === 0x2028 || code === 0x2029 ||
    code === 0x202f || code === 0x205f || code === 0x3000
}

/**
 * modelref.ParseRef: trims, then strips one explicit source suffix. A second suffix under the
 * first is a conflict (`foo:cloud:local`).
 */
export function parseRef (raw: string): ParsedRef | { error: RefError } {
  const trimmed = goTrimSpace(raw)
  if (trimmed === '') return { error: 'model is required' }
  const outer = parseSourceSuffix(trimmed)
  if (outer.explicit && parseSourceSuffix(outer.base).explicit) return { error: 'use either :local or :cloud, not both' }
  return { base: outer.base, source: outer.source }
}

function parseSourceSuffix (raw: string): ParsedRef & { explicit: boolean } {
  const colon = raw.lastIndexOf(':')
  if (colon >= 0) {
    const suffixRaw = goTrimSpace(raw.slice(colon + 1))
    // Go's ToLower is Unicode-wide, but no non-ASCII rune lowers to the letters of "cloud"/"local".
    const suffix = suffixRaw.toLowerCase()
    if (suffix === 'cloud') return { base: raw.slice(0, colon), source: 'cloud', explicit: true }
    if (suffix === 'local') return { base: raw.slice(0, colon), source: 'local', explicit: true }
    if (!suffixRaw.includes('/') && suffix.endsWith('-cloud')) {
      return { base: raw.slice(0, colon + 1) + suffixRaw.slice(0, suffixRaw.length - '-cloud'.length), source: 'cloud', explicit: true }
    }
  }
  return { base: raw, source: 'unspecified', explicit: false }
}

/** modelref.HasExplicitTag: a colon after the last slash (a host's port does not count). */
export function hasExplicitTag (name: string): boolean {
  return name.lastIndexOf(':') > name.lastIndexOf('/')
}

/**
 * modelref.NormalizePullName, used by Ollama's pull and delete: a cloud reference becomes the
 * legacy stub name (`gpt-oss:20b:cloud` -> `gpt-oss:20b-cloud`, `qwen3:cloud` stays).
 */
export function normalizePullName (raw: string): { name: string, cloud: boolean } | { error: RefError } {
  const ref = parseRef(raw)
  if ('error' in ref) return ref
  if (ref.source !== 'cloud') return { name: ref.base, cloud: false }
  return { name: hasExplicitTag(ref.base) ? `${ref.base}-cloud` : `${ref.base}:cloud`, cloud: true }
}

/** model.ParseNameBare: cuts tag, model, namespace from the right; the rest is `scheme://host`. */
export function parseNameBare (text: string): NameParts {
  const name: NameParts = { host: '', namespace: '', model: '', tag: '', scheme: '' }
  let rest = text
  // "/" is not a tag character, so a colon after the last slash starts the tag.
  const tagged = rest.lastIndexOf(':') > rest.lastIndexOf('/') ? cutPromised(rest, ':') : undefined
  if (tagged !== undefined) [rest, name.tag] = tagged
  const model = cutPromised(rest, '/')
  if (model === undefined) {
    name.model = rest
    return name
  }
  [rest, name.model] = model
  const namespace = cutPromised(rest, '/')
  if (namespace === undefined) {
    name.namespace = rest
    return name
  }
  [rest, name.namespace] = namespace
  const schemeEnd = rest.indexOf('://')
  if (schemeEnd >= 0) {
    name.scheme = rest.slice(0, schemeEnd)
    name.host = rest.slice(schemeEnd + 3)
  } else {
    name.host = rest
  }
  return name
}

/** model.ParseName: the bare parse with Ollama's defaults for every empty part but the model. */
export function parseName (text: string): NameParts {
  const bare = parseNameBare(text)
  return {
    host: bare.host || DEFAULTS.host,
    namespace: bare.namespace || DEFAULTS.namespace,
    model: bare.model,
    tag: bare.tag || DEFAULTS.tag,
    scheme: bare.scheme || DEFAULTS.scheme
  }
}

/** Name.IsValid (= IsFullyQualified): host, namespace, model and tag all present and well formed. */
export function isValidName (name: NameParts): boolean {
  return isValidPart('host', name.host) && isValidPart('namespace', name.namespace) &&
    isValidPart('model', name.model) && isValidPart('tag', name.tag)
}

export type PartKind = 'host' | 'namespace' | 'model' | 'tag' | 'digest'

/**
 * isValidPart: 1..80 characters (host 1..350), first one alphanumeric or `_`, then also `-` `_`,
 * `.` (not in a namespace) and `:` (host and digest only).
 */
export function isValidPart (kind: PartKind, text: string): boolean {
  const max = kind === 'host' ? 350 : 80
  if (text.length < 1 || text.length > max) return false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (i === 0 || !(c === '_' || c === '-' || (c === '.' && kind !== 'namespace') || (c === ':' && (kind === 'host' || kind === 'digest')))) {
      if (!/^[A-Za-z0-9_]$/.test(c)) return false
    }
  }
  return true
}

/** cutPromised: splits at the last separator; an empty side becomes MISSING_PART. */
function cutPromised (text: string, separator: string): [string, string] | undefined {
  const at = text.lastIndexOf(separator)
  if (at < 0) return undefined
  return [text.slice(0, at) || MISSING_PART, text.slice(at + separator.length) || MISSING_PART]
}
