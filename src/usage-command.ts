import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../plugins/config/config-loader.js'
import { dayOf } from '../plugins/usage/calendar.js'
import { UsageStoreError } from '../plugins/usage/usage-database.js'
import { UsageReader } from '../plugins/usage/usage-reader.js'
import { DEFAULT_BY, DEFAULT_SINCE, parseReportQuery, REPORT_FIELDS, type UsageReport, type UsageReportRow } from '../plugins/usage/usage-report.js'

export const USAGE_USAGE = `Usage: ollama-proxy usage [--since 7d|YYYY-MM-DD] [--until YYYY-MM-DD] [--by key,model,host,day] [--format table|json|csv]
  (npm run usage -- ...)

  --since <day>       first day: a date, or Nd for the last N days with today (default ${DEFAULT_SINCE})
  --until <day>       last day, included (default today)
  --by <fields>       comma-separated: ${REPORT_FIELDS.join(', ')} (default ${DEFAULT_BY.join(',')});
                      "" gives one row of totals
  --format <format>   table (default), json ({"since","until","rows"}, as GET /proxy/usage) or csv
  -c, --config <file> the config file (default: config/config.yaml in the installation,
                      or the env OLLAMA_PROXY_CONFIG)

Days are calendar days in usage.timezone. Reads usage.database (default data/usage.sqlite in the
installation) while the proxy runs; with redis.url, the other replicas' traffic comes from Redis.
`

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  since: { type: 'string' },
  until: { type: 'string' },
  by: { type: 'string' },
  format: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const

const FORMATS = ['table', 'json', 'csv'] as const

/** A mistake on the command line: usage is printed and the exit status is 2. */
class UsageError extends Error {}

interface Io { out: (text: string) => void, err: (text: string) => void, env: NodeJS.ProcessEnv, now: () => number }

/**
 * `ollama-proxy usage ...`: the usage report of the store the proxy writes. Returns the exit
 * status: 0 done, 1 no readable database or a bad config file, 2 a command line it does not
 * understand (usage printed).
 */
export async function runUsageCommand (argv: string[], io: Io = defaultIo()): Promise<number> {
  let reader: UsageReader | undefined
  try {
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true })
    if (values.help === true) {
      io.out(USAGE_USAGE)
      return 0
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`)
    const format = values.format ?? 'table'
    if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format: expected ${FORMATS.join(', ')}, got "${format}"`)
    // The proxy's own loader: the same file, database path and time zone the proxy uses.
    const config = loadConfig({ path: values.config ?? (io.env.OLLAMA_PROXY_CONFIG || undefined), env: io.env })
    const settings = { database: config.usage.database, timezone: config.usage.timezone, redis: config.redis }
    let query
    try {
      query = parseReportQuery({ since: values.since, until: values.until, by: values.by }, dayOf(io.now(), settings.timezone))
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    reader = UsageReader.open({ file: settings.database, redis: settings.redis })
    const { report, redis } = await reader.report(query)
    if (redis === 'unreachable') io.err('ollama-proxy usage: redis is unreachable: this report holds the traffic of this replica only\n')
    io.out(format === 'json' ? `${JSON.stringify(report)}\n` : format === 'csv' ? csv(report, query.by) : table(report, query.by))
    return 0
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageStoreError) {
      io.err(`ollama-proxy usage: ${err.message}\n`)
      return 1
    }
    const code = (err as { code?: string }).code
    if (err instanceof UsageError || code?.startsWith('ERR_PARSE_ARGS') === true) {
      io.err(`ollama-proxy usage: ${(err as Error).message}\n${USAGE_USAGE}`)
      return 2
    }
    throw err
  } finally {
    await reader?.close()
  }
}

function defaultIo (): Io {
  return { out: text => process.stdout.write(text), err: text => process.stderr.write(text), env: process.env, now: Date.now }
}

const COUNTS = ['requests', 'prompt_tokens', 'completion_tokens'] as const

/** The `by` fields in the JSON's order, then the counts. */
function columnsOf (by: string[]): Array<keyof UsageReportRow> {
  return [...REPORT_FIELDS.filter(field => by.includes(field)), ...COUNTS]
}

/** Control characters (ANSI escapes, line breaks) and bidirectional marks: what a terminal or a spreadsheet acts on. */
function unprintable (code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x200e || code === 0x200f || code === 0x2028 || code === 0x2029 ||
    (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069)
}

/**
 * A name as text to print: model names are the client's choice (`usage` records every model
 * Ollama answered for), so what a terminal would act on is written as `\u001b`.
 */
function printable (text: string): string {
  let out = ''
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    out += unprintable(code) ? `\\u${code.toString(16).padStart(4, '0')}` : text[i]
  }
  return out
}

function table (report: UsageReport, by: string[]): string {
  if (report.rows.length === 0) return `no usage from ${report.since} to ${report.until}\n`
  const columns = columnsOf(by)
  const cells = [columns.map(column => column.toUpperCase()), ...report.rows.map(row => columns.map(column => printable(String(row[column] ?? ''))))]
  const widths = columns.map((_, index) => Math.max(...cells.map(line => line[index].length)))
  const numeric = columns.map(column => (COUNTS as readonly string[]).includes(column))
  const lines = cells.map(line => line.map((cell, index) => numeric[index] ? cell.padStart(widths[index]) : cell.padEnd(widths[index])).join('  ').trimEnd())
  return `usage from ${report.since} to ${report.until}\n${lines.join('\n')}\n`
}

/**
 * RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled. A name a
 * spreadsheet would read as a formula (`=`, `+`, `-`, `@` first) gets a `'` before it (OWASP,
 * CSV injection); control characters are written as in the table.
 */
function csvField (value: string, name: boolean): string {
  const text = name ? printable(/^[=+\-@]/.test(value) ? `'${value}` : value) : value
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

function csv (report: UsageReport, by: string[]): string {
  const columns = columnsOf(by)
  const names = columns.map(column => !(COUNTS as readonly string[]).includes(column))
  const lines = [columns.join(','), ...report.rows.map(row => columns.map((column, index) => csvField(String(row[column] ?? ''), names[index])).join(','))]
  return `${lines.join('\r\n')}\r\n`
}
