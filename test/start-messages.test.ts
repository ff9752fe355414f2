// Start-up mistakes and an unreachable Ollama, through the real process: one clear line each.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { test } from 'node:test'
import { startFakeOllama } from './fake-ollama.js'
import { baseConfig, configFile, nodeArgs, spawnProcess } from './proxy-process.js'

/** A loopback port nothing listens on (taken, then given back). */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}

test('mistakes get one line naming the cause, and a non-zero exit', async (t) => {
  const holder = createServer()
  await new Promise<void>(resolve => holder.listen(0, '127.0.0.1', resolve))
  t.after(() => { holder.close() })
  const busyPort = (holder.address() as { port: number }).port
  const good = baseConfig('http://127.0.0.1:1')
  const cases: Array<{ name: string, args?: string[], env?: Record<string, string>, config?: Record<string, unknown>, code: number, message: RegExp }> = [
    { name: 'unknown option', args: ['--bogus'], code: 2, message: /Unknown option '--bogus'[\s\S]*Usage: ollama-proxy/ },
    { name: 'PORT=abc', env: { PORT: 'abc' }, code: 1, message: /^ollama-proxy: environment variable PORT="abc": expected a port number from 0 to 65535$/ },
    { name: 'LOG_LEVEL=loud', env: { LOG_LEVEL: 'loud' }, code: 1, message: /^ollama-proxy: environment variable LOG_LEVEL="loud": expected one of fatal, error, warn, info, debug, trace, silent/ },
    { name: 'log.level: verbose', config: { ...good, log: { level: 'verbose' } }, code: 1, message: /config\.yaml: log\.level: expected one of fatal, error, warn, info, debug, trace, silent; got "verbose"$/ },
    { name: 'port in use', config: { ...good, server: { host: '127.0.0.1', port: busyPort } }, code: 1, message: new RegExp(`^ollama-proxy: 127\\.0\\.0\\.1:${busyPort} is already in use`) }
  ]
  await Promise.all(cases.map(async c => {
    const file = configFile(c.config ?? good)
    const proxy = spawnProcess(t, process.execPath, nodeArgs('src/server.ts', [...(c.args ?? []), '--config', file]), { env: { ...process.env, ...c.env } })
    const { code } = await proxy.exited
    assert.equal(code, c.code, c.name)
    const stderr = proxy.output().split('\n').filter(line => line !== '' && !line.startsWith('{"level"'))
    assert.match(stderr.join('\n'), c.message, c.name)
    if (c.args === undefined) assert.equal(stderr.length, 1, `${c.name}: one line, no stack: ${stderr.join('\n')}`)
  }))
})

test('Ollama unreachable: ready anyway, one warning naming the URL, then info when it answers', async (t) => {
  const port = await freePort()
  const file = configFile(baseConfig(`http://127.0.0.1:${port}`, { service: { base_url: `http://127.0.0.1:${port}`, health_interval: 0.1 } }))
  const proxy = spawnProcess(t, process.execPath, nodeArgs('src/server.ts', ['--config', file]))
  await proxy.waitFor(/ollama-proxy ready/)
  const warning = await proxy.waitFor(/\{[^\n]*"level":40[^\n]*Ollama is unreachable[^\n]*\}/)
  assert.equal(JSON.parse(warning[0]).url, `http://127.0.0.1:${port}`)
  const fake = await startFakeOllama({ port })
  t.after(async () => { await fake.close() })
  const back = await proxy.waitFor(/\{[^\n]*"level":30[^\n]*Ollama is reachable again[^\n]*\}/)
  assert.equal(JSON.parse(back[0]).url, `http://127.0.0.1:${port}`)
  assert.equal(proxy.output().match(/Ollama is unreachable/g)?.length, 1, 'warned once')
  proxy.child.kill('SIGTERM')
  await proxy.exited
})

test('a usage database that cannot be used stops the start with one line naming the path', async (t) => {
  const folder = mkdtempSync(join(tmpdir(), 'proxy-usage-bad-'))
  const notSqlite = join(folder, 'usage.sqlite')
  writeFileSync(notSqlite, 'this is not an SQLite database, and must stay as it is')
  const inTheWay = join(folder, 'a-file')
  writeFileSync(inTheWay, '')
  for (const [database, reason] of [[notSqlite, /not an SQLite database/], [join(inTheWay, 'usage.sqlite'), /in the way/]] as const) {
    const file = configFile(baseConfig('http://127.0.0.1:1', { usage: { database } }))
    const proxy = spawnProcess(t, process.execPath, nodeArgs('src/server.ts', ['--config', file]))
    const { code } = await proxy.exited
    assert.equal(code, 1)
    const lines = proxy.output().split('\n').filter(line => line !== '' && !line.startsWith('{"level"'))
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.ok(lines[0].startsWith(`ollama-proxy: ${database}`), lines[0])
    assert.match(lines[0], reason)
  }
  assert.equal(readFileSync(notSqlite, 'utf8'), 'this is not an SQLite database, and must stay as it is', 'never rewritten to recover')
})
