import { goTrimSpace, hasExplicitTag, isValidName, type NameParts, normalizePullName, parseName, parseRef } from './model-ref.js'

/**
 * Which model a name opens, read the way the Ollama server reads it (parsers ported in
 * model-ref.ts). Ollama reads a name one of three ways, depending on the route:
 * - `request`: chat, generate, embed, embeddings, show, `/v1/*`, `/v1/messages`, create's `from`
 *   (server/model_resolver.go parseAndValidateModelRef = ParseRef, then ParseName of the base);
 * - `pull`: pull and delete (parseNormalizePullModelRef = NormalizePullName, then ParseName);
 * - `literal`: copy (both names), push, create's `model`/`name`, and the names in Ollama's own
 *   listings (ParseName of the string as is: `:local` and `:cloud` are plain tags there).
 * Every reading ends in a canonical `host/namespace/model:tag`, lower case (Ollama matches
 * existing names case-insensitively, server/routes.go getExistingName; valid names are ASCII).
 * The scheme (`https://`, or `llama3.2@x://` in front of a host) never changes which model opens,
 * so it is dropped. A cloud reference is named by its legacy stub tag, as Ollama's pull does:
 * `gpt-oss:20b:cloud`, `gpt-oss:20b-cloud` and `GPT-OSS:20B-Cloud` are all
 * `registry.ollama.ai/library/gpt-oss:20b-cloud`; in every reading a tag `cloud` or `*-cloud`
 * runs on ollama.com.
 */
export type NameReading = 'request' | 'pull' | 'literal'

const READINGS: readonly NameReading[] = ['request', 'pull', 'literal']
const DEFAULT_HOST = 'registry.ollama.ai'
const DEFAULT_NAMESPACE = 'library'

/** A name as Ollama resolves it: `canonical` is `host/namespace/model:tag`, lower case. */
export interface ModelName {
  canonical: string
  parts: Pick<NameParts, 'host' | 'namespace' | 'model' | 'tag'>
  /** Runs on ollama.com under the server owner's account. */
  cloud: boolean
}

/**
 * The model `raw` names under one reading, or undefined when Ollama refuses the name there
 * (empty, `:cloud:local`, or a part that fails Name.IsValid: `@digest`, bad characters, too long).
 */
export function readModelName (raw: string, reading: NameReading): ModelName | undefined {
  const resolved = reading === 'literal' ? readLiteral(raw) : reading === 'pull' ? readPull(raw) : readRequest(raw)
  if (resolved === undefined) return undefined
  const host = asciiLower(resolved.parts.host)
  const namespace = asciiLower(resolved.parts.namespace)
  const model = asciiLower(resolved.parts.model)
  const tag = asciiLower(resolved.parts.tag)
  return { canonical: `${host}/${namespace}/${model}:${tag}`, parts: { host, namespace, model, tag }, cloud: resolved.cloud }
}

interface Resolved { parts: NameParts, cloud: boolean }

function readLiteral (raw: string): Resolved | undefined {
  const parts = parseName(raw)
  if (!isValidName(parts)) return undefined
  const tag = asciiLower(parts.tag)
  return { parts, cloud: tag === 'cloud' || tag.endsWith('-cloud') }
}

function readPull (raw: string): Resolved | undefined {
  const pulled = normalizePullName(raw)
  if ('error' in pulled) return undefined
  const parts = parseName(pulled.name)
  return isValidName(parts) ? { parts, cloud: pulled.cloud } : undefined
}

function readRequest (raw: string): Resolved | undefined {
  const ref = parseRef(raw)
  if ('error' in ref) return undefined
  const parts = parseName(ref.base)
  // Ollama validates the base it opens or sends to ollama.com; the stub tag is only the label.
  if (!isValidName(parts)) return undefined
  if (ref.source !== 'cloud') return { parts, cloud: false }
  return { parts: { ...parts, tag: hasExplicitTag(ref.base) ? `${parts.tag}-cloud` : 'cloud' }, cloud: true }
}

/**
 * The canonical name a request's model opens (`request` reading), for routing and metrics
 * labels: `LLAMA3.2` -> `registry.ollama.ai/library/llama3.2:latest`. A name Ollama would refuse
 * comes back trimmed but otherwise as sent.
 */
export function normaliseModel (raw: string): string {
  let name = normalised.get(raw)
  if (name === undefined) {
    // Client-chosen strings: the memo is bounded, and starts over when full.
    if (normalised.size >= NORMALISED_MEMO_SIZE) normalised.clear()
    name = (readModelName(raw, 'request') ?? readModelName(raw, 'literal'))?.canonical ?? goTrimSpace(raw)
    normalised.set(raw, name)
  }
  return name
}

/**
 * How reports and the admin page name a model: the normalised name without the default registry
 * and namespace (`LLAMA3.2` -> `llama3.2:latest`, `hf.co/x/y` -> `hf.co/x/y:latest`).
 */
export function displayModelName (raw: string): string {
  const name = normaliseModel(raw)
  const library = `${DEFAULT_HOST}/${DEFAULT_NAMESPACE}/`
  if (name.startsWith(library)) return name.slice(library.length)
  return name.startsWith(`${DEFAULT_HOST}/`) ? name.slice(DEFAULT_HOST.length + 1) : name
}

/** Names already normalised: a few models carry nearly every request, and parsing them is not free. */
const normalised = new Map<string, string>()
const NORMALISED_MEMO_SIZE = 4096

/** The spellings a person writes for one model, shortest first; globs are matched against each. */
function spellings (name: ModelName): string[] {
  const { host, namespace, model, tag } = name.parts
  const forms = [name.canonical]
  if (host === DEFAULT_HOST) forms.unshift(`${namespace}/${model}:${tag}`)
  if (host === DEFAULT_HOST && namespace === DEFAULT_NAMESPACE) forms.unshift(`${model}:${tag}`)
  return forms
}

/** A compiled allowlist entry. */
export type ModelPattern =
  | { kind: 'name', canonical: string }
  | { kind: 'glob', glob: RegExp, grantsCloud: boolean }

/**
 * An allowlist entry. Without `*`/`?` it is a name read like a request's model (`request`
 * reading: `nomic-embed-text` means `registry.ollama.ai/library/nomic-embed-text:latest`,
 * `gpt-oss:20b:cloud` means the cloud variant `gpt-oss:20b-cloud`); it grants that one model.
 * With `*` (any run of characters) or `?` (one character) it is a glob over the spellings of a
 * canonical name (`model:tag`, `namespace/model:tag`, full), case-insensitive. A glob grants
 * cloud variants only when it itself ends in `:cloud` or `-cloud` (`gpt-oss:*-cloud`, `*:cloud`);
 * `llama3.2*` and `*` never do.
 * @throws Error when a plain entry is not a name Ollama accepts (it could never match).
 */
export function compilePattern (pattern: string): ModelPattern {
  const text = asciiLower(goTrimSpace(pattern))
  if (/[*?]/.test(text)) {
    const body = [...text].map(c => c === '*' ? '.*' : c === '?' ? '.' : escape(c)).join('')
    return { kind: 'glob', glob: new RegExp(`^${body}$`, 's'), grantsCloud: text.endsWith(':cloud') || text.endsWith('-cloud') }
  }
  const name = readModelName(text, 'request')
  if (name === undefined) throw new Error(`allowlist entry "${pattern}" is not a model name Ollama accepts`)
  return { kind: 'name', canonical: name.canonical }
}

function escape (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

function asciiLower (text: string): string {
  return text.replace(/[A-Z]/g, c => c.toLowerCase())
}

function grants (pattern: ModelPattern, name: ModelName): boolean {
  if (pattern.kind === 'name') return pattern.canonical === name.canonical
  if (name.cloud && !pattern.grantsCloud) return false
  return spellings(name).some(form => pattern.glob.test(form))
}

/**
 * Whether an allowlist grants the model `raw` names. `reading` is how the route reads it (see
 * NameReading); when omitted the name must be granted under every reading in which Ollama accepts
 * it, so `x:local` (`x` on chat, tag `local` on copy) needs both. A name no reading accepts is
 * refused: the proxy cannot know what it opens.
 */
export function modelAllowed (patterns: readonly ModelPattern[], raw: string, reading?: NameReading): boolean {
  const names = (reading === undefined ? READINGS : [reading])
    .map(r => readModelName(raw, r))
    .filter((name): name is ModelName => name !== undefined)
  return names.length > 0 && names.every(name => patterns.some(pattern => grants(pattern, name)))
}
