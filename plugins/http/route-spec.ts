import type { TSchema } from 'typebox'
import type { Access } from '../auth/keys.js'
import type { Listing, ModelLocation } from '../auth/model-fields.js'
import { dialectOf, type Dialect } from './error-shapes.js'
import type { GoStruct } from './go-json.js'

export type Method = 'GET' | 'HEAD' | 'POST' | 'DELETE' | 'PATCH'

/**
 * What a route demands of a key: nothing ('public'), any valid key ('any-key'), a scope, or one
 * of several scopes.
 */
export type RouteAccess = Access | 'any-key' | readonly Exclude<Access, 'public'>[]

/**
 * One row of the route table (routes/route-table.ts holds the rows). Every decision the proxy
 * makes about a request (who may call it, how its body is read, where it goes, what it costs) is
 * read from its row's columns; the derived columns at the end are computed once, when the row is
 * built.
 */
export interface RouteSpec {
  method: Method
  path: string
  /** Ollama path this route forwards to; `:param`s are filled from the validated params. */
  upstream: string
  /** What a key needs to use this route. */
  access: RouteAccess
  /**
   * 'json': read whole, checked, forwarded as the original bytes; 'raw': streamed to Ollama
   * untouched; 'multipart': a form read whole for its model, forwarded as sent; 'none': no body.
   */
  body: 'json' | 'raw' | 'multipart' | 'none'
  schema?: TSchema
  /** JSON bodies: the Go struct Ollama decodes the body into; the proxy reads that view of it. */
  goStruct?: GoStruct
  params?: TSchema
  /** How Ollama answers: NDJSON stream, SSE when the client asks for it, or one document. */
  answer: 'ndjson' | 'sse' | 'json'
  /** Where the request names its model(s): for logs, allowlists, caps and routing. */
  modelAt?: ModelLocation
  /** Content-Encodings Ollama's handler decodes (middleware/openai.go, server/cloud_proxy.go); others get 415. */
  decodes?: readonly string[]
  /** Model listings, filtered per key and merged across hosts. */
  listing?: Listing
  /**
   * What the request asks of Ollama: 'read' model information (no GPU time: no concurrency slot,
   * never refused for spent tokens), 'inference' (runs a model: key and host slots, tokens
   * charged), 'manage' models (pull, push, create, copy, delete, blobs, account routes).
   */
  work: 'read' | 'inference' | 'manage'
  /**
   * Where it goes: 'one' host chosen by the routing policy; 'every' healthy host (model
   * management fans out, listings are merged); 'named' only a host the client names (blob
   * uploads); 'proxy' answered by the proxy from its health checks.
   */
  hosts: 'one' | 'every' | 'named' | 'proxy'

  /** Derived: the error dialect of the path (native, OpenAI, Anthropic). */
  readonly dialect: Dialect
  /** Derived: an inference route whose answers carry token counts (charged to the key). */
  readonly chargesTokens: boolean
  /** Derived: the proxy reads Ollama's answer (listing filter or token counts): ask for identity encoding. */
  readonly readsAnswer: boolean
}

/** A row as written in the table; the derived columns are added by {@link routeSpec}. */
export type RouteRow = Omit<RouteSpec, 'upstream' | 'answer' | 'hosts' | 'dialect' | 'chargesTokens' | 'readsAnswer'> &
  Partial<Pick<RouteSpec, 'upstream' | 'answer' | 'hosts'>>

/** Builds a row: upstream defaults to the same path, answer to one JSON document, hosts to one. */
export function routeSpec (row: RouteRow): RouteSpec {
  const chargesTokens = row.work === 'inference' && row.modelAt === 'body'
  return Object.freeze({
    upstream: row.path,
    answer: 'json' as const,
    hosts: 'one' as const,
    ...row,
    dialect: dialectOf(row.path),
    chargesTokens,
    readsAnswer: chargesTokens || row.listing !== undefined
  })
}

/** Fills `:param` segments of an upstream path from already validated params. */
export function upstreamPathFor (spec: RouteSpec, values: Record<string, string> | undefined): string {
  if (values === undefined || !spec.upstream.includes(':')) return spec.upstream
  // ':' stays literal: Ollama's digests are "sha256:<hex>" and the params were validated already.
  return spec.upstream.replace(/:([A-Za-z]+)/g, (_, name: string) => encodeURIComponent(values[name] ?? '').replaceAll('%3A', ':'))
}
