import type { Exchange } from '../http/exchange.js'
import type { TokenUsage } from '../usage/usage-meter.js'

/** Client closed request (nginx's 499): the client left before the answer was sent whole. */
export const CLIENT_LEFT_STATUS = 499
/** Ollama broke off an answer it had started: the client saw it end early. */
export const UPSTREAM_BROKE_OFF_STATUS = 502

/** The status a request is logged and counted with: the answer's, or 499/502 when it did not finish. */
export function statusOf (exchange: Exchange): number {
  switch (exchange.outcome) {
    case 'client-left': return CLIENT_LEFT_STATUS
    case 'upstream-broke-off': return UPSTREAM_BROKE_OFF_STATUS
    default: return exchange.reply.statusCode
  }
}

const round = (value: number) => Math.round(value * 10) / 10

/** pino's isoTime for now: many lines share a millisecond under load, so its text is made once per ms. */
export class LineTime {
  private lastMs = 0
  private lastIso = ''

  now (): string {
    const now = Date.now()
    if (now !== this.lastMs) {
      this.lastMs = now
      this.lastIso = new Date(now).toISOString()
    }
    return this.lastIso
  }
}
const text = JSON.stringify

// The query string stays out of the log: it is the one place a careless client puts a secret.
// So does the user:password of an absolute-form target (`GET http://user:key@host/api/tags`).
function pathOf (url: string): string {
  const query = url.indexOf('?')
  const path = query < 0 ? url : url.slice(0, query)
  return path.startsWith('/') ? path : path.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i, '$1')
}

/**
 * Characters of a model name the line keeps. Ollama's longest name (host 350, namespace, model and
 * tag 80 each: types/model/name.go) fits; a longer one is refused by Ollama and is cut here, so a
 * client cannot make one line as large as its body.
 */
export const MAX_LOGGED_MODEL_LENGTH = 1024

/** `model` as logs and the admin page show it: cut after MAX_LOGGED_MODEL_LENGTH characters, marked by `...`. */
export function shownModelName (model: string): string {
  return model.length <= MAX_LOGGED_MODEL_LENGTH ? model : `${model.slice(0, MAX_LOGGED_MODEL_LENGTH)}...`
}

function modelText (model: string): string {
  return text(shownModelName(model))
}

function usageText (usage: TokenUsage): string {
  let line = `{"promptTokens":${usage.promptTokens},"completionTokens":${usage.completionTokens}`
  if (usage.estimated === true) line += ',"estimated":true'
  if (usage.ollama !== undefined) line += `,"ollama":${text(usage.ollama)}`
  return line + '}'
}

/**
 * The request's log line, as pino writes a line of level info (`{"level":30,"time":...` then the
 * logger's `bindings`, the fields, `"msg":"request"}` and a newline), fields left out when
 * undefined. Holds no header and no query string; every string a client chose is JSON-escaped.
 */
export function accessLine (exchange: Exchange, status: number, ms: number, address: string | undefined, bindings: string, time: LineTime): string {
  const { request, route, key, upstream } = exchange
  // Request ids (sanitised or generated), methods (HTTP tokens), route patterns, key and host names
  // (checked by the config's patterns) need no escaping; the path, the model and the address might.
  let line = `{"level":30,"time":"${time.now()}"${bindings},"reqId":"${request.id}","method":"${request.method}","route":${route === undefined ? 'null' : `"${route.path}"`},"path":${text(pathOf(request.url))},"status":${status},"ms":${round(ms)}`
  if (address !== undefined) line += `,"remoteAddress":${text(address)}`
  if (key !== undefined) line += `,"key":"${key.name}","keyKind":"${key.kind}"`
  if (exchange.model !== undefined) line += `,"model":${modelText(exchange.model)}`
  if (exchange.usage !== undefined) line += `,"usage":${usageText(exchange.usage)}`
  if (exchange.queueMs !== undefined) line += `,"queueMs":${round(exchange.queueMs)}`
  if (upstream !== undefined) {
    line += `,"upstream":{"host":"${upstream.host}"`
    if (upstream.status !== undefined) line += `,"status":${upstream.status}`
    if (upstream.firstByteMs !== undefined) line += `,"firstByteMs":${round(upstream.firstByteMs)}`
    if (upstream.error !== undefined) line += `,"error":${text(upstream.error)}`
    line += '}'
  }
  if (exchange.refusedBy !== undefined) line += `,"limit":${text(exchange.refusedBy)}`
  if (exchange.outcome === 'client-left') line += ',"aborted":true'
  return line + ',"msg":"request"}\n'
}
