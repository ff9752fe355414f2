// One key's usage on one day, packed: a run of unsigned LEB128 varints, one group per model
// and host. A table row per group would spend more bytes on row headers and keys than on the
// counts themselves.

/** Counts of one model on one host (ids are the store's own, or indexes in a named blob). */
export interface CellCounts {
  requests: number
  promptTokens: number
  completionTokens: number
}

/** A cell's place: model id times CELL_SPAN plus host id, so one number keys a map. */
export const CELL_SPAN = 1 << 20

export type CellVisitor = (model: number, host: number, requests: number, promptTokens: number, completionTokens: number) => void

const NAMED_FORMAT = 1

class Writer {
  private bytes = new Uint8Array(256)
  private length = 0

  private reserve (size: number): void {
    if (this.length + size <= this.bytes.length) return
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + size))
    grown.set(this.bytes)
    this.bytes = grown
  }

  varint (value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`a count must be a whole number from 0 to 2^53, got ${value}`)
    this.reserve(8)
    while (value >= 128) {
      this.bytes[this.length++] = (value % 128) + 128
      value = Math.floor(value / 128)
    }
    this.bytes[this.length++] = value
  }

  text (value: string): void {
    const encoded = Buffer.from(value, 'utf8')
    this.varint(encoded.length)
    this.reserve(encoded.length)
    this.bytes.set(encoded, this.length)
    this.length += encoded.length
  }

  done (): Buffer {
    return Buffer.from(this.bytes.subarray(0, this.length))
  }
}

class Reader {
  offset = 0
  constructor (private readonly bytes: Uint8Array) {}

  varint (): number {
    let value = 0
    let scale = 1
    for (;;) {
      if (this.offset >= this.bytes.length || scale > 2 ** 49) throw new Error('corrupt usage counts: a number runs past the end')
      const byte = this.bytes[this.offset++]
      value += (byte & 127) * scale
      if (byte < 128) return value
      scale *= 128
    }
  }

  text (): string {
    const length = this.varint()
    if (this.offset + length > this.bytes.length) throw new Error('corrupt usage counts: a name runs past the end')
    const text = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.offset, length).toString('utf8')
    this.offset += length
    return text
  }
}

/** Packs cells keyed by model * CELL_SPAN + host (ids below CELL_SPAN). Throws RangeError for a negative or unsafe count. */
export function encodeCells (cells: Map<number, CellCounts>): Buffer {
  const writer = new Writer()
  for (const place of [...cells.keys()].sort((a, b) => a - b)) {
    const counts = cells.get(place)!
    writer.varint(Math.floor(place / CELL_SPAN))
    writer.varint(place % CELL_SPAN)
    writer.varint(counts.requests)
    writer.varint(counts.promptTokens)
    writer.varint(counts.completionTokens)
  }
  return writer.done()
}

/** Calls `visit` for each cell of a blob from encodeCells in one pass, building no objects. Throws on a corrupt blob. */
export function forEachCell (blob: Uint8Array, visit: CellVisitor): void {
  forEachGroupOfFive(blob, 0, visit)
}

/** The varints of `bytes` from `start`, five at a time, in one pass. Throws on a corrupt run. */
function forEachGroupOfFive (bytes: Uint8Array, start: number, visit: CellVisitor): void {
  const values = [0, 0, 0, 0, 0]
  let field = 0
  let value = 0
  let scale = 1
  for (let i = start; i < bytes.length; i++) {
    const byte = bytes[i]
    value += (byte & 127) * scale
    if (byte >= 128) {
      scale *= 128
      if (scale > 2 ** 49) throw new Error('corrupt usage counts: a number is too long')
      continue
    }
    values[field++] = value
    value = 0
    scale = 1
    if (field === 5) {
      visit(values[0], values[1], values[2], values[3], values[4])
      field = 0
    }
  }
  if (field !== 0 || scale !== 1) throw new Error('corrupt usage counts: a number runs past the end')
}

/** A blob from encodeCells as a map keyed by model * CELL_SPAN + host. */
export function decodeCells (blob: Uint8Array): Map<number, CellCounts> {
  const cells = new Map<number, CellCounts>()
  forEachCell(blob, (model, host, requests, promptTokens, completionTokens) => {
    cells.set(model * CELL_SPAN + host, { requests, promptTokens, completionTokens })
  })
  return cells
}

/** Adds `counts` to the cell at `place`, creating it. */
export function addToCell (cells: Map<number, CellCounts>, place: number, counts: CellCounts): void {
  const cell = cells.get(place)
  if (cell === undefined) {
    cells.set(place, { requests: counts.requests, promptTokens: counts.promptTokens, completionTokens: counts.completionTokens })
    return
  }
  cell.requests += counts.requests
  cell.promptTokens += counts.promptTokens
  cell.completionTokens += counts.completionTokens
}

/** A cell with its names, for the copy every replica shares through Redis (its ids are its own). */
export interface NamedCell extends CellCounts {
  model: string
  host: string
}

/** Packs named cells with a table of names up front, so each name is written once. */
export function encodeNamedCells (cells: NamedCell[]): Buffer {
  const models = [...new Set(cells.map(cell => cell.model))]
  const hosts = [...new Set(cells.map(cell => cell.host))]
  const modelIndex = new Map(models.map((name, index) => [name, index]))
  const hostIndex = new Map(hosts.map((name, index) => [name, index]))
  const writer = new Writer()
  writer.varint(NAMED_FORMAT)
  writer.varint(models.length)
  for (const name of models) writer.text(name)
  writer.varint(hosts.length)
  for (const name of hosts) writer.text(name)
  for (const cell of cells) {
    writer.varint(modelIndex.get(cell.model)!)
    writer.varint(hostIndex.get(cell.host)!)
    writer.varint(cell.requests)
    writer.varint(cell.promptTokens)
    writer.varint(cell.completionTokens)
  }
  return writer.done()
}

/**
 * Reads a blob from encodeNamedCells: `names` gets its model and host names once and returns the
 * visitor of its cells, which get indexes into those lists. Throws on a corrupt blob or an
 * unknown format.
 */
export function forEachNamedCell (blob: Uint8Array, names: (models: string[], hosts: string[]) => CellVisitor): void {
  const reader = new Reader(blob)
  const format = reader.varint()
  if (format !== NAMED_FORMAT) throw new Error(`usage counts in an unknown format (${format})`)
  const models = Array.from({ length: reader.varint() }, () => reader.text())
  const hosts = Array.from({ length: reader.varint() }, () => reader.text())
  const visit = names(models, hosts)
  forEachGroupOfFive(blob, reader.offset, (model, host, requests, promptTokens, completionTokens) => {
    if (model >= models.length || host >= hosts.length) throw new Error('corrupt usage counts: a name index out of range')
    visit(model, host, requests, promptTokens, completionTokens)
  })
}
