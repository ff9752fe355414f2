import { randomBytes } from 'node:crypto'
import { chmodSync, closeSync, fsyncSync, openSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { ConfigError } from './config-errors.js'
import { parseConfig } from './config-loader.js'
import { notWritableError } from './write-failures.js'

/** A config file's text as edited, and as it was when opened (config-editor.ts EditableConfig). */
export interface EditedConfigFile {
  file: string
  /** The file's text when opened: saveConfig refuses to overwrite a file changed since. */
  original: string
  text: string
}

/**
 * Writes an edited config back, after checking that the proxy would start with it (parseConfig,
 * exactly the loader's rules, a token required). A symlinked file is written through the link:
 * the real file is replaced, the link stays. The text goes to a temporary file beside the real
 * one with its mode, flushed, then renamed over it, so a reader (live reload) sees the old file
 * or the new one, never half of one.
 * Throws ConfigError (one line) when the proxy would refuse the result or the file changed since
 * it was opened; ConfigNotWritableError (naming the path and the fix) when the file or its
 * folder is read-only or not writable for this user.
 */
export function saveConfig (editable: EditedConfigFile): void {
  const { file, text } = editable
  parseConfig(text, file)
  let target: string
  try {
    target = realpathSync(file)
    if (readFileSync(target, 'utf8') !== editable.original) {
      throw new ConfigError(`${file}: the file changed while it was being edited; nothing was written, try again`, { file })
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw notWritableError(err, file, 'save') ?? new ConfigError(`${file}: cannot read: ${(err as Error).message}`, { file })
  }
  const mode = statSync(target).mode & 0o777
  const temporary = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    const fd = openSync(temporary, 'wx', mode)
    try {
      writeSync(fd, text)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    // openSync's mode is reduced by the umask; the original's mode is what the owner chose.
    chmodSync(temporary, mode)
    renameSync(temporary, target)
  } catch (err) {
    rmSync(temporary, { force: true })
    throw notWritableError(err, target, 'save') ?? new ConfigError(`${target}: cannot write: ${(err as Error).message}`, { file: target })
  }
  editable.original = text
}
