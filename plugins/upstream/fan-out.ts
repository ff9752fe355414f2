import { PassThrough } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Agent, Dispatcher } from 'undici'
import { assertIdentityEncoding, discard, LineSplitter, MAX_ANSWER_BYTES, MAX_LINE_BYTES, readBounded, UnreadableAnswer } from './bounded-read.js'
import type { Listing } from '../auth/model-fields.js'
import { ProxyError } from '../http/error-shapes.js'
import { withHostCredentials, type Host, type UpstreamPool } from './upstream-pool.js'
import { onResponseClose } from '../http/per-request.js'

const LISTING_TIMEOUT_MS = 10_000

function queryOf (url: string): string {
  const at = url.indexOf('?')
  return at < 0 ? '' : url.slice(at)
}

/**
 * /api/tags, /api/ps and /v1/models across several hosts: the union, without duplicates.
 * Unreachable hosts are left out; undefined when none answered. A host whose answer cannot be
 * read (compressed, over MAX_LISTING_BYTES, not JSON, no `models`/`data` list) raises
 * ProxyError 502: a listing the proxy cannot read is never merged, filtered or passed on.
 * `answered` receives the hosts whose answers were merged, in configuration order.
 */
export async function mergedListing (pool: UpstreamPool, hosts: Host[], kind: Listing, path: string, request: FastifyRequest, answered: Host[] = []): Promise<unknown> {
  const answers = await Promise.all(hosts.map(async host => {
    let document: unknown
    try {
      document = await pool.getJson(host, path + queryOf(request.url), { 'x-request-id': request.id }, LISTING_TIMEOUT_MS)
    } catch (err) {
      throw new ProxyError(502, `could not read the model listing: ${(err as Error).message}`)
    }
    if (document !== undefined && !isListing(kind, document)) throw new ProxyError(502, `could not read the model listing: the answer of ${host.name} has no list of models`)
    return document
  }))
  const documents = answers.filter(a => a !== undefined) as Array<Record<string, unknown>>
  answered.push(...hosts.filter((_, i) => answers[i] !== undefined))
  if (documents.length === 0) return undefined
  const field = kind === 'openai-models' ? 'data' : 'models'
  const idOf = (item: Record<string, unknown>) => String(kind === 'openai-models' ? item.id : item.name ?? item.model)
  const seen = new Set<string>()
  const merged: Array<Record<string, unknown>> = []
  for (const document of documents) {
    const items = document[field]
    if (!Array.isArray(items)) continue
    for (const item of items as Array<Record<string, unknown>>) {
      if (typeof item !== 'object' || item === null) continue
      const id = idOf(item)
      if (seen.has(id)) continue
      seen.add(id)
      merged.push(item)
    }
  }
  return kind === 'openai-models' ? { object: 'list', data: merged } : { models: merged }
}

/** Ollama's listing shapes: `{"models":[...]}`, or `{"object":"list","data":[...]}` (data null when empty). */
export function isListing (kind: Listing, document: unknown): document is Record<string, unknown> {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) return false
  const items = (document as Record<string, unknown>)[kind === 'openai-models' ? 'data' : 'models']
  return Array.isArray(items) || items === null
}

interface HostAnswer { host: Host, status: number, body: string }

function requestOptions (host: Host, path: string, request: FastifyRequest): Dispatcher.RequestOptions {
  return {
    origin: host.url,
    path: host.basePath + path + queryOf(request.url),
    method: request.method as Dispatcher.HttpMethod,
    headers: withHostCredentials(host, { 'content-type': 'application/json', 'x-request-id': request.id, 'accept-encoding': 'identity' }),
    body: request.rawBody
  }
}

/**
 * Model management without a named host goes to every healthy host. Progress streams are merged
 * line by line, each line tagged with its host; single answers are combined: 200 with the first
 * host's body when all succeeded, else the first failure's status with each host's outcome.
 */
export async function fanOut (agent: Agent, hosts: Host[], path: string, request: FastifyRequest, reply: FastifyReply, streamed: boolean): Promise<void> {
  reply.header('x-ollama-upstream', hosts.map(h => h.name).join(','))
  if (streamed) {
    mergeStreams(agent, hosts, path, request, reply)
    return
  }
  const answers: HostAnswer[] = await Promise.all(hosts.map(async host => {
    let answer: Dispatcher.ResponseData
    try {
      answer = await agent.request(requestOptions(host, path, request))
    } catch {
      return { host, status: 502, body: JSON.stringify({ error: `Ollama host ${host.name} is unreachable` }) }
    }
    try {
      assertIdentityEncoding(answer.headers, `the answer of ${host.name}`)
      const body = await readBounded(answer.body, MAX_ANSWER_BYTES, `the answer of ${host.name}`)
      return { host, status: answer.statusCode, body: body.toString('utf8') }
    } catch (err) {
      discard(answer.body)
      const message = err instanceof UnreadableAnswer ? err.message : `the answer of ${host.name} broke off`
      return { host, status: 502, body: JSON.stringify({ error: message }) }
    }
  }))
  const failed = answers.find(a => a.status >= 300)
  if (failed === undefined) {
    const first = answers[0]
    if (first.body !== '') reply.header('content-type', 'application/json; charset=utf-8')
    reply.code(200).send(first.body)
    return
  }
  const outcome = Object.fromEntries(answers.map(a => [a.host.name, { status: a.status, error: errorOf(a.body) }]))
  reply.code(failed.status).header('content-type', 'application/json; charset=utf-8')
    .send({ error: `${failed.host.name}: ${errorOf(failed.body) ?? 'failed'}`, hosts: outcome })
}

function errorOf (body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: unknown }
    return typeof parsed.error === 'string' ? parsed.error : undefined
  } catch {
    return body === '' ? undefined : body.slice(0, 200)
  }
}

function tagLine (host: Host, line: string): string {
  return line.startsWith('{') ? `{"host":${JSON.stringify(host.name)},${line.slice(1)}` : line
}

/**
 * Streams every host's NDJSON progress into one answer. Each host's bytes are split into lines as
 * they come (MAX_LINE_BYTES per line: past it that host's stream is dropped with an error line);
 * when the client reads slower than the hosts write, every host is paused until it catches up.
 */
function mergeStreams (agent: Agent, hosts: Host[], path: string, request: FastifyRequest, reply: FastifyReply): void {
  const out = new PassThrough()
  const controller = new AbortController()
  onResponseClose(reply, () => { if (!reply.raw.writableFinished) controller.abort() })
  const bodies = new Set<Dispatcher.ResponseData['body']>()
  const write = (line: string) => {
    if (!out.write(line + '\n')) for (const body of bodies) body.pause()
  }
  out.on('drain', () => { for (const body of bodies) body.resume() })
  let open = hosts.length
  const finishOne = () => {
    open--
    if (open === 0) out.end()
  }
  for (const host of hosts) {
    const options = { ...requestOptions(host, path, request), signal: controller.signal }
    agent.request(options).then(({ statusCode, headers, body }) => {
      const lines = new LineSplitter(MAX_LINE_BYTES)
      let done = false
      const stop = (error: string) => {
        if (done) return
        done = true
        bodies.delete(body)
        write(JSON.stringify({ host: host.name, error }))
        discard(body)
        finishOne()
      }
      try {
        assertIdentityEncoding(headers, 'the stream from this host')
      } catch (err) {
        stop((err as Error).message)
        return
      }
      bodies.add(body)
      body.on('data', (chunk: Buffer) => {
        if (done) return
        try {
          for (const line of lines.push(chunk)) if (line.length > 0) write(tagLine(host, line.toString('utf8')))
        } catch (err) {
          stop(`the stream from this host was refused: ${(err as Error).message}`)
        }
      })
      body.on('end', () => {
        if (done) return
        done = true
        bodies.delete(body)
        const last = lines.finish()?.toString('utf8')
        if (last !== undefined) write(tagLine(host, statusCode >= 300 && !last.startsWith('{') ? JSON.stringify({ error: last }) : last))
        finishOne()
      })
      body.on('error', () => {
        if (controller.signal.aborted) {
          done = true
          bodies.delete(body)
          finishOne()
          return
        }
        stop('the stream from this host broke off')
      })
    }, () => {
      if (!controller.signal.aborted) write(JSON.stringify({ host: host.name, error: `Ollama host ${host.name} is unreachable` }))
      finishOne()
    })
  }
  reply.header('content-type', 'application/x-ndjson')
  reply.send(out)
}
