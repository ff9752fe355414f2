// The proxy's keyed API as the page calls it. The key lives in this tab's sessionStorage and is
// sent only in the Authorization header of the page's own fetch calls: never in a URL, never in a
// cookie (so no other site can make the browser use it).

const STORAGE_KEY = 'ollama-proxy.key'

export const session = {
  /** The key signed in with, or null. */
  get key () {
    return sessionStorage.getItem(STORAGE_KEY)
  },
  set (key) {
    sessionStorage.setItem(STORAGE_KEY, key)
  },
  clear () {
    sessionStorage.removeItem(STORAGE_KEY)
  }
}

/** An answer of the API other than 2xx: its status and the proxy's one-line `error`. */
export class ApiError extends Error {
  constructor (status, message) {
    super(message)
    this.name = 'ApiError'
    this.status = status
  }
}

/**
 * Calls `path` of the proxy's API (`proxy/me`, `proxy/keys/NAME`, ...), relative to the page so a
 * front that serves the proxy under a path prefix keeps working. Resolves to the parsed JSON
 * answer; rejects with ApiError (401: the key is missing, wrong, expired or lacks the scope).
 */
export async function api (method, path, body) {
  const key = session.key
  if (key === null) throw new ApiError(401, 'not signed in')
  const headers = { Authorization: `Bearer ${key}` }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const response = await fetch(new URL(`../../${path}`, document.baseURI), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
    referrerPolicy: 'no-referrer'
  })
  const text = await response.text()
  let data = null
  try {
    data = text === '' ? null : JSON.parse(text)
  } catch {
    data = null
  }
  if (!response.ok) {
    const message = data !== null && typeof data.error === 'string' ? data.error : `${response.status} ${response.statusText}`
    throw new ApiError(response.status, message)
  }
  return data
}

/** The path segment of a key name (names are letters, digits, `.`, `_`, `-`; encoded anyway). */
export function keyPath (name, action = '') {
  return `proxy/keys/${encodeURIComponent(name)}${action === '' ? '' : '/' + action}`
}
