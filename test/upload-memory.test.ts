// The free region under a fence (src/upload-memory.ts), through the real process: a streamed blob
// upload is served from heap memory the process keeps, instead of handing each batch of body
// chunks back to the kernel and faulting it in again. Counted in page faults, which a busy machine
// does not change.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { bearer, TOKENS } from './fixtures/keys.js'
import { baseConfig, configFile, nodeArgs, ROOT, spawnProcess } from './proxy-process.js'

const MiB = 1024 * 1024

/** Minor page faults of a process so far (field 10 of /proc/<pid>/stat). */
function minorFaults (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7])
}

/** POSTs `size` bytes as a blob, from one 1 MiB block with backpressure; resolves with the status. */
async function upload (origin: string, size: number): Promise<number> {
  const block = Buffer.alloc(MiB, 7)
  const target = new URL(`${origin}/api/blobs/sha256:${'ab'.repeat(32)}`)
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { ...bearer(TOKENS.model), 'content-length': size } }, res => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    let sent = 0
    const pump = (): void => {
      while (sent < size) {
        sent += MiB
        if (!req.write(block)) {
          req.once('drain', pump)
          return
        }
      }
      req.end()
    }
    pump()
  })
}

const glibc = process.platform === 'linux' &&
  (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined

test('a 128 MiB upload through the running proxy reuses its memory: page faults stay a small fraction of the bytes', { skip: glibc ? false : 'glibc heap behaviour (Linux with glibc only)' }, async (t) => {
  // An upstream that only counts the bytes, so that the proxy, not a digest, sets the pace.
  let received = 0
  const sink = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => { received += chunk.length })
    req.on('end', () => { res.writeHead(201).end() })
  })
  await new Promise<void>(resolve => sink.listen(0, '127.0.0.1', resolve))
  t.after(() => { sink.close() })
  const file = configFile(baseConfig(`http://127.0.0.1:${(sink.address() as AddressInfo).port}`, { auth: { generate_tokens: [TOKENS.generate], model_tokens: [TOKENS.model] } }))
  const proxy = spawnProcess(t, process.execPath, nodeArgs('src/server.ts', ['--config', file]), { cwd: ROOT })
  const [, port] = await proxy.waitFor(/"address":\["127\.0\.0\.1:(\d+)"\][^\n]*ollama-proxy ready/)
  const origin = `http://127.0.0.1:${port}`
  const pid = proxy.child.pid!

  // The first uploads make the region (and V8's young generation) resident; the measured one must
  // not fault anything in again.
  const size = 128 * MiB
  assert.equal(await upload(origin, 32 * MiB), 201)
  assert.equal(await upload(origin, size), 201)
  const before = minorFaults(pid)
  assert.equal(await upload(origin, size), 201)
  const faults = minorFaults(pid) - before
  assert.equal(received, 32 * MiB + 2 * size)
  // Without the region glibc trims each ~32 MiB batch and the next one faults it in again: 8,900
  // to 23,000 faults here (of 32,768 pages); with it 14 to 495 (bench/README.md, "S3, third pass").
  assert.ok(faults < size / 4096 / 10, `${faults} page faults for ${size / 4096} pages uploaded`)
  proxy.child.kill('SIGTERM')
  await proxy.exited
})
