// The page's only way to make elements: every string given as a child becomes a text node, so a
// name from the API (a key, a model from Ollama's listings, a host) can never become markup.

const SVG_NS = 'http://www.w3.org/2000/svg'

/**
 * An HTML element: `attributes` are set with setAttribute (`class`, `title`, `data-*`, ...),
 * `children` are nodes or strings (as text), null and undefined are skipped.
 */
export function el (tag, attributes = {}, ...children) {
  return fill(document.createElement(tag), attributes, children)
}

/** An SVG element, as {@link el}. */
export function svg (tag, attributes = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attributes, children)
}

function fill (node, attributes, children) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value))
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue
    node.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child)
  }
  return node
}

/** Replaces everything inside `node` with `children`. */
export function replaceChildren (node, ...children) {
  node.replaceChildren()
  fill(node, {}, children)
}

export function byId (id) {
  const node = document.getElementById(id)
  if (node === null) throw new Error(`the page has no #${id}`)
  return node
}

const numberFormat = new Intl.NumberFormat('en')

/** 1234567 -> "1,234,567". */
export function formatNumber (n) {
  return numberFormat.format(n)
}

/** 1234567 -> "1.2M", for axes. */
export function formatCompact (n) {
  if (n >= 1e9) return `${trim(n / 1e9)}G`
  if (n >= 1e6) return `${trim(n / 1e6)}M`
  if (n >= 1e3) return `${trim(n / 1e3)}k`
  return String(n)
}

function trim (x) {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1).replace(/\.0$/, '') : x.toFixed(2).replace(/\.?0+$/, '')
}

/** An ISO time as the reader's local date and time, minutes precision; '' for null. */
export function formatTime (iso) {
  if (iso === null || iso === undefined) return ''
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

/**
 * An expiry as written in the config: a date alone means "valid through that day, UTC", which the
 * API gives as the next midnight (`2027-07-01T00:00:00Z` for `2027-06-30`); that is shown as the
 * date written. Any other time is shown as a time. '' for null.
 */
export function expiryText (iso) {
  if (iso === null || iso === undefined) return ''
  return /T00:00:00(\.000)?Z$/.test(iso) ? new Date(Date.parse(iso) - 1).toISOString().slice(0, 10) : iso
}

/** How the key list shows an expiry: "through 2027-06-30 (UTC)" or a local time. */
export function formatExpiry (iso) {
  const text = expiryText(iso)
  return text.length === 10 ? `through ${text} (UTC)` : formatTime(iso)
}

/** Milliseconds as "850 ms", "12.3 s", "4 min 05 s". */
export function formatElapsed (ms) {
  if (ms < 1000) return `${ms} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  const seconds = Math.floor(ms / 1000)
  return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, '0')} s`
}

/**
 * How the page names a model: Ollama's default registry and namespace left out
 * (`registry.ollama.ai/library/llama3.2:latest` -> `llama3.2:latest`), as the usage report does.
 */
export function modelLabel (name) {
  const library = 'registry.ollama.ai/library/'
  if (name.startsWith(library)) return name.slice(library.length)
  return name.startsWith('registry.ollama.ai/') ? name.slice('registry.ollama.ai/'.length) : name
}

/** "used / limit" with a meter when the budget has a limit, "used" alone when it has none. */
export function budgetCell (used, limit) {
  const text = limit === null || limit === undefined ? formatNumber(used) : `${formatNumber(used)} / ${formatNumber(limit)}`
  if (limit === null || limit === undefined) return el('span', { class: 'budget' }, text)
  const ratio = limit === 0 ? 1 : used / limit
  return el('span', { class: 'budget' },
    el('meter', { min: 0, max: Math.max(limit, 1), low: Math.max(limit, 1) * 0.75, high: Math.max(limit, 1) * 0.9, optimum: 0, value: Math.min(used, Math.max(limit, 1)), title: `${Math.round(ratio * 100)}% used` }),
    ' ', text)
}
