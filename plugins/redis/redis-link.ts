import { Redis } from 'ioredis'
import { redactUrlCredentials } from '../config/url-credentials.js'

type LogFn = (obj: Record<string, unknown>, msg: string) => void

/** What a Redis user logs through: Fastify's (pino) logger fits. */
export interface RedisLogger {
  info: LogFn
  warn: LogFn
  error: LogFn
  debug?: LogFn
}

/** The lines a link logs: on its first connection, when Redis goes (one per outage), and when it is back. */
export interface RedisLinkMessages {
  connected?: string
  down: string
  back: string
}

export interface RedisLinkOptions {
  /** redis:// or rediss:// URL, password and database included */
  url: string
  /** ms a command may take before it counts as failed */
  commandTimeoutMs: number
  messages: RedisLinkMessages
  /**
   * false for a one-off user (the usage command): connect when asked, queue commands until then,
   * never reconnect. true (default): connect at once, fail fast while away, reconnect for ever.
   */
  reconnect?: boolean
  /** Called each time the connection is ready (first time and after every outage). */
  onReady?: () => void
}

const RECONNECT_MS = 500
const CONNECT_TIMEOUT_MS = 2000
/** After a failed command on a connection that still looks fine (a hung server), stay away this long (ms). */
const COOLDOWN_MS = 1000

/** host:port of a Redis URL, for logs: never the password. */
export function redisAddress (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port !== '' ? parsed.port : '6379'}`
  } catch {
    return 'redis'
  }
}

/** An error's message for a log line, with any URL's user:password replaced. */
export function redisErrorMessage (err: unknown): string {
  return redactUrlCredentials(err instanceof Error ? err.message : String(err))
}

/**
 * One connection to Redis and whether to use it, shared by everything the replicas keep there
 * (minute windows, slot leases, usage). Commands fail fast while Redis is away (no offline queue,
 * a short timeout); the users count on their own meanwhile. The link logs one warning when Redis
 * goes and one info line when it is back, naming Redis as host:port, never with its password.
 */
export class RedisLink {
  readonly client: Redis
  /** host:port, for logs */
  readonly address: string
  private isDown = false
  private connectedOnce = false
  private closing = false
  private retryAt = 0

  constructor (private readonly options: RedisLinkOptions, private readonly log: RedisLogger) {
    this.address = redisAddress(options.url)
    const reconnect = options.reconnect ?? true
    this.client = new Redis(options.url, {
      lazyConnect: !reconnect,
      enableOfflineQueue: !reconnect,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Forever, at a steady pace: Redis may be away for minutes.
      retryStrategy: () => reconnect ? RECONNECT_MS : null
    })
    this.client.on('ready', () => {
      this.retryAt = 0
      if (this.isDown) this.succeeded()
      else if (!this.connectedOnce && options.messages.connected !== undefined) this.log.info({ redis: this.address }, options.messages.connected)
      this.connectedOnce = true
      options.onReady?.()
    })
    // Without an 'error' listener ioredis prints every failed reconnection to stderr.
    this.client.on('error', (err: unknown) => { this.fallBack(err) })
    this.client.on('close', () => { this.fallBack(new Error('connection closed')) })
  }

  /** True while commands may go to Redis: connected, not closing, not cooling down after a failure. */
  usable (): boolean {
    return !this.closing && this.client.status === 'ready' && Date.now() >= this.retryAt
  }

  /**
   * True while a command can be sent at all, cooling down or not: for a command that must follow
   * the ones already sent (Redis runs a connection's commands in order, a hung one when it goes on).
   */
  connected (): boolean {
    return !this.closing && this.client.status === 'ready'
  }

  /** True from a failure until Redis answers again. */
  get down (): boolean {
    return this.isDown
  }

  /** Connects a one-off link (reconnect: false); false (logged) when Redis does not answer. */
  async connect (): Promise<boolean> {
    try {
      if (this.client.status === 'wait') await this.client.connect()
      return this.usable()
    } catch (err) {
      this.fallBack(err)
      return false
    }
  }

  /** A command failed: stay away for a moment (a hung server answers nothing) and count locally. */
  failed (err: unknown): void {
    this.retryAt = Date.now() + COOLDOWN_MS
    this.fallBack(err)
  }

  /** A command worked: Redis is back if it was away (an info line). */
  succeeded (): void {
    if (!this.isDown) return
    this.isDown = false
    this.log.info({ redis: this.address }, this.options.messages.back)
  }

  /** Quits (or drops) the connection; commands are refused from now on. Never throws. */
  async close (): Promise<void> {
    this.closing = true
    if (this.client.status === 'ready') {
      try {
        await this.client.quit()
        return
      } catch {
        // fall through: drop the connection
      }
    }
    this.client.disconnect()
  }

  private fallBack (err: unknown): void {
    if (this.closing || this.isDown) return
    this.isDown = true
    this.log.warn({ redis: this.address, reason: redisErrorMessage(err) }, this.options.messages.down)
  }
}
