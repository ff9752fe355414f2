// What the `usage` command needs from the config file, read from the parsed YAML directly: a
// stand-in until the config schema carries `usage:` (then ProxyConfig.usage replaces this file).
import { existsSync, readFileSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { ConfigError, packageRoot } from '../plugins/config/config-loader.js'
import { checkTimeZone } from '../plugins/usage/calendar.js'

export interface UsageSettings {
  /** absolute path of the usage database */
  database: string
  /** IANA time zone where days begin */
  timezone: string
  redis: { url: string, prefix: string } | null
}

/** The default database, `data/usage.sqlite` in the installation folder. */
export function defaultUsageDatabase (): string {
  return join(packageRoot(), 'data', 'usage.sqlite')
}

function section (data: unknown, name: string, file: string): Record<string, unknown> {
  const value = (data as Record<string, unknown> | null)?.[name]
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${file}: ${name}: expected a mapping`)
  return value as Record<string, unknown>
}

function text (value: unknown, field: string, file: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${file}: ${field}: expected a non-empty string`)
  return value
}

/**
 * `usage.database` (relative to the installation folder), `usage.timezone` (default UTC) and
 * `redis.url`/`redis.prefix` of config file `file`. A default config path that does not exist
 * gives the defaults; an explicit one (`explicit`) that does not exist is an error. Throws
 * ConfigError naming the file and the field; a Redis URL is never repeated (it may hold a password).
 */
export function readUsageSettings (file: string, explicit: boolean): UsageSettings {
  let data: unknown = {}
  if (existsSync(file)) {
    try {
      data = parseYaml(readFileSync(file, 'utf8'))
    } catch (err) {
      throw new ConfigError(`${file}: invalid YAML: ${(err as Error).message.split('\n')[0]}`)
    }
  } else if (explicit) {
    throw new ConfigError(`${file}: config file not found`)
  }
  const usage = section(data, 'usage', file)
  const database = text(usage.database, 'usage.database', file) ?? defaultUsageDatabase()
  const timezone = text(usage.timezone, 'usage.timezone', file) ?? 'UTC'
  try {
    checkTimeZone(timezone)
  } catch (err) {
    throw new ConfigError(`${file}: usage.timezone: ${(err as Error).message}`)
  }
  const redis = section(data, 'redis', file)
  const url = text(redis.url, 'redis.url', file)
  if (url !== undefined && !/^rediss?:\/\/[^/]/.test(url)) {
    throw new ConfigError(`${file}: redis.url: expected redis://[user:password@]host[:port][/db] or rediss://...; the value is not shown because it may hold a password`)
  }
  return {
    database: isAbsolute(database) ? database : join(packageRoot(), database),
    timezone,
    redis: url === undefined ? null : { url, prefix: text(redis.prefix, 'redis.prefix', file) ?? 'ollama-proxy:' }
  }
}
