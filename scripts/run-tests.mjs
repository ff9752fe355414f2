// Node 20's test runner does not expand globs, so the test files are found here.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'

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

// --test-timeout is a guard against hangs, not a speed target (tests wait for events). Node 20
// applies it to each test file as a whole too, and a file of process-spawning tests takes minutes
// on a busy machine, so it is generous.
const TEST_TIMEOUT_MS = 300_000

// The spec reporter on stdout as usual (CI reads its closing lines); skipped tests go to a file
// through our reporter, and one line after everything names them and why.
const skipDir = mkdtempSync(join(tmpdir(), 'ollama-proxy-test-skips-'))
const skipFile = join(skipDir, 'skips.jsonl')
// The tests' own temporary folders (configs, databases, browser profiles) go under one folder,
// removed at the end whatever a test left behind.
const testTmpDir = mkdtempSync(join(tmpdir(), 'ollama-proxy-tests-'))
// Like /tmp itself: some tests run the proxy as another user.
chmodSync(testTmpDir, 0o1777)
const result = spawnSync(process.execPath, [
  '--import', 'tsx', '--test',
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  `--test-reporter=${new URL('./skip-reporter.mjs', import.meta.url).href}`, `--test-reporter-destination=${skipFile}`,
  '--test-concurrency=2', `--test-timeout=${TEST_TIMEOUT_MS}`, ...files
], { stdio: 'inherit', env: { ...process.env, TMPDIR: testTmpDir } })
console.log(summariseSkips(skipFile))
rmSync(skipDir, { recursive: true, force: true })
rmSync(testTmpDir, { recursive: true, force: true })
process.exit(result.status ?? 1)

/** One line: how many tests were skipped, grouped by test file and reason. */
function summariseSkips (file) {
  let lines = []
  try {
    lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(line => JSON.parse(line))
  } catch {
    return 'skipped tests: unknown (the skip report was not written)'
  }
  if (lines.length === 0) return 'skipped tests: none'
  const groups = new Map()
  for (const { file: testFile, reason } of lines) {
    const key = `${basename(testFile || 'unknown')}: ${reason}`
    groups.set(key, (groups.get(key) ?? 0) + 1)
  }
  const parts = [...groups].map(([key, count]) => `${count} in ${key}`)
  return `skipped tests: ${lines.length} (${parts.join('; ')}); the full suite needs the Debian packages chromium and redis-server`
}
