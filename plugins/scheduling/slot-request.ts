import type { SchedulingHost } from './host-choice.js'
import type { SlotLedger } from './slot-ledger.js'

export interface SchedulerSettings {
  /** Waiting requests of all keys together; past it 503. */
  queueSize: number
  /** How long (ms) a request may wait for a slot; past it 504. */
  queueTimeoutMs: number
}

export interface SchedulerOptions {
  /** Shares hosts' slots with other replicas (RedisLeases); without one, slots count on this replica only. */
  ledger?: SlotLedger
  /** Clock for wait times, ms; performance.now by default. */
  now?: () => number
}

/** What one request asks for. */
export interface SlotRequest {
  /** Key name: the unit of fairness and of the `queued` bound. */
  key: string
  /** Share of the key (auth.keys[].weight): a positive integer, 1 by default. */
  weight?: number
  /** Most requests the key may have waiting (limits.queued); null or absent = only the shared queueSize. */
  queued?: number | null
  /** Model the route names (raw, as the client sent it), for the host choice. */
  model?: string
  /** Host names not to use (hosts already tried). */
  exclude?: ReadonlySet<string>
  /** The one host to use (named by the client). */
  only?: string
  /** Fires when the client leaves: a waiting request gives its place up at once (499). */
  signal?: AbortSignal
}

/** A held slot. release() gives it back the first time (true) and does nothing after (false). */
export interface SlotGrant<H extends SchedulingHost> {
  readonly host: H
  /** Time spent waiting for the slot, ms (0 when one was free). */
  readonly waitedMs: number
  release (): boolean
}
