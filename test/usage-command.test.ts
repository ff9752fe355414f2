// `ollama-proxy usage ...` through the real command, reading a database a store in this process writes.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { parseReportQuery } from '../plugins/usage/usage-report.js'
import { runUsageCommand } from '../src/usage-command.js'
import type { UsageStore } from '../plugins/usage/usage-store.js'
import { waitUntil } from './helper.js'
import { runCli } from './keys-helper.js'
import { redisAvailable, startRedis } from './redis-server.js'
import { openStore, tempFolder } from './usage-helper.js'

/** Runs `ollama-proxy usage <args>` (src/cli.ts) and collects its exit code and output. */
async function usage (t: TestContext, args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await runCli(t, ['usage', ...args])
}

/** Runs the command in this process (what src/cli.ts calls), for the many quick cases. */
async function usageHere (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await runUsageCommand(args, { out: text => { stdout += text }, err: text => { stderr += text }, env: {}, now: Date.now })
  return { code, stdout, stderr }
}

/** A config file naming the database (and Redis); returns its path. */
function configFile (folder: string, lines: string): string {
  const file = join(folder, 'config.yaml')
  writeFileSync(file, `auth:\n  generate_tokens: ["a-generate-token-0123456789"]\n${lines}`)
  return file
}

const at = (day: string) => Date.parse(`${day}T12:00:00Z`)
const use = (store: UsageStore, day: string, key: string, model: string, prompt: number, completion: number) =>
  store.record({ key, model, host: 'gpu', promptTokens: prompt, completionTokens: completion, at: at(day) })

test('usage CLI: table, json and csv of what the running store wrote, read while it writes', async (t) => {
  const folder = tempFolder(t)
  const database = join(folder, 'data', 'usage.sqlite')
  const config = configFile(folder, `usage:\n  database: "${database}"\n  timezone: Europe/Berlin\n`)
  const { store } = openStore(t, { file: database, timezone: 'Europe/Berlin' })
  use(store, '2026-03-01', 'student-17', 'llama3.2', 100, 20)
  use(store, '2026-03-01', 'student-17', 'llama3.2', 50, 5)
  use(store, '2026-03-02', 'web-app', 'qwen3:8b', 7, 3)
  use(store, '2026-03-05', 'web-app', 'qwen3:8b', 1000, 1000) // after --until
  store.flush()
  const range = ['--since', '2026-03-01', '--until', '2026-03-02', '--config', config]

  const json = await usage(t, [...range, '--format', 'json', '--by', 'key,model,day'])
  assert.equal(json.code, 0, json.stderr)
  assert.deepEqual(JSON.parse(json.stdout), {
    since: '2026-03-01',
    until: '2026-03-02',
    rows: [
      { key: 'student-17', model: 'llama3.2', day: '2026-03-01', requests: 2, prompt_tokens: 150, completion_tokens: 25 },
      { key: 'web-app', model: 'qwen3:8b', day: '2026-03-02', requests: 1, prompt_tokens: 7, completion_tokens: 3 }
    ]
  })

  const table = await usage(t, range)
  assert.equal(table.code, 0, table.stderr)
  assert.equal(table.stdout, [
    'usage from 2026-03-01 to 2026-03-02',
    'KEY         MODEL     REQUESTS  PROMPT_TOKENS  COMPLETION_TOKENS',
    'student-17  llama3.2         2            150                 25',
    'web-app     qwen3:8b         1              7                  3',
    ''
  ].join('\n'))

  // The store keeps writing while the command reads; a comma in a name is quoted in CSV.
  use(store, '2026-03-02', 'web-app', 'odd,"name"', 1, 1)
  store.flush()
  const csv = await usage(t, [...range, '--format', 'csv', '--by', 'model'])
  assert.equal(csv.code, 0, csv.stderr)
  assert.equal(csv.stdout, 'model,requests,prompt_tokens,completion_tokens\r\nllama3.2,2,150,25\r\n"odd,""name""",1,1,1\r\nqwen3:8b,1,7,3\r\n')

  const totals = await usage(t, [...range, '--format', 'json', '--by', ''])
  assert.deepEqual(JSON.parse(totals.stdout).rows, [{ requests: 4, prompt_tokens: 158, completion_tokens: 29 }])
  const empty = await usage(t, ['--since', '2025-01-01', '--until', '2025-01-31', '--config', config])
  assert.equal(empty.stdout, 'no usage from 2025-01-01 to 2025-01-31\n')
})

/** The first control character or right-to-left override in `text` other than those `allowed`. */
function controlIn (text: string, allowed: string): string | undefined {
  return [...text].find(c => !allowed.includes(c) && (c.charCodeAt(0) < 0x20 || c === '\u202e'))
}

test('usage CLI: model names a client chose print as text: no terminal escapes, no forged rows, no spreadsheet formulas', async (t) => {
  const folder = tempFolder(t)
  const database = join(folder, 'data', 'usage.sqlite')
  const config = configFile(folder, `usage:\n  database: "${database}"\n`)
  const { store } = openStore(t, { file: database })
  const day = new Date().toISOString().slice(0, 10)
  use(store, day, 'app', 'evil\u001b[2J\nforged-row  99', 1, 1)
  use(store, day, 'app', '=HYPERLINK("http://evil.example","x")', 1, 1)
  use(store, day, 'app', 'right\u202eflipped', 1, 1)
  store.flush()
  const table = await usageHere(['--by', 'model', '--config', config])
  assert.equal(table.code, 0, table.stderr)
  assert.equal(controlIn(table.stdout, '\n'), undefined, 'no control character reaches the terminal')
  assert.equal(table.stdout.trimEnd().split('\n').length, 5, 'a title, a header, three rows')
  assert.match(table.stdout, /evil\\u001b\[2J\\u000aforged-row {2}99 /)
  const csv = await usageHere(['--by', 'model', '--format', 'csv', '--config', config])
  assert.equal(csv.code, 0, csv.stderr)
  const lines = csv.stdout.trimEnd().split('\r\n')
  assert.equal(lines.length, 4)
  assert.ok(lines.includes('"\'=HYPERLINK(""http://evil.example"",""x"")",1,1,1'), csv.stdout)
  assert.equal(controlIn(csv.stdout, '\r\n'), undefined)
  const json = JSON.parse((await usageHere(['--by', 'model', '--format', 'json', '--config', config])).stdout)
  assert.ok(json.rows.some((row: { model: string }) => row.model === 'evil\u001b[2J\nforged-row  99'), 'JSON keeps the name as it is')
})

test('usage CLI: bad flags print usage and exit 2', async (t) => {
  const folder = tempFolder(t)
  const config = configFile(folder, `usage:\n  database: "${join(folder, 'usage.sqlite')}"\n`)
  const cases: Array<[string[], RegExp]> = [
    [['--format', 'xml'], /--format: expected table, json, csv, got "xml"/],
    [['--since', '3x'], /since: expected a date YYYY-MM-DD or a number of days such as 7d, got "3x"/],
    [['--until', '2026-02-30'], /until: expected a date YYYY-MM-DD/],
    [['--since', '2026-03-02', '--until', '2026-03-01'], /since \(2026-03-02\) is after until \(2026-03-01\)/],
    [['--by', 'key,team'], /by: unknown field "team"; use key, model, host, day/],
    [['--by', 'key,key'], /by: a field is named twice/],
    [['--verbose'], /Unknown option '--verbose'/],
    [['everything'], /unexpected argument "everything"/]
  ]
  for (const [args, message] of cases) {
    const run = await usageHere([...args, '--config', config])
    assert.equal(run.code, 2, args.join(' '))
    assert.match(run.stderr, message)
    assert.match(run.stderr, /Usage: ollama-proxy usage/)
    assert.equal(run.stdout, '')
  }
  const help = await usageHere(['--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /^Usage: ollama-proxy usage/)
})

test('usage CLI: no database, an unreadable one or a bad config is one line and exit 1', async (t) => {
  const folder = tempFolder(t)
  const missing = join(folder, 'none', 'usage.sqlite')
  const notSqlite = join(folder, 'text.sqlite')
  writeFileSync(notSqlite, 'not a database\n'.repeat(100))
  const cases: Array<[string, RegExp]> = [
    [`usage:\n  database: "${missing}"\n`, new RegExp(`^ollama-proxy usage: ${missing}: no usage database there \\(the proxy creates it when it starts\\)\n$`)],
    [`usage:\n  database: "${notSqlite}"\n`, new RegExp(`^ollama-proxy usage: ${notSqlite}: cannot use the usage database: the file is not an SQLite database\n$`)],
    ['usage:\n  timezone: Mars/Base\n', /^ollama-proxy usage: .*config\.yaml: usage\.timezone: expected an IANA time zone name .*; got "Mars\/Base"\n$/],
    ['usage: [oops\n', /^ollama-proxy usage: .*config\.yaml: invalid YAML at line \d+, column \d+: /],
    ['redis:\n  url: "http://user:secret@host"\n', /^ollama-proxy usage: .*redis\.url: expected/]
  ]
  for (const [lines, message] of cases) {
    const run = await usageHere(['--config', configFile(folder, lines)])
    assert.equal(run.code, 1, lines)
    assert.match(run.stderr, message)
    assert.ok(!run.stderr.includes('secret'))
    assert.equal(run.stdout, '')
  }
  const noConfig = await usage(t, ['--config', join(folder, 'missing.yaml')])
  assert.equal(noConfig.code, 1)
  assert.equal(noConfig.stderr, `ollama-proxy usage: ${join(folder, 'missing.yaml')}: config file not found\n`)
})

test('usage CLI: with redis.url the report holds every replica\'s traffic', { skip: redisAvailable() ? false : 'redis-server not found: install Redis to run this test' }, async (t) => {
  const redis = await startRedis()
  t.after(async () => { await redis.stop() })
  const folder = tempFolder(t)
  const prefix = `cli-${randomUUID().slice(0, 8)}:`
  const shared = { url: redis.url, prefix }
  const a = openStore(t, { file: join(folder, 'a.sqlite'), redis: shared, flushIntervalMs: 20 }).store
  const b = openStore(t, { file: join(folder, 'b.sqlite'), redis: shared, flushIntervalMs: 20 }).store
  use(a, '2026-03-01', 'k', 'm', 1, 0)
  use(b, '2026-03-01', 'k', 'm', 10, 0)
  await waitUntil('replica a to see b\'s row in Redis', async () => (await a.report({ since: '2026-03-01', until: '2026-03-01', by: [] })).report.rows[0]?.prompt_tokens === 11)
  const config = configFile(folder, `usage:\n  database: "${join(folder, 'a.sqlite')}"\nredis:\n  url: "${redis.url}"\n  prefix: "${prefix}"\n`)
  const run = await usage(t, ['--since', '2026-03-01', '--until', '2026-03-01', '--by', 'key', '--format', 'json', '--config', config])
  assert.equal(run.code, 0, run.stderr)
  assert.deepEqual(JSON.parse(run.stdout).rows, [{ key: 'k', requests: 2, prompt_tokens: 11, completion_tokens: 0 }])
  assert.equal(run.stderr, '')
})

test('parseReportQuery: Nd counts today, dates pass, defaults are the last 7 days by key and model', () => {
  const today = '2026-03-04'
  assert.deepEqual(parseReportQuery({}, today), { since: '2026-02-26', until: today, by: ['key', 'model'] })
  assert.deepEqual(parseReportQuery({ since: '1d' }, today), { since: today, until: today, by: ['key', 'model'] })
  assert.deepEqual(parseReportQuery({ since: '2026-01-01', until: '3d', by: 'day, host' }, today), { since: '2026-01-01', until: '2026-03-02', by: ['day', 'host'] })
  assert.deepEqual(parseReportQuery({ by: '' }, today).by, [])
  for (const since of ['0d', '-1d', '7', 'd', '2026-3-1', '7days']) assert.throws(() => parseReportQuery({ since }, today), /since: expected/, since)
})
