// Shutdown through the real process when stdout's reader is gone (`| head -2`).
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import { startFakeOllama } from './fake-ollama.js'
import { bearerLine, TOKENS } from './fixtures/keys.js'
import { baseConfig, configFile, nodeArgs, spawnProcess } from './proxy-process.js'

test('SIGTERM ends the process though stdout\'s reader is gone; so does a second signal mid-drain', async (t) => {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  for (const secondSignal of [false, true]) {
    const proxy = spawnProcess(t, process.execPath, nodeArgs('src/server.ts', ['--config', configFile(baseConfig(fake.url))]))
    const [, port] = await proxy.waitFor(/"address":\["127\.0\.0\.1:(\d+)"\]/)
    let socket: ReturnType<typeof connect> | undefined
    if (secondSignal) {
      // A stream in flight keeps the drain going until the second signal.
      const body = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], fake: { chunks: 1000, delay_ms: 100 } })
      socket = connect(Number(port), '127.0.0.1')
      socket.on('error', () => {})
      socket.write(`POST /api/chat HTTP/1.1\r\nHost: x\r\n${bearerLine(TOKENS.generate)}\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
      await new Promise(resolve => socket!.once('data', resolve))
    }
    if (secondSignal) {
      proxy.child.kill('SIGTERM')
      await proxy.waitFor(/shutting down: draining/)
    }
    // The reader goes away, as `| head -2` does: every later log write fails with EPIPE.
    proxy.child.stdout!.destroy()
    proxy.child.kill('SIGTERM')
    const { code } = await proxy.exited
    assert.equal(code, secondSignal ? 1 : 0, `exit code with${secondSignal ? '' : 'out'} a second signal`)
    socket?.destroy()
  }
})
