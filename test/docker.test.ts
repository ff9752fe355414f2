import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { parse } from 'yaml'
import { parseConfig } from '../plugins/config/config-loader.js'
import {
  dockerfileStages, heredocScript, longestStopSeconds, optionValue, parseUnitFile, readmeSection,
  shellBlocks, shellCommands, volumeOptions
} from './deploy-files.js'
import { nodeArgs } from './proxy-process.js'

// No Docker engine or systemd runs here, so the files are checked at the level of the fields
// that matter, and the README's commands against the files they use.

interface Service {
  image?: string
  build?: unknown
  ports?: string[]
  volumes?: string[]
  environment?: Record<string, string>
  depends_on?: unknown
  stop_grace_period?: string
  profiles?: string[]
  entrypoint?: string[]
  network_mode?: string
  deploy?: { resources?: { reservations?: { devices?: Array<{ driver?: string, count?: unknown, capabilities?: string[] }> } } }
}
interface Compose { services: Record<string, Service>, volumes: Record<string, unknown> }

function readCompose (file: string): Compose {
  return parse(readFileSync(file, 'utf8'), { merge: true }) as Compose
}

/** The services `up` starts (a profile keeps one-off tools out). */
function startedServices (compose: Compose): Array<[string, Service]> {
  return Object.entries(compose.services).filter(([, s]) => s.profiles === undefined)
}

function mounts (service: Service): string[][] {
  return (service.volumes ?? []).map(v => v.split(':'))
}

/**
 * The config folder is mounted, never the file alone: the keys CLI (and most editors) replace the
 * file by a rename, which a single-file bind mount never shows to the container (it keeps the old
 * inode), so live reload would not see a new key; inside the container the rename fails (EBUSY).
 */
function assertConfigFolderMounted (service: Service, mode: 'ro' | 'rw'): void {
  const config = mounts(service).filter(([source, target]) => /^\.\/config\/?$/.test(source) && target === '/app/config')
  assert.equal(config.length, 1, 'the config folder is mounted at /app/config')
  assert.equal(config[0][2] ?? 'rw', mode, `the config folder is mounted ${mode}`)
  assert.ok(!mounts(service).some(([, target]) => target?.startsWith('/app/config/')), 'no file inside /app/config is mounted on its own')
}

/** The usage database's folder is a named volume of the file's own, so it outlives the container. */
function dataVolume (compose: Compose, service: Service): string {
  const data = mounts(service).filter(([, target]) => target === '/app/data')
  assert.equal(data.length, 1, '/app/data is mounted')
  const [source, , mode] = data[0]
  assert.ok(Object.keys(compose.volumes).includes(source), `${source} is a named volume`)
  assert.notEqual(mode, 'ro', 'the data volume is writable')
  return source
}

function assertStopGrace (service: Service): void {
  const grace = Number(/^(\d+)s$/.exec(service.stop_grace_period ?? '')?.[1])
  assert.ok(grace > longestStopSeconds(), `stop grace ${grace}s is longer than the longest clean stop ${longestStopSeconds()}s`)
}

test('docker-compose.yml: Ollama unpublished on the NVIDIA GPUs; the proxy published, config read-only, usage data on a volume', () => {
  const compose = readCompose('docker-compose.yml')
  const { ollama, proxy } = compose.services
  assert.match(ollama.image ?? '', /^ollama\/ollama/)
  assert.equal(ollama.ports, undefined, 'Ollama is not published to the host')
  const models = mounts(ollama).find(([, target]) => target === '/root/.ollama')
  assert.ok(models !== undefined && Object.keys(compose.volumes).includes(models[0]), 'models live on a named volume')
  const gpus = ollama.deploy?.resources?.reservations?.devices ?? []
  assert.ok(gpus.some(d => d.driver === 'nvidia' && d.count === 'all' && d.capabilities?.includes('gpu')), 'Ollama reserves the NVIDIA GPUs')
  const comments = readFileSync('docker-compose.yml', 'utf8').split('\n').filter(l => /^\s*#/.test(l)).join(' ')
  assert.match(comments, /without (an NVIDIA GPU|one)[^.]*delete the "deploy:" block/, 'the file says how to run without a GPU')
  assert.deepEqual(proxy.ports, ['8080:8080'])
  assert.equal(proxy.environment?.OLLAMA_BASE_URL, 'http://ollama:11434')
  assertConfigFolderMounted(proxy, 'ro')
  dataVolume(compose, proxy)
  assert.ok(JSON.stringify(proxy.depends_on).includes('ollama'))
  assertStopGrace(proxy)
})

test('docker-compose.scale.yml: Redis, two Ollama hosts and two proxy replicas behind a load balancer, each replica with its own data volume', () => {
  const compose = readCompose('docker-compose.scale.yml')
  const started = startedServices(compose)
  const proxies = started.filter(([, s]) => s.build !== undefined)
  const ollamas = started.filter(([, s]) => s.image?.startsWith('ollama/ollama'))
  assert.equal(proxies.length, 2, 'two proxy replicas')
  assert.equal(ollamas.length, 2, 'two Ollama hosts')
  assert.ok(started.some(([, s]) => s.image?.startsWith('redis')))
  for (const [, s] of ollamas) assert.equal(s.ports, undefined, 'Ollama hosts are not published')
  const dataVolumes = new Set<string>()
  for (const [, proxy] of proxies) {
    assertConfigFolderMounted(proxy, 'ro')
    dataVolumes.add(dataVolume(compose, proxy))
    assert.equal(proxy.ports, undefined, 'replicas are reached through the load balancer')
    assert.ok(JSON.stringify(proxy.depends_on).includes('redis'))
    assertStopGrace(proxy)
  }
  assert.equal(dataVolumes.size, 2, 'one usage database per replica')
  assert.deepEqual(started.filter(([, s]) => s.ports !== undefined).map(([name]) => name), ['nginx'], 'only the load balancer is published')
  assert.match(readFileSync('deploy/nginx-lb.conf', 'utf8'), /proxy_buffering\s+off/)
})

test('both compose files: a one-off "keys" service runs the keys CLI with the config folder writable, like the README says', () => {
  const bin = (JSON.parse(readFileSync('package.json', 'utf8')) as { bin: Record<string, string> }).bin['ollama-proxy']
  for (const file of ['docker-compose.yml', 'docker-compose.scale.yml']) {
    const compose = readCompose(file)
    const keys = compose.services.keys
    assert.ok(keys !== undefined, `${file} has a keys service`)
    assert.ok((keys.profiles ?? []).length > 0, `${file}: keys has a profile, so up never starts it`)
    assert.deepEqual(keys.entrypoint, ['node', bin, 'keys'])
    assertConfigFolderMounted(keys, 'rw')
    assert.equal(keys.network_mode, 'none')
    const [, proxy] = startedServices(compose).find(([, s]) => s.build !== undefined) ?? []
    assert.equal(keys.image, proxy?.image, `${file}: keys runs the proxy's image`)
    assert.deepEqual(keys.build, proxy?.build, `${file}: keys builds it when it is missing, never pulls a stranger's`)
  }
  const readme = readFileSync('README.md', 'utf8')
  const commands = shellBlocks(readme).flatMap(shellCommands).concat([...readme.matchAll(/`(docker compose [^`]+)`/g)].map(m => m[1]))
  const runs = commands.filter(c => /^docker compose .*\brun\b/.test(c))
  assert.ok(runs.some(c => /\bkeys add\b/.test(c)), 'the README mints a key with docker compose run')
  for (const command of runs) {
    const file = optionValue(command, '-f') ?? 'docker-compose.yml'
    const service = /\brun --rm --user "\$\(id -u\):\$\(id -g\)" (\S+)/.exec(command)?.[1]
    assert.ok(service !== undefined, `README: ${command} is run --rm as the owner of ./config`)
    assert.ok(readCompose(file).services[service] !== undefined, `README: ${file} has the service of: ${command}`)
  }
  assert.doesNotMatch(readme, /docker (compose )?(-f \S+ )?exec[^\n`]*\bkeys\b/, 'no keys command through the read-only config mount of a running proxy')
})

test('Dockerfile: build tools where native modules compile, the runtime gets the compiled node_modules, a data folder for node', () => {
  const text = readFileSync('Dockerfile', 'utf8')
  const stages = dockerfileStages(text)
  assert.ok(stages.length >= 2, 'multi-stage')
  assert.equal(new Set(stages.map(s => s.image)).size, 1, 'one base image: a native module is built for the runtime\'s Node ABI and libc')
  const runtime = stages.at(-1)!
  assert.match(runtime.image, /^node:(2[24]|26)-alpine/)
  const deps = stages.find(s => s.instructions.some(l => /^RUN .*npm ci --omit=dev/.test(l)))
  assert.ok(deps !== undefined && deps !== runtime, 'production dependencies are installed in a build stage')
  const install = deps.instructions.findIndex(l => /npm ci --omit=dev/.test(l))
  const tools = deps.instructions.findIndex(l => /^RUN apk add\b/.test(l) && ['python3', 'make', 'g++'].every(t => l.split(/\s+/).includes(t)))
  assert.ok(tools >= 0 && tools < install, 'python3, make and g++ are there before npm ci')
  const installLine = deps.instructions[install]
  assert.ok(!installLine.includes('--ignore-scripts') || /npm ci [^&]*--ignore-scripts\s*&&\s*npm rebuild\s*$/.test(installLine), 'install scripts (native builds) run')
  assert.ok(!runtime.instructions.some(l => /^RUN .*npm (ci|install|rebuild)/.test(l)), 'no install in the runtime stage, which has no compiler')
  assert.ok(runtime.instructions.includes(`COPY --from=${deps.name} /app/node_modules ./node_modules`))
  const build = stages.find(s => s.instructions.some(l => /\btsc\b/.test(l)))
  assert.ok(build !== undefined && runtime.instructions.includes(`COPY --from=${build.name} /app/dist ./dist`))
  const user = runtime.instructions.findIndex(l => /^USER (?!root)\w+/.test(l))
  const chown = runtime.instructions.findIndex(l => /^RUN .*mkdir -p [^&]*\/app\/data.*chown node:node [^&]*\/app\/data/.test(l))
  assert.ok(chown >= 0 && user > chown, '/app/data belongs to node, who runs the proxy')
  assert.ok(runtime.instructions.includes('USER node'))
  assert.ok(runtime.instructions.some(l => /^VOLUME .*\/app\/data/.test(l)), '/app/data is a volume')
  assert.ok(runtime.instructions.includes('EXPOSE 8080'))
  assert.ok(runtime.instructions.some(l => l.startsWith('HEALTHCHECK') && l.includes('/healthz')))
  assert.match(runtime.instructions.find(l => l.startsWith('CMD ')) ?? '', /^CMD \["node", "dist\/src\/server\.js"/, 'node runs directly so SIGTERM reaches it')
  assert.ok(!/COPY[^\n]*config\.ya?ml/.test(text), 'no config file copied into the image')
  const ignored = readFileSync('.dockerignore', 'utf8').split('\n')
  for (const path of ['config/config.yaml', 'data']) assert.ok(ignored.includes(path), `.dockerignore keeps ${path} out of the build context`)
})

test('README, Docker: the docker run command reaches a host Ollama on Linux, mounts config read-only and data on a volume, outlasts the drain', () => {
  const section = readmeSection('## Docker')
  const block = shellBlocks(section).find(b => /^docker run -d/m.test(b))
  assert.ok(block !== undefined)
  const commands = shellCommands(block)
  const run = commands.find(c => c.startsWith('docker run -d'))!
  assert.match(run, /(^|\s)--add-host=host\.docker\.internal:host-gateway(\s|$)/)
  assert.match(run, /(^|\s)-e OLLAMA_BASE_URL=http:\/\/host\.docker\.internal:11434(\s|$)/)
  const volumes = volumeOptions(run)
  assert.ok(volumes.some(([source, target, mode]) => source === '$PWD/config' && target === '/app/config' && mode === 'ro'))
  assert.ok(volumes.some(([source, target, mode]) => /^[\w-]+$/.test(source) && target === '/app/data' && mode === undefined), 'a named volume for the data')
  assert.ok(Number(optionValue(run, '--stop-timeout')) > longestStopSeconds(), 'docker stop waits longer than the drain')
  const configMade = commands.findIndex(c => /cat > config\/config\.yaml/.test(c))
  assert.ok(configMade >= 0 && configMade < commands.indexOf(run), 'the config is made on the host before the read-only mount')
  for (const text of ['OLLAMA_HOST=0.0.0.0', '--network host', 'OLLAMA_BASE_URL=http://127.0.0.1:11434', 'every network the host is on']) {
    assert.ok(section.replace(/\s+/g, ' ').includes(text), `the section explains ${text}`)
  }
  assert.match(section.replace(/\s+/g, ' '), /without an NVIDIA GPU, delete the `deploy:` block/)
  const keys = shellBlocks(section).flatMap(shellCommands).find(c => c.includes('dist/src/cli.js keys'))
  assert.ok(keys !== undefined && volumeOptions(keys).some(([source, target, mode]) => source === '$PWD/config' && target === '/app/config' && mode === undefined), 'keys runs with the config folder writable')
})

test('README, Docker: the commands that make the config give one the proxy accepts, and keep an existing one', { skip: spawnSync('openssl', ['version']).status !== 0 && 'openssl is not installed' }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ollama-proxy-readme-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  for (const section of ['## Docker', '## Without Docker: systemd']) {
    const block = shellBlocks(readmeSection(section)).find(b => b.includes('<<EOF'))!
    // The systemd steps run as root through sudo; here the same lines run as this user.
    const script = heredocScript(block, block.includes('mkdir -p config') ? 'mkdir -p config' : 'sudo test -e config/config.yaml').replace(/\bsudo /g, '')
    rmSync(join(dir, 'config'), { recursive: true, force: true })
    mkdirSync(join(dir, 'config'))
    const run = () => spawnSync('sh', ['-e', '-c', script], { cwd: dir, encoding: 'utf8' })
    assert.equal(run().status, 0)
    const file = join(dir, 'config', 'config.yaml')
    const first = readFileSync(file, 'utf8')
    const config = parseConfig(first, file)
    assert.equal(config.auth.generateTokens.length, 1)
    assert.equal(config.auth.modelTokens.length, 1)
    assert.notEqual(config.auth.generateTokens[0], config.auth.modelTokens[0])
    assert.equal(run().status, 0)
    assert.equal(readFileSync(file, 'utf8'), first, `${section}: a second run keeps the config`)
  }
})

test('deploy/ollama-proxy.service: SIGHUP on reload, a stop timeout above the drain, a dedicated user, data/ writable, hardened', (t) => {
  const text = readFileSync('deploy/ollama-proxy.service', 'utf8')
  const unit = parseUnitFile(text)
  const service = unit.get('Service')!
  const one = (key: string): string | undefined => service.get(key)?.at(-1)
  assert.match(one('ExecReload') ?? '', /^\/(usr\/)?bin\/kill -(HUP|s HUP) \$MAINPID$/)
  assert.ok(Number(one('TimeoutStopSec')) > longestStopSeconds())
  assert.ok(['SIGTERM', undefined].includes(one('KillSignal')), 'SIGTERM starts the drain')
  const user = one('User')
  assert.ok(user !== undefined && user !== 'root' && one('DynamicUser') !== 'yes', 'a dedicated user')
  const home = one('WorkingDirectory')!
  const main = (JSON.parse(readFileSync('package.json', 'utf8')) as { main: string }).main
  assert.equal(one('ExecStart'), `/usr/bin/node ${home}/${main}`)
  assert.equal(one('NoNewPrivileges'), 'yes')
  assert.equal(one('ProtectSystem'), 'strict')
  assert.deepEqual(service.get('ReadWritePaths')?.map(p => p.replace(/^-/, '')), [`${home}/data`], 'the usage database folder alone is writable')
  assert.notEqual(one('MemoryDenyWriteExecute'), 'yes', 'V8 compiles code at run time')
  const families = one('RestrictAddressFamilies')?.split(/\s+/)
  if (families !== undefined) for (const f of ['AF_INET', 'AF_INET6', 'AF_UNIX', 'AF_NETLINK']) assert.ok(families.includes(f), `${f} allowed`)
  if (service.has('SystemCallFilter')) assert.equal(one('SystemCallErrorNumber'), 'EPERM', 'a filtered call fails instead of killing the proxy')
  assert.equal(unit.get('Install')?.get('WantedBy')?.[0], 'multi-user.target')

  const section = readmeSection('## Without Docker: systemd')
  const commands = shellBlocks(section).flatMap(shellCommands)
  const needs = [
    new RegExp(`^sudo useradd --system .* ${user}$`), /^sudo cp deploy\/ollama-proxy\.service \/etc\/systemd\/system\/$/,
    new RegExp(`^sudo install -d -o ${user} -g ${user} .*\\bdata$`), /systemctl enable --now ollama-proxy$/,
    /^sudo systemctl reload ollama-proxy$/, new RegExp(`^sudo -u ${user} node dist/src/cli\\.js usage`)
  ]
  for (const need of needs) assert.ok(commands.some(c => need.test(c)), `README: a command matching ${need}`)
  assert.ok(section.includes(`\`${home}\``), 'README names the installation folder of the unit')

  // systemd's own check of the syntax, where it is installed; with this Node in ExecStart, as
  // verify insists the binary exists.
  const dir = mkdtempSync(join(tmpdir(), 'ollama-proxy-unit-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'ollama-proxy.service'), text.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `))
  const verify = spawnSync('systemd-analyze', ['verify', join(dir, 'ollama-proxy.service')], { encoding: 'utf8' })
  if (verify.error !== undefined) t.diagnostic('systemd-analyze is not installed: the unit\'s syntax is not verified')
  else assert.equal(verify.status, 0, verify.stderr)
})

test('deploy/nginx-lb.conf sends the client address, and the README says to set server.trust_proxy for the log\'s remoteAddress', () => {
  const nginx = readFileSync('deploy/nginx-lb.conf', 'utf8')
  assert.match(nginx, /^\s*proxy_set_header X-Forwarded-For \$remote_addr;/m, 'the edge replaces a client-sent X-Forwarded-For')
  const bullet = readmeSection('### Behind any load balancer').replace(/\s+/g, ' ')
  assert.match(bullet, /\*\*Client addresses\*\*[^*]*`remoteAddress`[^*]*`server\.trust_proxy`[^*]*`X-Forwarded-For`/)
  assert.match(readFileSync('docker-compose.scale.yml', 'utf8'), /^#\s+trust_proxy: true/m)
})

test('--help lists the commands (keys, usage) and the environment variables', () => {
  const help = spawnSync(process.execPath, nodeArgs('src/server.ts', ['--help']), { encoding: 'utf8' })
  assert.equal(help.status, 0, help.stderr)
  for (const text of ['ollama-proxy keys', 'ollama-proxy usage [--since', '[--until', '[--by key,model,host,day]', '[--format table|json|csv]']) {
    assert.ok(help.stdout.includes(text), `--help shows ${text}`)
  }
  for (const variable of ['OLLAMA_PROXY_CONFIG', 'OLLAMA_BASE_URL', 'HOST', 'PORT', 'LOG_LEVEL', 'NODE_OPTIONS']) {
    assert.match(help.stdout, new RegExp(`^ {2}(\\S+, )?${variable}\\b`, 'm'), `--help lists ${variable}`)
  }
})
