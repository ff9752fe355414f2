import type { IncomingHttpHeaders } from 'node:http'

/** Where an upstream call goes: a host of plugins/upstream/upstream-pool.ts. */
export interface UpstreamTarget {
  /** The host's name (config `name`, or host-N): never its address. */
  name: string
  /** Origin only, e.g. `http://gpu1:11434`. */
  url: string
  /** Ollama's path prefix on this host ('' or '/ollama'). */
  basePath: string
  /** The proxy's own credentials for this host (`Basic ...`), or null. */
  authorization: string | null
  /** Fixed headers sent on every request to this host (config `headers`). */
  headers: Readonly<Record<string, string>>
}

/** Ollama's answer as reply-from hands it over. */
export interface UpstreamResponse {
  statusCode: number
  headers: IncomingHttpHeaders
  stream: NodeJS.ReadableStream
}
