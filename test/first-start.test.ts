// The first start of a user, through the real process: a terminal, the README's placeholders,
// the config found from any folder.
import assert from 'node:assert/strict'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { stringify } from 'yaml'
import { ConfigError, ConfigNotWritableError, isPlaceholderToken, loadConfig, parseConfig } from '../plugins/config/config-loader.js'
import { startFakeOllama } from './fake-ollama.js'
import { baseConfig, configFile, nodeArgs, ROOT, spawnProcess, TSX_LOADER } from './proxy-process.js'

test('on a terminal, npm start logs pretty lines (pino-pretty is installed)', async (t) => {
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const file = configFile(baseConfig(fake.url))
  const command = [process.execPath, ...nodeArgs('src/server.ts', ['--config', file])].map(a => `'${a}'`).join(' ')
  // script(1) gives the command a pseudo-terminal; its own stdout is our pipe.
  const proxy = spawnProcess(t, 'script', ['-qfec', command, '/dev/null'], { cwd: ROOT, detached: true })
  t.after(() => { try { process.kill(-proxy.child.pid!, 'SIGKILL') } catch {} })
  const match = await proxy.waitFor(/INFO[^\n]*ollama-proxy ready/)
  assert.doesNotMatch(proxy.output(), /unable to determine transport target/)
  assert.doesNotMatch(match[0], /^\{"level"/, 'not a JSON line')
  process.kill(-proxy.child.pid!, 'SIGTERM')
  await proxy.exited
})

test('a proxy whose terminal has gone (SIGHUP, then SIGTERM) still exits', async (t) => {
  // Node 20 asserts while resetting a vanished terminal at exit; with a JS listener on SIGSEGV
  // (close-with-grace's default list) that abort turned into a 100 % CPU loop that only SIGKILL ended.
  const fake = await startFakeOllama()
  t.after(async () => { await fake.close() })
  const file = configFile(baseConfig(fake.url))
  const node = [process.execPath, ...nodeArgs('src/server.ts', ['--config', file])].map(a => `'${a}'`).join(' ')
  // The shell tells us its pid on fd 3 and becomes the proxy, which keeps fd 3 open until it exits.
  const terminal = spawnProcess(t, 'script', ['-qfec', `echo $$ >&3; exec ${node}`, '/dev/null'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] })
  const pidPipe = terminal.child.stdio[3] as NodeJS.ReadableStream
  let pidText = ''
  pidPipe.on('data', (chunk: Buffer) => { pidText += chunk.toString() })
  const proxyGone = new Promise<void>(resolve => pidPipe.on('close', () => resolve()))
  await terminal.waitFor(/ollama-proxy ready/)
  const pid = Number(pidText.trim())
  assert.ok(pid > 0, `the proxy's pid arrived: ${JSON.stringify(pidText)}`)
  t.after(() => { try { process.kill(pid, 'SIGKILL') } catch {} })
  const terminalGone = new Promise(resolve => terminal.child.once('exit', resolve))
  terminal.child.kill('SIGKILL') // the terminal closes: the proxy gets SIGHUP (a reload) and lives on
  await terminalGone
  process.kill(pid, 'SIGTERM')
  let guard: NodeJS.Timeout | undefined
  const hung = new Promise<'hung'>(resolve => { guard = setTimeout(() => resolve('hung'), 60_000) })
  const outcome = await Promise.race([proxyGone.then(() => 'exited' as const), hung])
  clearTimeout(guard)
  assert.equal(outcome, 'exited', 'the proxy still ran a minute after SIGTERM')
})

test('placeholders from the README and the example file are refused, naming the field', () => {
  const cases: Array<[string, string]> = [
    ['<secret>', 'auth.generate_tokens.0'],
    ['<a generate token>', 'auth.generate_tokens.0'],
    ['sha256:<64 hex>', 'auth.generate_tokens.0'],
    ['sha256:<hex>', 'auth.generate_tokens.0'],
    ['change-me-generate-token', 'auth.generate_tokens.0'],
    ['CHANGEME', 'auth.generate_tokens.0'],
    ['changeme-please-0123456789', 'auth.generate_tokens.0'],
    ['your-generate-token-1', 'auth.generate_tokens.0'],
    ['secret', 'auth.generate_tokens.0']
  ]
  for (const [token, field] of cases) {
    assert.ok(isPlaceholderToken(token), token)
    assert.throws(() => parseConfig(stringify({ auth: { generate_tokens: [token] } }), '/etc/p.yaml'), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.match(err.message, new RegExp(`^/etc/p\\.yaml: ${field.replaceAll('.', '\\.')}: this is a placeholder`), token)
      return true
    })
  }
  assert.throws(() => parseConfig(stringify({ auth: { generate_tokens: ['a-real-secret-0123456789'], model_tokens: ['<secret>'] } }), 'f'), /auth\.model_tokens\.0: this is a placeholder/)
  assert.throws(() => parseConfig(stringify({ auth: { keys: [{ name: 'a', key: '<secret>', scopes: ['generate'] }] } }), 'f'), /auth\.keys\.0\.key: this is a placeholder/)
  for (const real of ['a-real-secret-0123456789', 'sha256:' + 'ab'.repeat(32), 'olp_Zv8lF4kAgBZb82S6qlYNLc6K7wLDg5j6']) {
    assert.equal(isPlaceholderToken(real), false, real)
  }
})

test('the README seed with "<secret>" does not start', async (t) => {
  const file = configFile({ auth: { generate_tokens: ['<secret>'], model_tokens: ['<secret>'] }, service: { base_url: 'http://127.0.0.1:1' } })
  const proxy = spawnProcess(t, process.execPath, nodeArgs('src/server.ts', ['--config', file]))
  const { code } = await proxy.exited
  assert.equal(code, 1)
  assert.match(proxy.output(), /auth\.generate_tokens\.0: this is a placeholder/)
})

test('started from another folder, the default config is the installation\'s, and its absolute path is logged', async (t) => {
  // A copy of the package (sources, shared node_modules) stands for an installation.
  const install = mkdtempSync(join(tmpdir(), 'proxy-install-'))
  for (const part of ['src', 'plugins', 'routes', 'package.json', 'tsconfig.json']) cpSync(join(ROOT, part), join(install, part), { recursive: true })
  symlinkSync(join(ROOT, 'node_modules'), join(install, 'node_modules'))
  const elsewhere = mkdtempSync(join(tmpdir(), 'proxy-cwd-'))
  const entry = join(install, 'src/server.ts')
  const env = { ...process.env, OLLAMA_PROXY_CONFIG: '', HOST: '127.0.0.1', PORT: '0', OLLAMA_BASE_URL: 'http://127.0.0.1:1' }
  const proxy = spawnProcess(t, process.execPath, ['--import', TSX_LOADER, entry], { cwd: elsewhere, env })
  const created = join(install, 'config/config.yaml')
  await proxy.waitFor(/ollama-proxy ready/)
  assert.ok(existsSync(created), 'created next to the installation')
  assert.equal(existsSync(join(elsewhere, 'config')), false, 'nothing created in the shell\'s folder')
  assert.ok(proxy.output().includes(`"file":"${created}"`), 'the created file is named')
  assert.ok(proxy.output().includes(`"config":"${created}"`), 'the ready line names the absolute path')
  assert.match(readFileSync(created, 'utf8'), /generate_tokens/)
  proxy.child.kill('SIGTERM')
  assert.equal((await proxy.exited).code, 0)
})

test('a config folder that cannot be made stops the first start with one line naming it and the fix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-blocked-'))
  writeFileSync(join(dir, 'config'), 'a file where the folder should be')
  assert.throws(() => loadConfig({ createIfMissing: true, env: {}, defaultPath: join(dir, 'config/config.yaml') }), (err: unknown) => {
    assert.ok(err instanceof ConfigNotWritableError)
    assert.equal(err.message, `${join(dir, 'config')}: the config folder cannot be made, a file is in its way: create ${join(dir, 'config/config.yaml')} first (a copy of config/config.example.yaml with tokens of your own), or mount the folder writable`)
    return true
  })
  const nested = join(dir, 'config', 'deeper', 'config.yaml')
  assert.throws(() => loadConfig({ createIfMissing: true, env: {}, defaultPath: nested }), ConfigNotWritableError)
})

test('the installation\'s config folder blocked: the process exits 1 with that one line, no stack trace', async (t) => {
  const install = mkdtempSync(join(tmpdir(), 'proxy-install-ro-'))
  for (const part of ['src', 'plugins', 'routes', 'package.json', 'tsconfig.json']) cpSync(join(ROOT, part), join(install, part), { recursive: true })
  symlinkSync(join(ROOT, 'node_modules'), join(install, 'node_modules'))
  writeFileSync(join(install, 'config'), '')
  const env = { ...process.env, OLLAMA_PROXY_CONFIG: '', HOST: '127.0.0.1', PORT: '0', OLLAMA_BASE_URL: 'http://127.0.0.1:1' }
  const proxy = spawnProcess(t, process.execPath, ['--import', TSX_LOADER, join(install, 'src/server.ts')], { cwd: install, env })
  const { code } = await proxy.exited
  assert.equal(code, 1)
  const output = proxy.output().trim()
  assert.equal(output.split('\n').length, 1, output)
  assert.match(output, new RegExp(`^ollama-proxy: ${join(install, 'config')}: the config folder cannot be made.*or mount the folder writable$`))
})

test('a config file the proxy cannot read is one line naming it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-unreadable-'))
  const file = join(dir, 'config.yaml')
  mkdirSync(file) // a folder where the file should be: reading it fails for any user
  assert.throws(() => loadConfig({ path: file, env: {} }), (err: unknown) => err instanceof ConfigError && err.message === `${file}: the config file cannot be read (EISDIR)`)
})
