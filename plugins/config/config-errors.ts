/**
 * A configuration the proxy refuses, as one line: `<file>: <field>: <reason>` (or a line naming
 * an environment variable). `file` and `field` are kept apart for callers that word the error
 * their own way (the key API answers 400 naming the field); either may be undefined when the
 * problem is not about one field (a missing file, invalid YAML).
 */
export class ConfigError extends Error {
  override name = 'ConfigError'
  readonly file: string | undefined
  readonly field: string | undefined

  /** `message` is kept on one line: control characters a value brought in (a newline in a model name) are written escaped. */
  constructor (message: string, where: { file?: string, field?: string } = {}) {
    super(oneLine(message))
    this.file = where.file
    this.field = where.field
  }
}

/** A ConfigError worded `<file>: <field>: <reason>`. */
export function fieldError (file: string, field: string, reason: string): ConfigError {
  return new ConfigError(`${file}: ${field}: ${reason}`, { file, field })
}

/**
 * The config file or its folder cannot be written (EACCES, EPERM, EROFS, a missing folder, a
 * file that is a mount point). `path` is what could not be written; the message says how to fix
 * it. Distinct from ConfigError's other cases so an HTTP API can answer 409 (the request was fine,
 * the installation is not writable) where a refused change is 400.
 */
export class ConfigNotWritableError extends ConfigError {
  override name = 'ConfigNotWritableError'
  /** The errno code that refused the write: 'EACCES', 'EPERM', 'EROFS', 'ENOENT', 'EBUSY'. */
  readonly code: string
  readonly path: string

  constructor (message: string, path: string, code: string) {
    super(message, { file: path })
    this.path = path
    this.code = code
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/g

function oneLine (text: string): string {
  return text.replace(CONTROL_CHARACTERS, character => JSON.stringify(character).slice(1, -1))
}
