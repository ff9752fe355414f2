import fp from 'fastify-plugin'
import replyFrom from '@fastify/reply-from'
import { Agent, type Dispatcher } from 'undici'
import { exchangeDispatcher } from './forward.js'
import { HostHealth } from './host-health.js'
import type { SlotLedger } from '../scheduling/slot-ledger.js'
import type { SlotGrant } from '../scheduling/slot-request.js'
import { UpstreamPool, type Host } from './upstream-pool.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The Ollama hosts, their health, models, slots and queue. */
    upstreams: UpstreamPool
    /** Health checks and model lists of the hosts. */
    hostHealth: HostHealth
    /** The undici agent client traffic goes through (fan-out included). */
    upstreamAgent: Agent
  }
}

/**
 * The connections to Ollama: one undici agent for client traffic, registered with reply-from
 * (which streams through it, see forward.ts), and a small one of its own for health checks and
 * model lists, so they never queue behind streams when `service.max_connections` is set.
 */
export interface UpstreamOptions {
  /** Shares hosts' slots with the other replicas (Redis leases); slots are counted here alone without one. */
  ledger?: SlotLedger
}

export default fp<UpstreamOptions>(async function upstreamPlugin (fastify, options) {
  const service = fastify.config.service
  const agent = new Agent({
    // Unlimited by default: a request parked in the proxy's pool is invisible to Ollama's
    // own queue, so Ollama's "server busy" would never come and order of service would change.
    connections: service.maxConnections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: service.firstByteTimeoutMs,
    bodyTimeout: service.idleTimeoutMs,
    connect: { timeout: service.connectTimeoutMs }
  })
  const probeAgent = new Agent({ connections: 4, pipelining: 1, keepAliveTimeout: 60_000, connect: { timeout: service.connectTimeoutMs } })

  await fastify.register(replyFrom, {
    // No `base`: each call names its host (forward.ts getUpstream), as several hosts need.
    undici: exchangeDispatcher(agent) as unknown as Dispatcher,
    // Ollama's 503 means its queue is full: retrying makes it worse.
    retryMethods: [],
    disableRequestLogging: true,
    contentTypesToEncode: []
  })

  const pool = new UpstreamPool(service.upstreams, service, fastify.log, options.ledger)
  const health = new HostHealth(pool, service, probeAgent, fastify.log)
  fastify.decorate('upstreams', pool)
  fastify.decorate('hostHealth', health)
  fastify.decorate('upstreamAgent', agent)
  fastify.exchangeServices.releaseHostSlot = exchange => {
    const grant = exchange.hostSlot as SlotGrant<Host> | null
    exchange.hostSlot = null
    grant?.release()
  }

  fastify.addHook('onReady', async () => { health.start() })
  fastify.addHook('onClose', async () => {
    health.stop()
    pool.stop()
    await Promise.all([agent.destroy(), probeAgent.destroy()])
  })
}, { name: 'upstream', fastify: '5.x', dependencies: ['config', 'exchange'] })
