import type Database from 'better-sqlite3'

/** Most distinct names a table takes; later ones are counted under FOLDED_NAME. */
export const MAX_NAMES = 10_000
/** Longer names (a client-chosen model name) are counted under FOLDED_NAME too. */
export const MAX_NAME_LENGTH = 512
export const FOLDED_NAME = 'other'

/**
 * A table of names (keys, models or hosts) and their integer ids, all held in memory: rows
 * carry the ids, reports the names. Client-chosen names cannot grow it without bound: past
 * MAX_NAMES names, or past MAX_NAME_LENGTH characters, a name is counted as FOLDED_NAME.
 */
export class NameTable {
  private readonly ids = new Map<string, number>()
  private readonly names = new Map<number, string>()
  private readonly insert: Database.Statement | undefined
  private highest = 0

  constructor (db: Database.Database, table: 'api_keys' | 'models' | 'hosts', readOnly: boolean) {
    for (const row of db.prepare(`SELECT id, name FROM ${table}`).all() as Array<{ id: number, name: string }>) this.remember(row.id, row.name)
    this.insert = readOnly ? undefined : db.prepare(`INSERT INTO ${table} (name) VALUES (?)`)
  }

  /** The id of `name`, added to the table when new (call it inside a write transaction). */
  idOf (name: string): number {
    const known = this.ids.get(name)
    if (known !== undefined) return known
    if (this.insert === undefined) throw new Error('the usage database is open read-only')
    if (name !== FOLDED_NAME && (this.ids.size >= MAX_NAMES || name.length > MAX_NAME_LENGTH)) return this.idOf(FOLDED_NAME)
    const id = Number(this.insert.run(name).lastInsertRowid)
    this.remember(id, name)
    return id
  }

  /** The id of a name already in the table; undefined otherwise. */
  knownId (name: string): number | undefined {
    return this.ids.get(name)
  }

  /** The name of an id; "#<id>" for an id the table does not hold (a damaged row). */
  nameOf (id: number): string {
    return this.names.get(id) ?? `#${id}`
  }

  /** The highest id held (0 when empty): the mark rollBackTo returns to. */
  get highestId (): number {
    return this.highest
  }

  /** Forgets the ids above `mark`, added by a transaction that was rolled back, so they are inserted again. */
  rollBackTo (mark: number): void {
    if (this.highest <= mark) return
    for (const [id, name] of this.names) {
      if (id > mark) {
        this.names.delete(id)
        this.ids.delete(name)
      }
    }
    this.highest = mark
  }

  private remember (id: number, name: string): void {
    this.ids.set(name, id)
    this.names.set(id, name)
    this.highest = Math.max(this.highest, id)
  }
}
