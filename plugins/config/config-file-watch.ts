import { createHash } from 'node:crypto'
import { readFileSync, realpathSync, watch, type FSWatcher } from 'node:fs'
import { basename, dirname, isAbsolute, relative, sep } from 'node:path'

/** SHA-256 of a file's text, as 64 hex digits: how reload tells one content from another. */
export function textSha256Hex (text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** The file's text through any symlinks (a ConfigMap's `config.yaml -> ..data/config.yaml`); null when absent or unreadable. */
export function readText (file: string): string | null {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return null
  }
}

/**
 * Whether a directory event may concern the watched file: its own name, a Kubernetes ConfigMap's
 * `..data` symlink swap, or an event without a name (the platform could not tell). Events on
 * other files in the folder (a log written beside the config) never count.
 */
export function concernsFile (filename: string | Buffer | null, names: ReadonlySet<string>): boolean {
  return filename === null || names.has(filename.toString())
}

export interface FileWatchHandlers {
  /** A change was first read (null: unreadable) and is now settling. */
  onSettling: (text: string | null, reason: string) => void
  /** The text is settled; `forced` when SIGHUP asked (apply even if unchanged). */
  onSettled: (text: string | null, reason: string, forced: boolean) => void
  /** Watching failed; reload still works on request. */
  onWatchError: (message: string) => void
}

/**
 * Watches one file for changes and reports its text once settled: two reads `settleMs` apart
 * give the same bytes with no event on the file between. The folder is watched, not the file:
 * editors replace the file by rename, and Kubernetes swaps the `..data` symlink it points
 * through. A file that is a symlink into another folder has that folder watched too (for the
 * real file's name), so an edit through the link is seen.
 */
export class SettledFileWatch {
  private closed = false
  /** bumped by every event on the file: a read is settled only if none came since */
  private generation = 0
  private running = false
  private pending: { reason: string, force: boolean } | undefined
  private timer: NodeJS.Timeout | undefined
  private wake: (() => void) | undefined
  private readonly ownWatcher: FSWatcher | undefined
  private targetWatcher: FSWatcher | undefined
  /** the real file watched in its own folder, when the config links out of its folder */
  private target: string | undefined
  /** names in the config's folder whose events count */
  private readonly ownNames: Set<string>
  /** the real file's name, when the config links to another file of its own folder */
  private ownTarget: string | undefined

  constructor (private readonly file: string, private readonly settleMs: number, private readonly handlers: FileWatchHandlers) {
    this.ownNames = new Set([basename(file), '..data'])
    this.ownWatcher = this.watchFolder(dirname(file), this.ownNames)
    this.watchTarget()
  }

  /**
   * Asks for the file to be read: on a watched event (`force` false) it is settled first; on
   * SIGHUP (`force` true) it is applied on the next turn when no change is settling, else once
   * the change has settled.
   */
  request (reason: string, force: boolean): void {
    if (this.closed) return
    if (force && !this.running) {
      setImmediate(() => {
        if (!this.closed) this.handlers.onSettled(readText(this.file), reason, true)
      })
      return
    }
    this.changed(reason, force)
  }

  close (): void {
    this.closed = true
    clearTimeout(this.timer)
    this.wake?.()
    this.ownWatcher?.close()
    this.targetWatcher?.close()
  }

  private changed (reason: string, force: boolean): void {
    this.generation++
    this.pending = { reason, force: force || this.pending?.force === true }
    if (!this.running) {
      this.settle().catch((err: unknown) => this.handlers.onWatchError((err as Error).message))
    }
  }

  private watchFolder (folder: string, names: ReadonlySet<string>): FSWatcher | undefined {
    try {
      const watcher = watch(folder, (_event, filename) => {
        if (concernsFile(filename, names)) this.changed('file changed', false)
      })
      watcher.on('error', (err) => this.handlers.onWatchError(err.message))
      return watcher
    } catch (err) {
      this.handlers.onWatchError((err as Error).message)
      return undefined
    }
  }

  /** Watches the real file's folder when the config is a symlink out of its own folder; follows the link when it changes. */
  private watchTarget (): void {
    let real: string | undefined
    try {
      real = realpathSync(this.file)
    } catch {
      real = undefined
    }
    const own = dirname(this.file)
    const path = real === undefined ? '' : relative(own, dirname(real))
    // A ConfigMap's target lies in a timestamped folder inside the config's own: `..data` covers it.
    const outside = path === '..' || path.startsWith(`..${sep}`) || isAbsolute(path)
    // A link to another file of the same folder: that name counts in the folder's events too.
    if (this.ownTarget !== undefined) this.ownNames.delete(this.ownTarget)
    this.ownTarget = real !== undefined && path === '' && basename(real) !== basename(this.file) ? basename(real) : undefined
    if (this.ownTarget !== undefined) this.ownNames.add(this.ownTarget)
    const wanted = outside ? real : undefined
    if (wanted === this.target) return
    this.targetWatcher?.close()
    this.targetWatcher = undefined
    this.target = wanted
    if (wanted !== undefined) this.targetWatcher = this.watchFolder(dirname(wanted), new Set([basename(wanted)]))
  }

  private async pause (): Promise<void> {
    await new Promise<void>(resolve => {
      this.wake = resolve
      this.timer = setTimeout(resolve, this.settleMs)
    })
  }

  private async settle (): Promise<void> {
    this.running = true
    try {
      while (this.pending !== undefined && !this.closed) {
        const { reason } = this.pending
        let forced = this.pending.force
        this.pending = undefined
        let seen = this.generation
        let text = readText(this.file)
        this.handlers.onSettling(text, reason)
        for (;;) {
          await this.pause()
          if (this.closed) return
          const again = readText(this.file)
          if (seen === this.generation && again === text) break
          seen = this.generation
          text = again
        }
        // A SIGHUP that arrived while settling wants this content applied too; whatever was
        // asked before the last quiet read is answered by this content.
        forced = forced || (this.pending as { force: boolean } | undefined)?.force === true
        this.pending = undefined
        this.watchTarget()
        this.handlers.onSettled(text, forced ? 'SIGHUP' : reason, forced)
      }
    } finally {
      this.running = false
    }
  }
}
