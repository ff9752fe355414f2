import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { parse } from 'yaml'
import { parseConfig } from '../plugins/config/config-loader.js'

// No Docker engine runs here, so the files are checked at the level of the fields that matter.

/**
 * The config folder is mounted, never the file alone: the keys CLI (and most editors) replace the
 * file by a rename, which a single-file bind mount never shows to the container (it keeps the old
 * inode), so live reload would not see a new key; inside the container the rename fails (EBUSY).
 */
function assertConfigFolderMounted (volumes: string[] | undefined): void {
  const mounts = (volumes ?? []).map(v => v.split(':'))
  assert.ok(mounts.some(([source, target]) => /^\.\/config\/?$/.test(source) && target === '/app/config'), 'the config folder is mounted at /app/config')
  assert.ok(!mounts.some(([, target]) => target?.startsWith('/app/config/')), 'no file inside /app/config is mounted on its own')
}

test('docker-compose.yml: Ollama unpublished with a model volume, the proxy published and pointed at it', () => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8'))
  const { ollama, proxy } = compose.services
  assert.match(ollama.image, /^ollama\/ollama/)
  assert.equal(ollama.ports, undefined, 'Ollama is not published to the host')
  assert.ok(ollama.volumes.some((v: string) => v.endsWith(':/root/.ollama')))
  assert.ok(Object.keys(compose.volumes).includes(ollama.volumes[0].split(':')[0]), 'models live on a named volume')
  assert.deepEqual(proxy.ports, ['8080:8080'])
  assert.equal(proxy.environment.OLLAMA_BASE_URL, 'http://ollama:11434')
  assertConfigFolderMounted(proxy.volumes)
  assert.ok(proxy.depends_on.includes('ollama'))
  const grace = Number(/^(\d+)s$/.exec(proxy.stop_grace_period)?.[1])
  const drain = parseConfig('auth:\n  generate_tokens: ["a-token-for-the-test-123"]\n', 'x').server.drainTimeoutMs / 1000
  assert.ok(grace > drain, `stop grace ${grace}s is longer than the drain ${drain}s`)
})

test('Dockerfile: multi-stage, LTS Node, production deps, non-root, node as the command, healthcheck, no config baked in', () => {
  const text = readFileSync('Dockerfile', 'utf8')
  const stages = text.match(/^FROM /gm) ?? []
  assert.ok(stages.length >= 2, 'multi-stage')
  const lines = text.split('\n')
  const runtime = lines.slice(lines.findLastIndex(l => l.startsWith('FROM ')))
  assert.match(runtime[0], /FROM node:(2[24]|26)-/)
  assert.ok(runtime.some(l => /npm ci --omit=dev/.test(l)), 'production dependencies only')
  assert.ok(runtime.some(l => /^USER (?!root)\w+/.test(l)), 'non-root user')
  assert.ok(runtime.some(l => l.trim() === 'EXPOSE 8080'))
  assert.ok(runtime.some(l => l.startsWith('HEALTHCHECK')) && text.includes('/healthz'))
  const cmd = runtime.find(l => l.startsWith('CMD '))
  assert.match(cmd ?? '', /^CMD \["node", "dist\/src\/server\.js"/, 'node runs directly so SIGTERM reaches it')
  assert.ok(!/COPY[^\n]*config\.ya?ml/.test(text), 'no config file copied into the image')
  assert.ok(readFileSync('.dockerignore', 'utf8').includes('config/config.yaml'))
})

test('docker-compose.scale.yml: Redis, two Ollama hosts and two proxy replicas behind a load balancer', () => {
  const compose = parse(readFileSync('docker-compose.scale.yml', 'utf8'), { merge: true })
  const services = compose.services as Record<string, { image?: string, build?: unknown, ports?: string[], volumes?: string[], depends_on?: unknown, stop_grace_period?: string }>
  const proxies = Object.entries(services).filter(([, s]) => s.build !== undefined)
  const ollamas = Object.values(services).filter(s => s.image?.startsWith('ollama/ollama'))
  assert.equal(proxies.length, 2, 'two proxy replicas')
  assert.equal(ollamas.length, 2, 'two Ollama hosts')
  assert.ok(Object.values(services).some(s => s.image?.startsWith('redis')))
  for (const s of ollamas) assert.equal(s.ports, undefined, 'Ollama hosts are not published')
  for (const [, proxy] of proxies) {
    assertConfigFolderMounted(proxy.volumes)
    assert.equal(proxy.ports, undefined, 'replicas are reached through the load balancer')
    assert.ok(JSON.stringify(proxy.depends_on).includes('redis'))
    assert.ok(Number(/^(\d+)s$/.exec(proxy.stop_grace_period ?? '')?.[1]) > 30)
  }
  const published = Object.values(services).filter(s => s.ports !== undefined)
  assert.equal(published.length, 1, 'only the load balancer is published')
  assert.match(readFileSync('deploy/nginx-lb.conf', 'utf8'), /proxy_buffering\s+off/)
})
