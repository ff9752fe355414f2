import fp from 'fastify-plugin'
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readFileSync, watch, type FSWatcher } from 'node:fs'
import { dirname } from 'node:path'
import { parseConfig, sharedSeedTokens } from './config-loader.js'

/**
 * What `configReloads` emits. 'settling' (ConfigSettling) when a watched change was first read;
 * 'reloaded' (ConfigReloaded) after a new config was applied; 'reload-failed' (ConfigReloadFailed)
 * after one was refused (the previous config stays).
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

/** A change is applied once two reads this far apart (ms) return the same bytes with no event between. */
const SETTLE_MS = 200

function digestOf (text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** The file's text through any symlinks (a ConfigMap's `config.yaml -> ..data/config.yaml`); null when absent. */
function readText (file: string): string | null {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return null
  }
}

/**
 * Live reload of the auth section. A change is noticed by content: any event in the file's
 * directory (editors' rename-over, Kubernetes' `..data` symlink swap, an in-place write) or
 * SIGHUP starts a check; the file is applied only once its bytes are settled (unchanged across
 * SETTLE_MS with no event between) and it parses and validates. A settled file whose digest was
 * already applied or refused is not read again unless SIGHUP asks. An invalid file is logged and
 * the previous config stays. Requests in flight finish under the rules they started with.
 */
export default fp<ReloadOptions>(async function reloadPlugin (fastify, options) {
  const file = fastify.config.file
  const events = new EventEmitter()
  const initial = readText(file)
  /** digest of the last file applied or refused: the watcher skips content it has judged */
  let judged: string | null = initial === null ? null : digestOf(initial)

  function apply (text: string | null, reason: string): boolean {
    const digest = text === null ? null : digestOf(text)
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
      const error = (err as Error).message
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

  let closed = false
  /** bumped by every event in the directory: a read is settled only if none came since */
  let generation = 0
  let running = false
  let pending: { reason: string, force: boolean } | undefined
  let timer: NodeJS.Timeout | undefined
  let wake: (() => void) | undefined
  const pause = async () => await new Promise<void>(resolve => {
    wake = resolve
    timer = setTimeout(resolve, SETTLE_MS)
  })

  async function settleAndApply (): Promise<void> {
    running = true
    try {
      for (;;) {
        if (pending === undefined || closed) return
        const { reason, force } = pending
        pending = undefined
        let seen = generation
        let text = readText(file)
        events.emit('settling', { reason, digest: text === null ? null : digestOf(text) } satisfies ConfigSettling)
        for (;;) {
          await pause()
          if (closed) return
          const again = readText(file)
          const quiet = seen === generation
          if (quiet && again === text) break
          seen = generation
          text = again
        }
        const digest = text === null ? null : digestOf(text)
        // A later SIGHUP that arrived while settling wants this content applied too.
        const forced = force || (pending as { force: boolean } | undefined)?.force === true
        // Whatever was asked before the last quiet read is answered by this content.
        pending = undefined
        if (forced || digest !== judged) apply(text, forced ? 'SIGHUP' : reason)
      }
    } finally {
      running = false
    }
  }

  const schedule = (reason: string, force: boolean) => {
    generation++
    pending = { reason, force: force || pending?.force === true }
    if (!running) {
      settleAndApply().catch((err: unknown) => fastify.log.error({ error: (err as Error).message }, 'config reload failed'))
    }
  }
  const onSighup = () => schedule('SIGHUP', true)
  process.on('SIGHUP', onSighup)
  // The directory is watched, not the file: editors replace the file by rename, and Kubernetes
  // swaps the `..data` symlink the file points through, an event on another name.
  let watcher: FSWatcher | undefined
  try {
    watcher = watch(dirname(file), () => schedule('file changed', false))
    watcher.on('error', (err) => fastify.log.warn({ error: err.message }, 'config watch failed; reload with SIGHUP'))
  } catch (err) {
    fastify.log.warn({ error: (err as Error).message }, 'cannot watch the config file; reload with SIGHUP')
  }
  fastify.addHook('onClose', async () => {
    closed = true
    clearTimeout(timer)
    wake?.()
    watcher?.close()
    process.off('SIGHUP', onSighup)
  })
}, { name: 'reload', fastify: '5.x', dependencies: ['config', 'auth'] })
