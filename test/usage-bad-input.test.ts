import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { UsageStoreError } from '../plugins/usage/usage-database.js'
import { UsageReader } from '../plugins/usage/usage-reader.js'
import { UsageStore } from '../plugins/usage/usage-store.js'
import { tempFolder } from './usage-helper.js'

const open = (file: string, options: { timezone?: string, retentionDays?: number } = {}) =>
  UsageStore.open({ file, timezone: options.timezone ?? 'UTC', retentionDays: options.retentionDays ?? 30 })

/** Asserts opening fails with one UsageStoreError line, exactly `message`. */
function refuses (attempt: () => unknown, message: string): void {
  assert.throws(attempt, (err: Error) => {
    assert.ok(err instanceof UsageStoreError, `a UsageStoreError, got ${String(err)}`)
    assert.equal(err.message, message)
    assert.ok(!err.message.includes('\n'), 'one line')
    return true
  })
}

/** Bytes and modification time: what "never rewritten" is checked against. */
const fingerprint = (file: string) => ({ bytes: readFileSync(file).toString('base64'), mtime: statSync(file).mtimeMs })

test('usage database: a folder in the way of the file, or a file in the way of the folder', (t) => {
  const folder = tempFolder(t)
  const taken = join(folder, 'usage.sqlite')
  mkdirSync(taken)
  refuses(() => open(taken), `${taken}: a folder is in the way of the usage database`)
  writeFileSync(join(folder, 'data'), 'a file, not a folder')
  const below = join(folder, 'data', 'usage.sqlite')
  refuses(() => open(below), `${below}: cannot create the folder ${join(folder, 'data')}: a file is in the way of a folder on the path`)
})

test('usage database: a file that is not SQLite is refused and left exactly as it was', (t) => {
  const folder = tempFolder(t)
  const file = join(folder, 'usage.sqlite')
  writeFileSync(file, 'name,tokens\nstudent-17,200000\n'.repeat(200))
  const before = fingerprint(file)
  refuses(() => open(file), `${file}: cannot use the usage database: the file is not an SQLite database`)
  refuses(() => UsageReader.open({ file }), `${file}: cannot use the usage database: the file is not an SQLite database`)
  assert.deepEqual(fingerprint(file), before)
  assert.deepEqual(readdirSync(folder), ['usage.sqlite'], 'no journal or log left next to it')
})

test('usage database: another program\'s SQLite file, or a newer schema, is refused and left as it was', async (t) => {
  const folder = tempFolder(t)
  const other = join(folder, 'other.sqlite')
  const db = new Database(other)
  db.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)')
  db.close()
  const before = fingerprint(other)
  refuses(() => open(other), `${other}: an SQLite database of another program, not a usage database; it is left as it is`)
  assert.deepEqual(fingerprint(other), before)

  const newer = join(folder, 'newer.sqlite')
  await open(newer).close()
  const edit = new Database(newer)
  edit.prepare("UPDATE meta SET value = '99' WHERE name = 'schema'").run()
  edit.close()
  refuses(() => open(newer), `${newer}: usage database schema 99 is not 1 (written by another version of the proxy); it is left as it is`)
})

test('usage store options: unknown time zone, retention not a whole number of days', (t) => {
  const file = join(tempFolder(t), 'usage.sqlite')
  refuses(() => open(file, { timezone: 'Mars/Olympus_Mons' }), 'usage.timezone: unknown time zone "Mars/Olympus_Mons"')
  refuses(() => open(file, { retentionDays: 0 }), 'usage.retention_days: expected a whole number of days of at least 1, got 0')
  refuses(() => open(file, { retentionDays: 1.5 }), 'usage.retention_days: expected a whole number of days of at least 1, got 1.5')
})

test('usage reader: no database yet is one clear error, and nothing is created', (t) => {
  const folder = tempFolder(t)
  const file = join(folder, 'usage.sqlite')
  refuses(() => UsageReader.open({ file }), `${file}: no usage database there (the proxy creates it when it starts)`)
  assert.deepEqual(readdirSync(folder), [])
})

// Permissions do not bind root: as root, these cases run in a child process as nobody.
const runAsUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
const storeModule = fileURLToPath(new URL('../plugins/usage/usage-store.ts', import.meta.url))
const root = fileURLToPath(new URL('..', import.meta.url))

/** Opens a store at `file` in a child process (as nobody when the tests run as root); its error message, or "opened". */
function openElsewhere (file: string): string {
  const script = `import { UsageStore } from ${JSON.stringify(storeModule)}
try { const store = UsageStore.open({ file: ${JSON.stringify(file)}, timezone: 'UTC', retentionDays: 30 }); await store.close(); console.log('opened') }
catch (err) { console.log(err.message) }`
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', ...runAsUser })
  assert.equal(child.status, 0, child.stderr)
  return child.stdout.trim()
}

test('usage database: a read-only folder or a read-only file is refused, naming the path', { skip: process.platform === 'win32' }, (t) => {
  const folder = tempFolder(t)
  chmodSync(folder, 0o755)
  const locked = join(folder, 'locked')
  mkdirSync(locked, { mode: 0o555 })
  chmodSync(locked, 0o555)
  const inLocked = join(locked, 'usage.sqlite')
  assert.equal(openElsewhere(inLocked), `${inLocked}: cannot write in the folder ${locked}: permission denied`)
  const below = join(locked, 'sub', 'usage.sqlite')
  assert.equal(openElsewhere(below), `${below}: cannot create the folder ${join(locked, 'sub')}: permission denied`)

  const open = join(folder, 'open')
  mkdirSync(open, { mode: 0o777 })
  chmodSync(open, 0o777)
  const readOnlyFile = join(open, 'usage.sqlite')
  assert.equal(openElsewhere(readOnlyFile), 'opened')
  chmodSync(readOnlyFile, 0o444)
  const before = fingerprint(readOnlyFile)
  assert.equal(openElsewhere(readOnlyFile), `${readOnlyFile}: cannot write the usage database: permission denied`)
  assert.deepEqual(fingerprint(readOnlyFile), before)
})

test('usage database: a second proxy on the same file is refused while the first has it open (it would overwrite its counts); free again once closed', async (t) => {
  const file = join(tempFolder(t), 'usage.sqlite')
  const first = open(file)
  refuses(() => open(file), `${file}: another proxy is using this usage database (each replica needs a database of its own)`)
  await first.close()
  const second = open(file)
  await second.close()
})
