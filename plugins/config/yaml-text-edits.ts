import { isAlias, isCollection, isMap, isScalar, isSeq, visit, type Document, type Node, type Pair, type YAMLMap, type YAMLSeq } from 'yaml'

/**
 * Edits of a YAML text that touch only the bytes they mean to change: each is a splice of the
 * original text at ranges the parsed document reports, so comments, layout and quoting elsewhere
 * stay byte for byte. Values are written as flow YAML whose scalars are JSON literals (valid YAML
 * whatever they hold), so no value can break out of its field.
 */
export interface TextEdit { start: number, end: number, text: string }

type Range = [number, number, number]

/** A change to one field of a mapping: a new value, its removal, or changes to the fields of the mapping it holds. */
export type FieldChange = { set: unknown } | { remove: true } | { merge: Map<string, FieldChange> }

/**
 * The text with the edits applied; they must not overlap (the same edit twice counts once).
 * Insertions at one offset land in the order they are listed. Inserted lines end as the file's
 * do: a file written with CRLF (Windows editors) gets CRLF lines, not a mix.
 */
export function applyEdits (text: string, edits: TextEdit[]): string {
  const crlf = text.includes('\r\n')
  const distinct = [...new Map(edits.map(edit => [`${edit.start}:${edit.end}:${edit.text}`, crlf ? { ...edit, text: edit.text.replace(/\r?\n/g, '\r\n') } : edit])).values()]
  const ordered = distinct.map((edit, index) => ({ ...edit, index })).sort((a, b) => b.start - a.start || b.end - a.end || b.index - a.index)
  let result = text
  let limit = Infinity
  for (const edit of ordered) {
    if (edit.end > limit) throw new Error('overlapping edits of the config text')
    result = result.slice(0, edit.start) + edit.text + result.slice(edit.end)
    limit = edit.start
  }
  return result
}

/** A value as flow YAML on one line: `[a, b]`, `{ k: v }`, scalars as JSON literals. */
export function flowLiteral (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(flowLiteral).join(', ')}]`
  if (typeof value === 'object' && value !== null) {
    return `{ ${Object.entries(value).map(([k, v]) => `${/^[a-z_][a-z0-9_]*$/.test(k) ? k : JSON.stringify(k)}: ${flowLiteral(v)}`).join(', ')} }`
  }
  return JSON.stringify(value) ?? 'null'
}

/** A mapping as block YAML lines, the first starting with `- ` at `indent`, each value a flow literal. */
export function entryLines (entry: Record<string, unknown>, indent: number): string {
  const pad = ' '.repeat(indent)
  return Object.entries(entry).map(([k, v], i) => `${pad}${i === 0 ? '- ' : '  '}${k}: ${flowLiteral(v)}\n`).join('')
}

export function lineStart (text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1
}

/** Offset just past the newline ending the line that holds `end - 1` (the end of a node). */
export function afterLine (text: string, end: number): number {
  const newline = text.indexOf('\n', Math.max(0, end - 1))
  return newline < 0 ? text.length : newline + 1
}

/** '\n' when inserting at the end of a text that does not end in one. */
export function newlineBefore (text: string, at: number): string {
  return at === text.length && !text.endsWith('\n') && text.length > 0 ? '\n' : ''
}

export function rangeOf (node: unknown): Range | undefined {
  return (node as { range?: Range | null } | null | undefined)?.range ?? undefined
}

/** Where a node's content ends: its last scalar's end, so a comment or newline after it stays. */
export function contentEnd (node: unknown): number | undefined {
  if (isMap(node) || isSeq(node)) {
    if (node.flow === true) return rangeOf(node)?.[1]
    const last = node.items[node.items.length - 1] as Pair | Node | undefined
    if (last === undefined) return rangeOf(node)?.[1]
    return isMap(node) ? contentEnd((last as Pair).value ?? (last as Pair).key) : contentEnd(last)
  }
  return rangeOf(node)?.[1]
}

/**
 * Edits that keep every alias outside [start, end) meaning what it meant when the anchored node
 * it refers to lies inside (the region is removed or rewritten): each such alias is replaced by
 * a flow copy of the value. Without this, revoking a key whose entry holds `&std` would leave
 * `*std` elsewhere dangling, or changing it would change the other keys too.
 */
export function detachAliases (document: Document, start: number, end: number): TextEdit[] {
  const edits: TextEdit[] = []
  visit(document, {
    Alias (_, alias) {
      const at = rangeOf(alias)
      const target = alias.resolve(document)
      const targetAt = rangeOf(target)
      if (at === undefined || target === undefined || targetAt === undefined) return
      if (targetAt[0] < start || targetAt[0] >= end || (at[0] >= start && at[0] < end)) return
      edits.push({ start: at[0], end: at[1], text: flowLiteral(target.toJS(document)) })
    }
  })
  return edits
}

function pairNamed (map: YAMLMap, name: string): Pair | undefined {
  return map.items.find(pair => (isScalar(pair.key) ? pair.key.value : pair.key) === name)
}

/** Applies `changes` to a plain JS copy of a mapping (for flow mappings and aliases, rewritten whole). */
function changedCopy (current: unknown, changes: Map<string, FieldChange>): Record<string, unknown> {
  const copy: Record<string, unknown> = typeof current === 'object' && current !== null && !Array.isArray(current) ? { ...current } : {}
  for (const [name, change] of changes) {
    if ('remove' in change) delete copy[name]
    else if ('set' in change) copy[name] = change.set
    else copy[name] = changedCopy(copy[name], change.merge)
  }
  return copy
}

/**
 * Edits that apply `changes` to the mapping `map`. A block mapping is edited field by field: a
 * changed value is replaced where it stands (a block collection becomes a flow one on the key's
 * line), a new field is a line after the last one at the same indent, a removed field loses its
 * lines. A flow mapping is rewritten whole. `merge` recurses into a block mapping a field holds.
 * Aliases into the changed fields are detached first (see detachAliases).
 */
export function mapEdits (document: Document, text: string, map: YAMLMap, changes: Map<string, FieldChange>): TextEdit[] {
  const range = rangeOf(map)
  if (range === undefined) throw new Error('the config document has no source positions')
  if (map.flow === true) {
    return [...detachAliases(document, range[0], range[1]), { start: range[0], end: range[1], text: flowLiteral(changedCopy(map.toJS(document), changes)) }]
  }
  const edits: TextEdit[] = []
  const firstKey = rangeOf(map.items[0]?.key)
  const indent = firstKey === undefined ? 0 : firstKey[0] - lineStart(text, firstKey[0])
  const remaining = new Set(map.items)
  const added: string[] = []
  for (const [name, change] of changes) {
    const pair = pairNamed(map, name)
    const keyAt = rangeOf(pair?.key)
    if (pair === undefined || keyAt === undefined) {
      if ('remove' in change) continue
      const value = 'set' in change ? change.set : changedCopy(undefined, change.merge)
      added.push(`${' '.repeat(indent)}${name}: ${flowLiteral(value)}\n`)
      continue
    }
    const value = pair.value
    const valueEnd = contentEnd(value) ?? keyAt[1]
    edits.push(...detachAliases(document, keyAt[0], valueEnd))
    if ('remove' in change) {
      remaining.delete(pair)
      const next = rangeOf(map.items[map.items.indexOf(pair) + 1]?.key)
      const ownLine = text.slice(lineStart(text, keyAt[0]), keyAt[0]).trim() === ''
      // The first field of a list item shares its line with `- `: the next field moves up to it.
      if (!ownLine && next !== undefined) edits.push({ start: keyAt[0], end: next[0], text: '' })
      else edits.push({ start: lineStart(text, keyAt[0]), end: afterLine(text, valueEnd), text: '' })
    } else if ('merge' in change && isMap(value) && value.flow !== true && !isAlias(value) && value.items.length > 0) {
      edits.push(...mapEdits(document, text, value, change.merge))
    } else {
      const next = 'set' in change ? change.set : changedCopy(isAlias(value) || isCollection(value) ? (value as Node).toJS(document) : undefined, change.merge)
      const blockValue = isCollection(value) && value.flow !== true
      const valueAt = rangeOf(value)
      if (blockValue || valueAt === undefined) edits.push({ start: keyAt[1], end: valueEnd, text: `: ${flowLiteral(next)}` })
      else edits.push({ start: valueAt[0], end: valueAt[1], text: flowLiteral(next) })
    }
  }
  if (remaining.size === 0 && added.length === 0) throw new Error('an edit may not remove every field of a mapping')
  if (added.length > 0) {
    const last = map.items[map.items.length - 1]
    const at = afterLine(text, contentEnd(last.value ?? last.key) ?? range[1])
    edits.push({ start: at, end: at, text: newlineBefore(text, at) + added.join('') })
  }
  return edits
}

/** Edits that remove item `index` of a sequence, detaching aliases into it; the last item leaves `[]`. */
export function removeItemEdits (document: Document, text: string, seq: YAMLSeq, index: number, emptyList: TextEdit): TextEdit[] {
  const items = seq.items.map(rangeOf)
  const item = items[index]
  if (item === undefined || items.some(r => r === undefined)) throw new Error('the config document has no source positions')
  let start: number
  let end: number
  if (seq.items.length === 1) {
    start = emptyList.start
    end = emptyList.end
  } else if (seq.flow !== true) {
    start = lineStart(text, text.lastIndexOf('-', item[0]))
    end = afterLine(text, contentEnd(seq.items[index]) ?? item[1])
  } else if (index < items.length - 1) {
    start = item[0]
    end = items[index + 1]![0]
  } else {
    start = items[index - 1]![1]
    end = item[1]
  }
  const edit = seq.items.length === 1 ? emptyList : { start, end, text: '' }
  return [...detachAliases(document, Math.min(start, item[0]), Math.max(end, item[1])), edit]
}
