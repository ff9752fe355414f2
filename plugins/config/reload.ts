import fp from 'fastify-plugin'
import { EventEmitter } from 'node:events'
import { parseConfig } from './config-loader.js'
import { readText, SettledFileWatch, textSha256Hex } from './config-file-watch.js'
import { sharedSeedTokens } from './token-rules.js'

/**
 * What `configReloads` emits. 'settling' (ConfigSettling) when a watched change was first read;
 * 'reloaded' (ConfigReloaded) after a new config was applied; 'reload-failed' (ConfigReloadFailed)
 * after one was refused (the previous config stays). `digest` is the file text's SHA-256 (hex).
 */
export interface ConfigSettling { reason: string, digest: string | null }
export interface ConfigReloaded { reason: string, digest: string, keys: number }
export interface ConfigReloadFailed { reason: string, digest: string | null, error: string }

declare module 'fastify' {
  interface FastifyInstance {
    /** Re-reads the config file now; swaps keys, scopes, allowlists and limits when it is valid. */
    reloadConfig (reason: string): boolean
    /** Emits 'settling', 'reloaded' and 'reload-failed' (see ConfigReloaded): for tests and operators' hooks. */
    configReloads: EventEmitter
  }
}

export interface ReloadOptions {
  /** Watch the file's directory and listen for SIGHUP (server.ts); tests may call reloadConfig directly. */
  watch?: boolean
}

/** A change is applied once two reads this far apart (ms) return the same bytes with no event on the file between. */
const SETTLE_MS = 200

/**
 * Live reload of the auth section. A change is noticed by content: an event on the config file
 * (its name, Kubernetes' `..data` symlink swap, an event without a name; see SettledFileWatch)
 * or SIGHUP starts a check; the file is applied only once its bytes are settled and it parses
 * and validates. A settled file whose digest was already applied or refused is not applied again
 * unless SIGHUP asks. An invalid file is logged (one line naming the file and the field) and the
 * previous config stays. Requests in flight finish under the rules they started with.
 */
export default fp<ReloadOptions>(async function reloadPlugin (fastify, options) {
  const file = fastify.config.file
  const events = new EventEmitter()
  const initial = readText(file)
  /** digest of the last file applied or refused: the watcher skips content it has judged */
  let judged: string | null = initial === null ? null : textSha256Hex(initial)

  function apply (text: string | null, reason: string): boolean {
    const digest = text === null ? null : textSha256Hex(text)
    judged = digest
    try {
      if (text === null) throw new Error(`${file}: the file cannot be read`)
      const next = parseConfig(text, file, process.env)
      fastify.keyRing.load(next.auth)
      fastify.config.auth = next.auth
      for (const fields of sharedSeedTokens(next)) {
        fastify.log.warn({ fields }, 'the same token is in two seed lists: it gets the rights of both')
      }
      fastify.log.info({ reason, keys: fastify.keyRing.size }, 'config reloaded: keys, scopes, allowlists and limits updated')
      events.emit('reloaded', { reason, digest: digest as string, keys: fastify.keyRing.size } satisfies ConfigReloaded)
      return true
    } catch (err) {
      const error = (err as Error).message.split('\n')[0]
      fastify.log.error({ reason, error }, 'config reload refused: the file is invalid, the previous config stays in force')
      events.emit('reload-failed', { reason, digest, error } satisfies ConfigReloadFailed)
      return false
    }
  }

  fastify.decorate('configReloads', events)
  fastify.decorate('reloadConfig', function reloadConfig (reason: string): boolean {
    return apply(readText(file), reason)
  })

  if (options.watch !== true) return

  const watch = new SettledFileWatch(file, SETTLE_MS, {
    onSettling: (text, reason) => events.emit('settling', { reason, digest: text === null ? null : textSha256Hex(text) } satisfies ConfigSettling),
    onSettled: (text, reason, forced) => {
      if (forced || (text === null ? null : textSha256Hex(text)) !== judged) apply(text, reason)
    },
    onWatchError: (message) => fastify.log.warn({ error: message }, 'config watch failed; reload with SIGHUP')
  })
  const onSighup = () => watch.request('SIGHUP', true)
  process.on('SIGHUP', onSighup)
  fastify.addHook('onClose', async () => {
    watch.close()
    process.off('SIGHUP', onSighup)
  })
}, { name: 'reload', fastify: '5.x', dependencies: ['config', 'auth'] })
