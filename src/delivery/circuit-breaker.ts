export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitOptions {
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number;
  /** First open period; doubles on each failed probe, up to `maxOpenMs`. */
  readonly openMs: number;
  readonly maxOpenMs: number;
}

/**
 * Per-sink circuit breaker. While open, no send is attempted (a dead database is not hammered
 * by every in-flight record); when the open period ends one probe goes through, and its
 * outcome closes the circuit or opens it for longer.
 */
export class CircuitBreaker {
  private failures = 0;
  private opens = 0;
  private openUntil = 0;
  private probing = false;
  private current: CircuitState = 'closed';

  constructor(
    private readonly options: CircuitOptions,
    private readonly now: () => number,
  ) {}

  get state(): CircuitState {
    if (this.current === 'open' && this.now() >= this.openUntil) return 'half_open';
    return this.current;
  }

  /** 0 when a send may go now; otherwise how long to wait before asking again. */
  waitMs(): number {
    const state = this.state;
    if (state === 'closed') return 0;
    if (state === 'open') return Math.max(1, this.openUntil - this.now());
    if (this.probing) return Math.min(1000, this.options.openMs);
    this.probing = true;
    return 0;
  }

  success(): void {
    this.failures = 0;
    this.opens = 0;
    this.probing = false;
    this.current = 'closed';
  }

  failure(): void {
    this.failures++;
    const wasProbe = this.probing;
    this.probing = false;
    if (wasProbe || this.failures >= this.options.failureThreshold) {
      const period = Math.min(this.options.maxOpenMs, this.options.openMs * 2 ** Math.min(this.opens, 20));
      this.opens++;
      this.openUntil = this.now() + period;
      this.current = 'open';
    }
  }
}
