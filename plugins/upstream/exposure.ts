import { networkInterfaces } from 'node:os'
import type { Agent } from 'undici'
import type { Host } from './upstream-pool.js'

/** True for a host name the proxy reaches on this machine's loopback: `localhost`, 127.0.0.0/8, ::1. */
export function isLoopback (hostname: string): boolean {
  const name = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return name === 'localhost' || name.endsWith('.localhost') || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)
}

/** This machine's addresses other clients could reach: every non-internal IPv4 and non-link-local IPv6 address. */
export function machineAddresses (): string[] {
  const addresses: string[] = []
  for (const list of Object.values(networkInterfaces())) {
    for (const entry of list ?? []) {
      if (entry.internal) continue
      if (entry.family === 'IPv6' && entry.address.toLowerCase().startsWith('fe80:')) continue
      addresses.push(entry.address)
    }
  }
  return addresses
}

/**
 * The `address:port` pairs among `addresses` where the Ollama the proxy reaches at `host` (on
 * loopback) also answers `GET /api/version` with 200: there, clients can use Ollama without a key.
 * Each address gets one request with a `timeoutMs` time limit; unreachable ones are left out.
 */
export async function exposedAddresses (agent: Agent, host: Pick<Host, 'url' | 'basePath'>, addresses: readonly string[], timeoutMs = 1000): Promise<string[]> {
  const url = new URL(host.url)
  const port = url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80'
  const answered = await Promise.all(addresses.map(async address => {
    const origin = `${url.protocol}//${address.includes(':') ? `[${address}]` : address}:${port}`
    try {
      const { statusCode, body } = await agent.request({ origin, path: host.basePath + '/api/version', method: 'GET', headers: { 'user-agent': 'ollama-proxy-check' }, signal: AbortSignal.timeout(timeoutMs) })
      await body.dump()
      return statusCode === 200 ? `${address}:${port}` : undefined
    } catch {
      return undefined
    }
  }))
  return answered.filter((a): a is string => a !== undefined)
}
