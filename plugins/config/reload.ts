import fp from 'fastify-plugin'
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { loadConfig } from './config-loader.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Re-reads the config file; swaps keys, scopes, allowlists and limits when it is valid. */
    reloadConfig (reason: string): boolean
  }
}

export interface ReloadOptions {
  /** Watch the file and listen for SIGHUP (server.ts); tests call reloadConfig directly. */
  watch?: boolean
}

/** Editors save in bursts (truncate, write, rename): one reload per burst. */
const DEBOUNCE_MS = 200

/**
 * Live reload of the auth section. A valid new file replaces the key ring at once (requests in
 * flight finish under the rules they started with); an invalid one is logged and ignored.
 */
export default fp<ReloadOptions>(async function reloadPlugin (fastify, options) {
  const file = fastify.config.file

  fastify.decorate('reloadConfig', function reloadConfig (reason: string): boolean {
    try {
      const next = loadConfig({ path: file })
      fastify.keyRing.load(next.auth)
      fastify.config.auth = next.auth
      fastify.log.info({ reason, keys: fastify.keyRing.size }, 'config reloaded: keys, scopes, allowlists and limits updated')
      return true
    } catch (err) {
      fastify.log.error({ reason, error: (err as Error).message }, 'config reload refused: the file is invalid, the previous config stays in force')
      return false
    }
  })

  if (options.watch !== true) return

  let timer: NodeJS.Timeout | undefined
  const schedule = (reason: string) => {
    clearTimeout(timer)
    timer = setTimeout(() => fastify.reloadConfig(reason), DEBOUNCE_MS)
  }
  const onSighup = () => schedule('SIGHUP')
  process.on('SIGHUP', onSighup)
  // The directory is watched, not the file: editors and `kubectl` replace the file by rename.
  let watcher: FSWatcher | undefined
  try {
    watcher = watch(dirname(file), (_event, name) => {
      if (name === basename(file)) schedule('file changed')
    })
  } catch (err) {
    fastify.log.warn({ error: (err as Error).message }, 'cannot watch the config file; reload with SIGHUP')
  }
  fastify.addHook('onClose', async () => {
    clearTimeout(timer)
    watcher?.close()
    process.off('SIGHUP', onSighup)
  })
}, { name: 'reload', fastify: '5.x', dependencies: ['config', 'auth'] })
