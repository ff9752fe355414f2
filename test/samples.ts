import type { RouteSpec } from '../routes/route-table.js'

export const DIGEST = 'sha256:' + 'a'.repeat(64)

const bodies: Record<string, unknown> = {
  '/api/show': { model: 'llama3.2' },
  '/api/chat': { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false },
  '/api/generate': { model: 'llama3.2', prompt: 'hi', stream: false },
  '/api/embed': { model: 'nomic-embed-text', input: 'hi' },
  '/api/embeddings': { model: 'nomic-embed-text', prompt: 'hi' },
  '/v1/chat/completions': { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] },
  '/v1/completions': { model: 'llama3.2', prompt: 'hi' },
  '/v1/embeddings': { model: 'nomic-embed-text', input: 'hi' },
  '/v1/responses': { model: 'llama3.2', input: 'hi' },
  '/v1/messages': { model: 'llama3.2', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
  '/api/pull': { model: 'llama3.2', stream: false },
  '/api/push': { model: 'llama3.2', stream: false },
  '/api/create': { model: 'mario', from: 'llama3.2', stream: false },
  '/api/copy': { source: 'llama3.2', destination: 'llama3.2-backup' },
  '/api/delete': { model: 'qwen3:8b' },
  '/api/experimental/web_search': { query: 'ollama' },
  '/api/experimental/web_fetch': { url: 'https://ollama.com' }
}

export interface SampleRequest { path: string, init: RequestInit }

/** A valid request for a route-table row: its path with params filled and a body its schema accepts. */
export function sampleRequest (spec: RouteSpec): SampleRequest {
  const path = spec.path
    .replace(':digest', DIGEST)
    .replace(':model', 'llama3.2')
    .replace(':key', 'c3NoLWVkMjU1MTk')
  const init: RequestInit = { method: spec.method }
  if (spec.body === 'json') {
    const body = bodies[spec.upstream]
    init.body = body === undefined ? '' : JSON.stringify(body)
    init.headers = { 'content-type': 'application/json' }
  } else if (spec.body === 'multipart') {
    init.body = multipart()
    init.headers = { 'content-type': 'multipart/form-data; boundary=XyZ' }
  } else if (spec.body === 'raw') {
    init.body = Buffer.from('blob bytes')
    init.headers = { 'content-type': 'application/octet-stream' }
  }
  return { path, init }
}

function multipart (): string {
  return [
    '--XyZ', 'Content-Disposition: form-data; name="model"', '', 'whisper', '--XyZ',
    'Content-Disposition: form-data; name="file"; filename="a.wav"', 'Content-Type: audio/wav', '', 'RIFF....', '--XyZ--', ''
  ].join('\r\n')
}

/** Merges extra headers into a sample's init. */
export function withHeaders (init: RequestInit, headers: Record<string, string>): RequestInit {
  return { ...init, headers: { ...(init.headers as Record<string, string> | undefined), ...headers } }
}
