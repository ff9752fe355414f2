import { fieldError } from './config-errors.js'

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*@/gi

/** Replaces the user:password part of every URL in a text with "***"; for messages that may quote a URL. */
export function redactUrlCredentials (text: string): string {
  return text.replace(URL_CREDENTIALS, '$1***@')
}

/**
 * A redis(s) URL that parses, returned as given. Throws ConfigError naming `redis.url`; the
 * message never repeats the value, which may hold a password.
 */
export function checkRedisUrl (value: string, file: string): string {
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {
    // reported below
  }
  if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    throw fieldError(file, 'redis.url', 'expected redis://[user:password@]host[:port][/db] or rediss://...; the value is not shown because it may hold a password')
  }
  return value
}
