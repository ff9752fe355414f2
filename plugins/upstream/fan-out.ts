import { PassThrough } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Agent, Dispatcher } from 'undici'
import type { Listing } from '../auth/model-fields.js'
import { withHostCredentials, type Host, type UpstreamPool } from './upstream-pool.js'

const LISTING_TIMEOUT_MS = 10_000

function queryOf (url: string): string {
  const at = url.indexOf('?')
  return at < 0 ? '' : url.slice(at)
}

/**
 * /api/tags, /api/ps and /v1/models across several hosts: the union, without duplicates.
 * `answered` receives the hosts whose answers were merged, in configuration order.
 */
export async function mergedListing (pool: UpstreamPool, hosts: Host[], kind: Listing, path: string, request: FastifyRequest, answered: Host[] = []): Promise<unknown> {
  const answers = await Promise.all(hosts.map(async host =>
    await pool.getJson(host, path + queryOf(request.url), { 'x-request-id': request.id }, LISTING_TIMEOUT_MS)))
  const documents = answers.filter(a => typeof a === 'object' && a !== null) as Array<Record<string, unknown>>
  answered.push(...hosts.filter((_, i) => typeof answers[i] === 'object' && answers[i] !== null))
  if (documents.length === 0) return undefined
  const field = kind === 'openai-models' ? 'data' : 'models'
  const idOf = (item: Record<string, unknown>) => String(kind === 'openai-models' ? item.id : item.name ?? item.model)
  const seen = new Set<string>()
  const merged: Array<Record<string, unknown>> = []
  for (const document of documents) {
    const items = document[field]
    if (!Array.isArray(items)) continue
    for (const item of items as Array<Record<string, unknown>>) {
      const id = idOf(item)
      if (seen.has(id)) continue
      seen.add(id)
      merged.push(item)
    }
  }
  return kind === 'openai-models' ? { object: 'list', data: merged } : { models: merged }
}

interface HostAnswer { host: Host, status: number, body: string }

function requestOptions (host: Host, path: string, request: FastifyRequest): Dispatcher.RequestOptions {
  return {
    origin: host.url,
    path: host.basePath + path + queryOf(request.url),
    method: request.method as Dispatcher.HttpMethod,
    headers: withHostCredentials(host, { 'content-type': 'application/json', 'x-request-id': request.id }),
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
    try {
      const { statusCode, body } = await agent.request(requestOptions(host, path, request))
      return { host, status: statusCode, body: await body.text() }
    } catch (err) {
      return { host, status: 502, body: JSON.stringify({ error: `Ollama host ${host.name} is unreachable` }), cause: err }
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

function mergeStreams (agent: Agent, hosts: Host[], path: string, request: FastifyRequest, reply: FastifyReply): void {
  const out = new PassThrough()
  const controller = new AbortController()
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) controller.abort() })
  let open = hosts.length
  const finishOne = () => {
    open--
    if (open === 0) out.end()
  }
  for (const host of hosts) {
    const options = { ...requestOptions(host, path, request), signal: controller.signal }
    agent.request(options).then(({ statusCode, body }) => {
      let pending = ''
      body.setEncoding('utf8')
      body.on('data', (text: string) => {
        pending += text
        const lines = pending.split('\n')
        pending = lines.pop() ?? ''
        for (const line of lines) if (line !== '') out.write(tagLine(host, line) + '\n')
      })
      body.on('end', () => {
        if (pending !== '') out.write(tagLine(host, statusCode >= 300 && !pending.startsWith('{') ? JSON.stringify({ error: pending }) : pending) + '\n')
        finishOne()
      })
      body.on('error', () => {
        out.write(JSON.stringify({ host: host.name, error: 'the stream from this host broke off' }) + '\n')
        finishOne()
      })
    }, () => {
      if (!controller.signal.aborted) out.write(JSON.stringify({ host: host.name, error: `Ollama host ${host.name} is unreachable` }) + '\n')
      finishOne()
    })
  }
  reply.header('content-type', 'application/x-ndjson')
  reply.send(out)
}
