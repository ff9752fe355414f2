import fp from 'fastify-plugin'
import type { ProxyConfig } from './config-loader.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The validated configuration; loaded and checked by server.ts before the app starts. */
    config: ProxyConfig
  }
}

export interface ConfigPluginOptions {
  config: ProxyConfig
}

export default fp<ConfigPluginOptions>(async function configPlugin (fastify, options) {
  fastify.decorate('config', options.config)
}, { name: 'config', fastify: '5.x' })
