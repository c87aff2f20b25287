import type { Clock } from '../lib/clock.js';
import type { Sink, SinkHealth, SinkName } from './sink.js';

export interface SinkStatus {
  readonly name: SinkName;
  readonly health: SinkHealth;
  readonly checkedAtMs: number;
}

/**
 * Runs sink health checks on demand, at most once per `cacheMs`, sharing one check between
 * concurrent callers, so a load balancer polling /health cannot hammer the databases.
 */
export class SinkHealthMonitor {
  private cached: readonly SinkStatus[] | null = null;
  private inFlight: Promise<readonly SinkStatus[]> | null = null;

  constructor(
    private readonly sinks: readonly Sink[],
    private readonly clock: Clock,
    private readonly cacheMs = 1000,
    private readonly timeoutMs = 2000,
  ) {}

  async statuses(): Promise<readonly SinkStatus[]> {
    const now = this.clock.now();
    const cached = this.cached;
    if (cached !== null && cached.every((s) => now - s.checkedAtMs < this.cacheMs)) return cached;
    this.inFlight ??= this.checkAll().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async checkAll(): Promise<readonly SinkStatus[]> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    const statuses = await Promise.all(
      this.sinks.map(async (sink): Promise<SinkStatus> => {
        let health: SinkHealth;
        try {
          health = await sink.healthcheck(signal);
        } catch (err) {
          health = { healthy: false, reason: err instanceof Error ? err.message : String(err) };
        }
        return { name: sink.name, health, checkedAtMs: this.clock.now() };
      }),
    );
    this.cached = statuses;
    return statuses;
  }
}
