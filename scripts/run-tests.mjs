// Node 20's test runner does not expand globs, so the test files are found here.
import { readdirSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const root = new URL('../test/', import.meta.url).pathname
const only = process.argv.slice(2)
const files = readdirSync(root, { recursive: true })
  .map(String)
  .filter(name => name.endsWith('.test.ts'))
  .filter(name => only.length === 0 || only.some(part => name.includes(part)))
  .sort()
  .map(name => join('test', name))

if (files.length === 0) {
  console.error('no test files found')
  process.exit(1)
}

const reporter = process.env.CI ? 'spec' : 'spec'
// The timeout only catches a hang: tests wait for events, and a busy machine may run a file for minutes.
const result = spawnSync(process.execPath, [
  '--import', 'tsx', '--test', `--test-reporter=${reporter}`, '--test-concurrency=2', '--test-timeout=300000', ...files
], { stdio: 'inherit' })
process.exit(result.status ?? 1)
