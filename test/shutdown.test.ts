import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { stringify } from 'yaml'
import { startFakeOllama } from './fake-ollama.js'
import { bearerLine, TOKENS } from './fixtures/keys.js'
import { waitUntil } from './helper.js'

interface Running { child: ChildProcess, port: number, exited: Promise<{ code: number | null, at: number }>, output: () => string }

/** Starts the real server process, as `npm start` would, and waits for its ready line. */
async function startServer (t: TestContext, extra: Record<string, unknown> = {}): Promise<Running> {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const dir = mkdtempSync(join(tmpdir(), 'proxy-shutdown-'))
  const file = join(dir, 'config.yaml')
  // A usage database of the test's own: the default is the installation's data/usage.sqlite,
  // which a proxy started from the same folder (README's set-up) is using.
  const database = join(dir, 'usage.sqlite')
  writeFileSync(file, stringify({
    auth: { generate_tokens: [TOKENS.generate] },
    service: { base_url: fake.url },
    server: { host: '127.0.0.1', port: 0, ...extra },
    usage: { database }
  }))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => { child.kill('SIGKILL') })
  let output = ''
  const exited = new Promise<{ code: number | null, at: number }>(resolve => child.on('exit', code => resolve({ code, at: performance.now() })))
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /"address":\["127\.0\.0\.1:(\d+)"\]/.exec(output)
      if (match !== null) resolve(Number(match[1]))
    })
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
    exited.then(() => reject(new Error('server exited: ' + output)), () => {})
  })
  assert.ok(existsSync(database), 'the server counts into the test\'s own usage database')
  return { child, port, exited, output: () => output }
}

function streamingRequest (port: number, chunks: number, delayMs: number): { socket: ReturnType<typeof connect>, received: () => string } {
  const body = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], fake: { chunks, delay_ms: delayMs } })
  const socket = connect(port, '127.0.0.1')
  let received = ''
  socket.on('data', chunk => { received += chunk.toString() })
  socket.on('error', () => {})
  socket.write(`POST /api/chat HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  return { socket, received: () => received }
}

/** Resolves once the stream has started: its status line and first chunk arrived. */
async function streamStarted (stream: { received: () => string }): Promise<void> {
  await waitUntil('the stream to start', () => /HTTP\/1\.1 200[\s\S]*"done":false/.test(stream.received()))
}

async function connectionRefused (port: number): Promise<boolean> {
  return await new Promise<boolean>(resolve => {
    const socket = connect(port, '127.0.0.1')
    socket.on('connect', () => { socket.destroy(); resolve(false) })
    socket.on('error', () => resolve(true))
  })
}

test('SIGTERM: stop accepting, 503 on kept-alive sockets, finish streams in flight, exit 0', async (t) => {
  const server = await startServer(t)
  // 4 s of stream: long enough to still be running while the test signals and writes behind it.
  const stream = streamingRequest(server.port, 40, 100)
  await streamStarted(stream)
  server.child.kill('SIGTERM')
  await waitUntil('the shutdown to begin', () => server.output().includes('shutting down: draining requests in flight'))
  // A request pipelined on the open socket behind the stream is answered 503.
  stream.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
  await waitUntil('new connections to be refused', async () => await connectionRefused(server.port))
  const closed = new Promise(resolve => stream.socket.once('close', resolve))
  const { code } = await server.exited
  assert.equal(code, 0)
  await closed
  const received = stream.received()
  assert.match(received, /"done":true/, 'the stream in flight finished')
  assert.match(received, /HTTP\/1\.1 503/, 'the request behind it got 503')
  assert.match(server.output(), /shut down cleanly/)
})

test('after the drain period, remaining streams are cut and the process still exits 0', async (t) => {
  const server = await startServer(t, { drain_timeout: 1 })
  // A minute of stream: only the drain deadline can end it while the test runs.
  const stream = streamingRequest(server.port, 600, 100)
  await streamStarted(stream)
  const signalledAt = performance.now()
  server.child.kill('SIGTERM')
  const { code, at } = await server.exited
  assert.equal(code, 0)
  // drain_timeout is 1 s; the bound shows it, not the 30 s default or the stream's end, ended the wait.
  assert.ok(at - signalledAt < 15_000, `exited ${Math.round(at - signalledAt)} ms after SIGTERM`)
  assert.match(server.output(), /drain period over/)
  assert.doesNotMatch(stream.received(), /"done":true/)
})

test('a second signal exits at once', async (t) => {
  const server = await startServer(t)
  const stream = streamingRequest(server.port, 600, 100)
  await streamStarted(stream)
  server.child.kill('SIGTERM')
  await waitUntil('the shutdown to begin', () => server.output().includes('shutting down: draining requests in flight'))
  const secondAt = performance.now()
  server.child.kill('SIGINT')
  const { code, at } = await server.exited
  assert.equal(code, 1)
  // The stream has a minute left and the drain period is 30 s: a quick exit can only be the second signal's.
  assert.ok(at - secondAt < 15_000, `exited ${Math.round(at - secondAt)} ms after the second signal`)
  assert.match(server.output(), /second signal: exiting now/)
})
