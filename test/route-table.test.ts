import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { routeTable } from '../routes/route-table.js'

test('the README route table is the route table', () => {
  const readme = readFileSync('README.md', 'utf8')
  const section = readme.slice(readme.indexOf('<!-- route-table:start -->'), readme.indexOf('<!-- route-table:end -->'))
  const documented = section.split('\n')
    .filter(line => /^\| (GET|HEAD|POST|DELETE) /.test(line))
    .map(line => {
      const [method, path, upstream, access] = line.split('|').slice(1, 5).map(cell => cell.trim().replaceAll('`', ''))
      return `${method} ${path} -> ${upstream === 'same' ? path : upstream} [${access}]`
    })
  const actual = routeTable.map(r => `${r.method} ${r.path} -> ${r.upstream} [${r.access}]`)
  assert.deepEqual(documented, actual)
})

test('every route is unique and every /sys alias forwards to an /api twin', () => {
  const keys = routeTable.map(r => `${r.method} ${r.path}`)
  assert.equal(new Set(keys).size, keys.length)
  for (const route of routeTable.filter(r => r.path.startsWith('/sys/'))) {
    assert.equal(route.upstream, '/api/' + route.path.slice(5))
    assert.equal(route.access, 'models:admin')
  }
  for (const path of ['/sys/tags', '/sys/pull', '/sys/delete', '/sys/copy', '/sys/push', '/sys/show', '/sys/create', '/sys/ps', '/sys/blobs/:digest']) {
    assert.ok(routeTable.some(r => r.path === path), path)
  }
})
