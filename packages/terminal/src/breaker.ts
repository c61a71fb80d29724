/**
 * A circuit breaker for online authorization: after a few consecutive failures the terminal stops
 * waiting for a sick platform (so its timeout is not added to every payment) and decides offline;
 * after a cool-down one trial request goes online again.
 */
import { BREAKER_FAILURES_TO_OPEN, BREAKER_OPEN_MS } from './limits.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

export class CircuitBreaker {
  private failures = 0;
  private openedAtMs: number | undefined;
  private trialInFlight = false;

  constructor(
    private readonly failuresToOpen = BREAKER_FAILURES_TO_OPEN,
    private readonly openMs = BREAKER_OPEN_MS,
  ) {}

  state(nowMs: number): BreakerState {
    if (this.openedAtMs === undefined) return 'closed';
    return nowMs - this.openedAtMs >= this.openMs ? 'half_open' : 'open';
  }

  /** May this request go online? In half-open state only one trial at a time does. */
  allow(nowMs: number): boolean {
    const s = this.state(nowMs);
    if (s === 'closed') return true;
    if (s === 'open' || this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.openedAtMs = undefined;
    this.trialInFlight = false;
  }

  failure(nowMs: number): void {
    this.trialInFlight = false;
    this.failures++;
    if (this.openedAtMs !== undefined || this.failures >= this.failuresToOpen) this.openedAtMs = nowMs;
  }
}
