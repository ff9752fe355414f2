import type { Agent, Dispatcher } from 'undici'
import { assertIdentityEncoding, discard, MAX_LISTING_BYTES, readBounded, UnreadableAnswer } from './bounded-read.js'
import type { Host } from './upstream-pool.js'

/** ms a health check or a model-list read may take. */
export const PROBE_TIMEOUT_MS = 2000

/**
 * Headers for a request the proxy itself makes to a host: the given ones, the host's fixed
 * headers and its Basic credentials from its configured URL (a client's credentials never go upstream).
 */
export function hostRequestHeaders (host: Host, headers: Record<string, string>): Record<string, string> {
  const all = { ...headers, ...host.headers }
  if (host.authorization !== null) all.authorization = host.authorization
  return all
}

/**
 * GET a JSON document from one host through `agent`, asking for `identity` encoding: undefined
 * when the host cannot be reached or answers other than 200. Raises UnreadableAnswer when the
 * answer is compressed, larger than `maxBytes` (default MAX_LISTING_BYTES) or not JSON.
 */
export async function getJson (agent: Agent, host: Host, path: string, headers: Record<string, string> = {}, timeoutMs = PROBE_TIMEOUT_MS, maxBytes = MAX_LISTING_BYTES): Promise<unknown> {
  let answer: Dispatcher.ResponseData
  try {
    answer = await agent.request({ origin: host.url, path: host.basePath + path, method: 'GET', headers: hostRequestHeaders(host, { ...headers, 'accept-encoding': 'identity' }), signal: AbortSignal.timeout(timeoutMs) })
  } catch {
    return undefined
  }
  const { statusCode, headers: answerHeaders, body } = answer
  try {
    if (statusCode !== 200) {
      // undici's dump reads at most 128 KiB to keep the connection, else closes it.
      await body.dump()
      return undefined
    }
    const what = `the answer of ${host.name} to ${path.split('?')[0]}`
    assertIdentityEncoding(answerHeaders, what)
    const raw = await readBounded(body, maxBytes, what)
    try {
      return JSON.parse(raw.toString('utf8'))
    } catch {
      throw new UnreadableAnswer(`${what} is not JSON`)
    }
  } catch (err) {
    discard(body)
    if (err instanceof UnreadableAnswer) throw err
    return undefined
  }
}
