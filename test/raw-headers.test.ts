import assert from 'node:assert/strict'
import { test } from 'node:test'
import { repeatedHeader } from '../plugins/http/raw-headers.js'

test('repeatedHeader: every value of a header sent on several lines, in any case; undefined for one line or none', () => {
  const cases: Array<{ raw: string[], name: string, expected: string[] | undefined }> = [
    { raw: [], name: 'host', expected: undefined },
    { raw: ['Host', 'a'], name: 'host', expected: undefined },
    { raw: ['Host', 'a', 'X-Host', 'b', 'HOST', 'c'], name: 'host', expected: ['a', 'c'] },
    { raw: ['Authorization', 'Bearer a', 'authorization', 'Bearer b', 'Authorization', 'Bearer c'], name: 'authorization', expected: ['Bearer a', 'Bearer b', 'Bearer c'] },
    { raw: ['Hosts', 'a', 'Host', 'b'], name: 'host', expected: undefined }
  ]
  for (const { raw, name, expected } of cases) assert.deepEqual(repeatedHeader(raw, name), expected, raw.join(' '))
})
