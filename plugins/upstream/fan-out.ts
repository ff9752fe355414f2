import { PassThrough } from 'node:stream'
import type { Agent, Dispatcher } from 'undici'
import type { Exchange } from '../http/exchange.js'
import { assertIdentityEncoding, discard, LineSplitter, MAX_ANSWER_BYTES, MAX_LINE_BYTES, readBounded, UnreadableAnswer } from './bounded-read.js'
import { hostRequestHeaders } from './host-requests.js'
import type { Host } from './upstream-pool.js'

function queryOf (url: string): string {
  const at = url.indexOf('?')
  return at < 0 ? '' : url.slice(at)
}

interface HostAnswer { host: Host, status: number, body: string }

/** One host's call of a fan-out; the exchange is its abort signal (a client that leaves stops every host). */
function requestOptions (host: Host, path: string, exchange: Exchange): Dispatcher.RequestOptions {
  const request = exchange.request
  return {
    origin: host.url,
    path: host.basePath + path + queryOf(request.url),
    method: request.method as Dispatcher.HttpMethod,
    headers: hostRequestHeaders(host, { 'content-type': 'application/json', 'x-request-id': request.id, 'accept-encoding': 'identity' }),
    body: exchange.body,
    signal: exchange as never
  }
}

/**
 * Model management without a named host goes to every healthy host. Progress streams are merged
 * line by line, each line tagged with its host; single answers are combined: 200 with the first
 * host's body when all succeeded, else the first failure's status with each host's outcome.
 */
export async function fanOut (agent: Agent, hosts: readonly Host[], path: string, exchange: Exchange, streamed: boolean): Promise<void> {
  const reply = exchange.reply
  reply.header('x-ollama-upstream', hosts.map(h => h.name).join(','))
  if (streamed) {
    mergeStreams(agent, hosts, path, exchange)
    return
  }
  const answers: HostAnswer[] = await Promise.all(hosts.map(async host => {
    let answer: Dispatcher.ResponseData
    try {
      answer = await agent.request(requestOptions(host, path, exchange))
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
function mergeStreams (agent: Agent, hosts: readonly Host[], path: string, exchange: Exchange): void {
  const reply = exchange.reply
  const out = new PassThrough()
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
    agent.request(requestOptions(host, path, exchange)).then(({ statusCode, headers, body }) => {
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
        if (exchange.aborted) {
          done = true
          bodies.delete(body)
          finishOne()
          return
        }
        stop('the stream from this host broke off')
      })
    }, () => {
      if (!exchange.aborted) write(JSON.stringify({ host: host.name, error: `Ollama host ${host.name} is unreachable` }))
      finishOne()
    })
  }
  reply.header('content-type', 'application/x-ndjson')
  reply.send(out)
}
