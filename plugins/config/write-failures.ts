import { basename, dirname } from 'node:path'
import { ConfigNotWritableError } from './config-errors.js'

/** What the proxy was doing when a write failed: creating the first config, or saving an edit. */
export type WriteAction = 'create' | 'save'

const NOT_WRITABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOENT', 'ENOTDIR', 'EEXIST', 'EBUSY', 'EXDEV'])

function runningAs (): string {
  const uid = process.getuid?.()
  return uid === undefined ? 'this user' : `uid ${uid}`
}

/**
 * The one-line error for a failed write of the config `file`, naming the path and the fix; or
 * undefined when `err` is no permission or read-only problem (the caller reports it as it is).
 * 'create' is the first-start writer (the fix is to create the file, or make the folder
 * writable); 'save' is an edit by the keys CLI or the key API (the folder must be writable: the
 * file is replaced in one rename).
 */
export function notWritableError (err: unknown, file: string, action: WriteAction): ConfigNotWritableError | undefined {
  const { code, path } = err as { code?: unknown, path?: unknown }
  if (typeof code !== 'string' || !NOT_WRITABLE.has(code)) return undefined
  // The file itself appearing meanwhile is no permission problem.
  if (code === 'EEXIST' && path === file) return undefined
  const folder = dirname(file)
  const name = basename(file)
  if (action === 'create') {
    const fix = `create ${file} first (a copy of config/config.example.yaml with tokens of your own), or mount the folder writable`
    if (code === 'EROFS') return new ConfigNotWritableError(`${folder}: config folder is read-only: ${fix}`, folder, code)
    if (code === 'ENOENT') return new ConfigNotWritableError(`${folder}: the config folder does not exist and cannot be made: ${fix}`, folder, code)
    if (code === 'ENOTDIR' || code === 'EEXIST') return new ConfigNotWritableError(`${folder}: the config folder cannot be made, a file is in its way: ${fix}`, folder, code)
    return new ConfigNotWritableError(`${folder}: no permission to create ${name} in the config folder (running as ${runningAs()}): ${fix} for that user`, folder, code)
  }
  if (code === 'EROFS') {
    return new ConfigNotWritableError(`${folder}: config folder is read-only: mount the folder writable (Docker: without :ro, writable for the container's user) to change keys there`, folder, code)
  }
  if (code === 'EBUSY' || code === 'EXDEV') {
    return new ConfigNotWritableError(`${file}: the file is a mount of its own (a single-file bind mount) and cannot be replaced: mount its folder instead, writable`, file, code)
  }
  if (code === 'ENOENT' || code === 'ENOTDIR') return new ConfigNotWritableError(`${folder}: the config folder no longer exists`, folder, code)
  return new ConfigNotWritableError(`${folder}: no permission to write the config folder (running as ${runningAs()}; ${name} is replaced in one rename, so its folder must be writable): run as the file's owner, or make the folder writable for that user`, folder, code)
}
