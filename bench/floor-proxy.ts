// The floor of the card's stack: one Fastify route forwarding with @fastify/reply-from over
// undici, with no logging, auth, CORS, validation or limits. Compare its S1 req/s with ours:
//   node --import tsx bench/floor-proxy.ts <upstream port> <listen port>
// then point autocannon at it as in README.md ("Where the time goes"). It also forwards blob
// uploads (the request stream handed to undici as it is) for bench/upload-cost.mjs.
import Fastify from 'fastify'
import replyFrom from '@fastify/reply-from'
import { Agent } from 'undici'

const [upstreamPort = '11999', port = '18082'] = process.argv.slice(2)
const app = Fastify({ logger: false })
await app.register(replyFrom, {
  base: `http://127.0.0.1:${upstreamPort}`,
  undici: new Agent({ connections: null, pipelining: 1, keepAliveTimeout: 60_000 }),
  retryMethods: [],
  disableRequestLogging: true
})
app.post('/api/embeddings', (_request, reply) => reply.from('/api/embeddings'))
await app.register(async function blobs (child) {
  child.removeAllContentTypeParsers()
  child.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
  child.post('/api/blobs/:digest', (request, reply) => reply.from(request.url))
})
await app.listen({ port: Number(port), host: '127.0.0.1' })
console.log(`floor proxy on http://127.0.0.1:${port} -> :${upstreamPort}`)
// Exit (rather than die) on SIGTERM so that --cpu-prof can write its profile.
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
