import { randomUUID } from 'node:crypto'
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { NameTable } from './name-table.js'

/** A usage database that cannot be opened or written; the message names the path and the reason. */
export class UsageStoreError extends Error {
  override name = 'UsageStoreError'
}

/** Marks the file as this store's ("OPUS"), so another program's SQLite file is never written into. */
const APPLICATION_ID = 0x4f505553
const SCHEMA_VERSION = 1

// One row per key and local day; the model x host counts are packed in `cells` (packed-counts.ts).
// `redis_outbox` lists the rows changed since Redis last received them, with the flush that
// changed them last, so a row changed again while being sent stays listed.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, last_used_at INTEGER);
CREATE TABLE IF NOT EXISTS models (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS hosts (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS daily_usage (
  day INTEGER NOT NULL,
  key_id INTEGER NOT NULL,
  cells BLOB NOT NULL,
  PRIMARY KEY (day, key_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redis_outbox (
  day INTEGER NOT NULL,
  key_id INTEGER NOT NULL,
  generation INTEGER NOT NULL,
  PRIMARY KEY (day, key_id)
) WITHOUT ROWID;
`

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOTDIR: 'a file is in the way of a folder on the path',
  EEXIST: 'a file is in the way of a folder on the path',
  ENOSPC: 'no space left on the device',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the path is too long'
}

function reasonOf (err: unknown): string {
  const code = (err as { code?: string }).code
  if (code !== undefined && REASONS[code] !== undefined) return REASONS[code]
  if (code === 'SQLITE_NOTADB') return 'the file is not an SQLite database'
  if (code === 'SQLITE_READONLY') return 'the database is read-only'
  // A reader of a WAL database creates its index file (-shm) unless a running writer made it.
  if (code === 'SQLITE_READONLY_DIRECTORY') return 'its folder is not writable, and reading it while the proxy is stopped needs to create the index file (-shm) there'
  if (code === 'SQLITE_CORRUPT') return 'the database file is damaged'
  return err instanceof Error ? err.message : String(err)
}

/** What opening for writing needs: an existing folder we may create files in, and a writable file if it exists. */
function checkWritablePath (file: string): void {
  const folder = dirname(file)
  if (existsSync(file) && statSync(file).isDirectory()) throw new UsageStoreError(`${file}: a folder is in the way of the usage database`)
  try {
    mkdirSync(folder, { recursive: true })
  } catch (err) {
    throw new UsageStoreError(`${file}: cannot create the folder ${folder}: ${reasonOf(err)}`)
  }
  if (!statSync(folder).isDirectory()) throw new UsageStoreError(`${file}: ${folder} is not a folder`)
  try {
    // The write-ahead log and its index are files next to the database.
    accessSync(folder, constants.W_OK | constants.X_OK)
  } catch (err) {
    throw new UsageStoreError(`${file}: cannot write in the folder ${folder}: ${reasonOf(err)}`)
  }
  if (existsSync(file)) {
    try {
      accessSync(file, constants.R_OK | constants.W_OK)
    } catch (err) {
      throw new UsageStoreError(`${file}: cannot write the usage database: ${reasonOf(err)}`)
    }
  }
}

/** The three name tables: ids in the rows, names in reports. */
export interface NameTables {
  keys: NameTable
  models: NameTable
  hosts: NameTable
}

/** An open usage database: the connection, this database's replica id and its name tables. */
export interface OpenedDatabase {
  db: Database.Database
  /** The lock held while a proxy writes the database (see lockDatabase); none for a reader. */
  lock?: Database.Database
  file: string
  replicaId: string
  names: NameTables
}

/**
 * Opens (and creates, with its folder) the usage database at `file` in WAL mode, or opens an
 * existing one read-only (`readOnly`: never creates or changes anything; a reader may run next to
 * the proxy writing it). Throws UsageStoreError naming the path and the reason: a folder that
 * cannot be created or written, a folder in the way, a file that is not SQLite, an SQLite file of
 * another program, a newer schema, or (read-only) no file. The file is never deleted or
 * rewritten to recover.
 */
export function openDatabase (file: string, { readOnly = false } = {}): OpenedDatabase {
  file = resolve(file)
  if (readOnly) {
    if (!existsSync(file)) throw new UsageStoreError(`${file}: no usage database there (the proxy creates it when it starts)`)
    if (statSync(file).isDirectory()) throw new UsageStoreError(`${file}: a folder is in the way of the usage database`)
  } else {
    checkWritablePath(file)
  }
  let db: Database.Database
  try {
    db = new Database(file, { readonly: readOnly, fileMustExist: readOnly })
  } catch (err) {
    throw new UsageStoreError(`${file}: cannot open the usage database: ${reasonOf(err)}`)
  }
  try {
    const opened = prepare(db, file, readOnly)
    return readOnly ? opened : { ...opened, lock: lockDatabase(file) }
  } catch (err) {
    db.close()
    if (err instanceof UsageStoreError) throw err
    throw new UsageStoreError(`${file}: cannot use the usage database: ${reasonOf(err)}`)
  }
}

/**
 * Takes an exclusive SQLite lock on `<file>-lock`, held until the returned connection closes: two
 * proxies writing one database would overwrite each other's counts (each writes its totals
 * whole). The operating system drops the lock with the process, however it ends. Throws
 * UsageStoreError when another process (or another store of this one) holds it.
 */
function lockDatabase (file: string): Database.Database {
  let lock: Database.Database | undefined
  try {
    lock = new Database(`${file}-lock`)
    lock.pragma('locking_mode = EXCLUSIVE')
    lock.pragma('busy_timeout = 0')
    lock.exec('BEGIN EXCLUSIVE; COMMIT')
    return lock
  } catch (err) {
    lock?.close()
    if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new UsageStoreError(`${file}: another proxy is using this usage database (each replica needs a database of its own)`)
    throw new UsageStoreError(`${file}-lock: cannot lock the usage database: ${reasonOf(err)}`)
  }
}

/** Closes a database opened by openDatabase, and then its lock. */
export function closeDatabase (opened: OpenedDatabase): void {
  opened.db.close()
  opened.lock?.close()
}

function prepare (db: Database.Database, file: string, readOnly: boolean): OpenedDatabase {
  const applicationId = db.pragma('application_id', { simple: true }) as number
  const tables = db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get() as number
  if (applicationId !== APPLICATION_ID && (applicationId !== 0 || tables > 0)) {
    throw new UsageStoreError(`${file}: an SQLite database of another program, not a usage database; it is left as it is`)
  }
  if (readOnly && tables === 0) throw new UsageStoreError(`${file}: an empty file, not a usage database yet`)
  if (!readOnly) {
    const mode = db.pragma('journal_mode = WAL', { simple: true })
    if (mode !== 'wal') throw new UsageStoreError(`${file}: cannot use write-ahead logging (journal mode ${String(mode)})`)
    // NORMAL in WAL mode: a commit survives the process being killed; only a power loss may take the last ones.
    db.pragma('synchronous = NORMAL')
  }
  // A writer waits briefly (only a second writer would hold the lock; a flush must not stall the
  // event loop behind it); a reader may wait longer.
  db.pragma(`busy_timeout = ${readOnly ? 2000 : 100}`)
  if (!readOnly) {
    db.transaction(() => {
      db.exec(SCHEMA)
      db.pragma(`application_id = ${APPLICATION_ID}`)
      db.prepare('INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)').run('schema', String(SCHEMA_VERSION))
      db.prepare('INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)').run('replica', randomUUID())
    }).immediate()
  }
  const version = Number(readMeta(db, 'schema'))
  if (version !== SCHEMA_VERSION) {
    throw new UsageStoreError(`${file}: usage database schema ${version} is not ${SCHEMA_VERSION} (written by another version of the proxy); it is left as it is`)
  }
  return {
    db,
    file,
    replicaId: readMeta(db, 'replica') ?? '',
    names: {
      keys: new NameTable(db, 'api_keys', readOnly),
      models: new NameTable(db, 'models', readOnly),
      hosts: new NameTable(db, 'hosts', readOnly)
    }
  }
}

/** A value of the meta table; undefined when absent. */
export function readMeta (db: Database.Database, name: string): string | undefined {
  const value = db.prepare('SELECT value FROM meta WHERE name = ?').pluck().get(name)
  return typeof value === 'string' ? value : undefined
}

/** Sets a value of the meta table. */
export function writeMeta (db: Database.Database, name: string, value: string): void {
  db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value').run(name, value)
}
