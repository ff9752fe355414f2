import assert from 'node:assert/strict'
import { test } from 'node:test'
import { addToCell, CELL_SPAN, decodeCells, encodeCells, encodeNamedCells, forEachNamedCell, type CellCounts, type NamedCell } from '../plugins/usage/packed-counts.js'

test('packed cells: a round trip keeps every count, up to 2^53 - 1, and sorts by model and host', () => {
  const cells = new Map<number, CellCounts>([
    [3 * CELL_SPAN + 1, { requests: 1, promptTokens: 0, completionTokens: 127 }],
    [1 * CELL_SPAN + 2, { requests: 128, promptTokens: 2 ** 31, completionTokens: Number.MAX_SAFE_INTEGER }],
    [1 * CELL_SPAN + 1, { requests: 0, promptTokens: 16384, completionTokens: 2 ** 40 + 3 }]
  ])
  const blob = encodeCells(cells)
  assert.deepEqual([...decodeCells(blob)], [...cells].sort((a, b) => a[0] - b[0]))
  // Small counts take one byte each: model, host and three counts.
  assert.equal(encodeCells(new Map([[CELL_SPAN + 1, { requests: 1, promptTokens: 100, completionTokens: 20 }]])).length, 5)
  addToCell(cells, 3 * CELL_SPAN + 1, { requests: 2, promptTokens: 5, completionTokens: 1 })
  addToCell(cells, 7 * CELL_SPAN + 7, { requests: 1, promptTokens: 1, completionTokens: 1 })
  assert.deepEqual(decodeCells(encodeCells(cells)).get(3 * CELL_SPAN + 1), { requests: 3, promptTokens: 5, completionTokens: 128 })
  assert.equal(decodeCells(encodeCells(cells)).size, 4)
})

test('packed cells: a negative, fractional or unsafe count is refused; a damaged blob is an error, not a wrong count', () => {
  for (const requests of [-1, 0.5, 2 ** 53, Number.NaN, Infinity]) {
    assert.throws(() => encodeCells(new Map([[1, { requests, promptTokens: 0, completionTokens: 0 }]])), RangeError, String(requests))
  }
  const blob = encodeCells(new Map([[CELL_SPAN + 1, { requests: 300, promptTokens: 1, completionTokens: 1 }]]))
  assert.throws(() => decodeCells(blob.subarray(0, 3)), /corrupt usage counts/)
  assert.throws(() => decodeCells(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), /corrupt usage counts/)
})

test('named cells (the copy in Redis): names written once, any characters, round trip', () => {
  const cells: NamedCell[] = [
    { model: 'llama3.2', host: 'gpu-1', requests: 1, promptTokens: 2, completionTokens: 3 },
    { model: 'llama3.2', host: 'gpu-2', requests: 4, promptTokens: 5, completionTokens: 6 },
    { model: 'hf.co/ünïcode/Model:Q4\n"x"', host: 'gpu-1', requests: 7, promptTokens: 2 ** 50, completionTokens: 0 }
  ]
  const blob = encodeNamedCells(cells)
  const back: NamedCell[] = []
  forEachNamedCell(blob, (models, hosts) => (model, host, requests, promptTokens, completionTokens) => {
    back.push({ model: models[model], host: hosts[host], requests, promptTokens, completionTokens })
  })
  assert.deepEqual(back, cells)
  assert.equal(blob.toString('latin1').split('llama3.2').length - 1, 1, 'each name once')
  assert.throws(() => forEachNamedCell(Buffer.from([9]), () => () => {}), /unknown format \(9\)/)
  assert.throws(() => forEachNamedCell(Buffer.from([1, 0, 0, 0, 0, 1, 1, 1]), () => () => {}), /name index out of range/)
})
