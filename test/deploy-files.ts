// Readers for the deployment files (README sections and their shell blocks, the Dockerfile's
// stages, a systemd unit), so test/docker.test.ts can check them where no Docker engine or
// systemd runs.
import { readFileSync } from 'node:fs'
import { parseConfig } from '../plugins/config/config-loader.js'
import { CLOSE_MARGIN_MS, LOG_FLUSH_MS } from '../src/shutdown.js'

/**
 * The longest a clean stop takes, in seconds: the default drain (server.drain_timeout), then the
 * close margin and the log flush of src/shutdown.ts. A stop timeout must be longer.
 */
export function longestStopSeconds (): number {
  const config = parseConfig('auth:\n  generate_tokens: ["a-token-for-the-test-123"]\n', 'x')
  return (config.server.drainTimeoutMs + CLOSE_MARGIN_MS + LOG_FLUSH_MS) / 1000
}

/** The README's section under `heading` (e.g. "## Docker"), up to the next heading of that level or above. */
export function readmeSection (heading: string): string {
  const text = readFileSync('README.md', 'utf8')
  const start = text.indexOf(`\n${heading}\n`)
  if (start < 0) throw new Error(`README.md has no "${heading}" heading`)
  const level = heading.indexOf(' ')
  const rest = text.slice(start + heading.length + 2)
  const next = rest.search(new RegExp(`^#{1,${level}} `, 'm'))
  return next < 0 ? rest : rest.slice(0, next)
}

/** The contents of each ```sh block of a Markdown text. */
export function shellBlocks (markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map(m => m[1])
}

/** A block's commands: continuation lines joined, comments and blank lines dropped (heredoc bodies are kept as lines). */
export function shellCommands (block: string): string[] {
  return block.replace(/\\\n\s*/g, ' ').split('\n')
    .map(line => line.replace(/(^|\s)#.*$/, '').trim())
    .filter(line => line !== '')
}

/** The lines of `block` from the first one starting with `first` through the heredoc's closing `EOF`. */
export function heredocScript (block: string, first: string): string {
  const lines = block.split('\n')
  const start = lines.findIndex(l => l.startsWith(first))
  const end = lines.indexOf('EOF', start)
  if (start < 0 || end < 0) throw new Error(`no "${first} ... EOF" lines in the block`)
  return lines.slice(start, end + 1).join('\n') + '\n'
}

/** The value of `--name value` or `--name=value` in a command line, or undefined. */
export function optionValue (command: string, name: string): string | undefined {
  return new RegExp(`(?:^|\\s)${name}[ =]("[^"]*"|\\S+)`).exec(command)?.[1].replace(/^"|"$/g, '')
}

/** Every `-v source:target[:mode]` of a command line, split at the colons. */
export function volumeOptions (command: string): string[][] {
  return [...command.matchAll(/(?:^|\s)-v\s+("[^"]*"|\S+)/g)].map(m => m[1].replace(/^"|"$/g, '').split(':'))
}

export interface DockerfileStage {
  image: string
  name: string | undefined
  /** the stage's instructions, continuation lines joined, comments dropped */
  instructions: string[]
}

/** The Dockerfile's build stages in order. */
export function dockerfileStages (text: string): DockerfileStage[] {
  const stages: DockerfileStage[] = []
  const instructions = text.replace(/\\\n\s*/g, ' ').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  for (const line of instructions) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line)
    if (from !== null) stages.push({ image: from[1], name: from[2], instructions: [] })
    else stages.at(-1)?.instructions.push(line)
  }
  return stages
}

/** A systemd unit file: section -> key -> values in order (a key may be given several times). */
export function parseUnitFile (text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header !== null) {
      current = new Map()
      sections.set(header[1], current)
      continue
    }
    const eq = line.indexOf('=')
    if (current === undefined || eq < 0) throw new Error(`not a unit file line: ${line}`)
    const key = line.slice(0, eq).trim()
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()])
  }
  return sections
}
