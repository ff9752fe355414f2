import fp from 'fastify-plugin'
import type { ProxyConfig } from './config-loader.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The validated configuration; loaded and checked by server.ts before the app starts. */
    config: ProxyConfig
    /** The time limits, budgets and expiry are judged by: ms since the epoch (Date.now, or a test's clock). */
    clock: () => number
  }
}

export interface ConfigPluginOptions {
  config: ProxyConfig
  /** Replaces Date.now for time windows, budgets and expiry (tests: day and month rollover). */
  clock?: () => number
}

export default fp<ConfigPluginOptions>(async function configPlugin (fastify, options) {
  fastify.decorate('config', options.config)
  fastify.decorate('clock', options.clock ?? Date.now)
}, { name: 'config', fastify: '5.x' })
