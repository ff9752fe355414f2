import type { SchedulingHost } from '../plugins/scheduling/host-choice.js'
import type { SlotGrant, SlotScheduler } from '../plugins/scheduling/slot-scheduler.js'
import type { SlotRequest } from '../plugins/scheduling/slot-request.js'

export interface TestHost extends SchedulingHost {
  healthy: boolean
  models: Set<string>
  loaded: Set<string>
}

/** A host as the pool keeps it; models are normalised names (registry.ollama.ai/library/x:latest). */
export function testHost (name: string, maxConcurrent: number | null, state: { healthy?: boolean, models?: string[], loaded?: string[] } = {}): TestHost {
  return { name, maxConcurrent, healthy: state.healthy ?? true, inFlight: 0, models: new Set(state.models ?? []), loaded: new Set(state.loaded ?? []) }
}

export const canonical = (model: string) => `registry.ollama.ai/library/${model}:latest`

export interface Granted {
  key: string
  label: string
  grant: SlotGrant<TestHost>
}

/**
 * Grants in the order the scheduler hands them out: acquire() through it, then `await next()` for
 * each grant as it comes (no polling, no sleeps).
 */
export class GrantLog {
  readonly granted: Granted[] = []
  readonly refused: Array<{ label: string, err: unknown }> = []
  private taken = 0
  private wake: (() => void) | undefined

  constructor (private readonly scheduler: SlotScheduler<TestHost>) {}

  acquire (request: SlotRequest, label = request.key): Promise<SlotGrant<TestHost>> {
    const pending = this.scheduler.acquire(request)
    pending.then(grant => {
      this.granted.push({ key: request.key, label, grant })
      this.wake?.()
    }, (err: unknown) => {
      this.refused.push({ label, err })
      this.wake?.()
    })
    return pending
  }

  /** acquire() without waiting: the outcome lands in `granted` or `refused`. */
  enqueue (request: SlotRequest, label = request.key): void {
    this.acquire(request, label).catch(() => {})
  }

  /** The next grant not yet returned by next(). */
  async next (): Promise<Granted> {
    while (this.granted.length <= this.taken) {
      await new Promise<void>(resolve => { this.wake = resolve })
    }
    return this.granted[this.taken++]
  }

  /** Everything settled so far, after pending promise callbacks have run. */
  async settled (): Promise<void> {
    await new Promise(resolve => setImmediate(resolve))
  }
}
