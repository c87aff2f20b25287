import type { DeadLetterStore } from '../deadletter/store.js';
import type { Clock } from '../lib/clock.js';
import type { SinkHealthMonitor } from '../sinks/health-monitor.js';
import type { SinkName } from '../sinks/sink.js';
import type { SpoolStore } from '../spool/store.js';
import type { SinkWorker } from './sink-worker.js';

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface SinkHealthView {
  healthy: boolean;
  enabled: boolean;
  reason?: string;
  circuit?: string;
  backlog_events?: number;
  backlog_bytes?: number;
  oldest_undelivered_age_seconds?: number;
  /** Events stored per second over the last 10 s. */
  drain_rate_events_per_second?: number;
  /** The backlog divided by how fast it shrinks (net of new batches): 0 when caught up, null while it does not shrink. */
  catch_up_seconds?: number | null;
  dead_letters?: number;
  details?: Readonly<Record<string, unknown>>;
}

export interface HealthBody {
  status: HealthStatus;
  timestamp: number;
  healthy: boolean;
  sinks: Partial<Record<SinkName, SinkHealthView>>;
  enabled_sinks: SinkName[];
  /** The backend's own view (disk: bytes, max_bytes, full, segments, fsync; JetStream: the stream). */
  spool: Readonly<Record<string, unknown>>;
  reason?: string;
}

export interface HealthReportDeps {
  readonly clock: Clock;
  readonly spool: SpoolStore;
  readonly workers: readonly SinkWorker[];
  readonly monitor: SinkHealthMonitor;
  readonly deadLetters: DeadLetterStore;
  readonly isAccepting: () => boolean;
  /** Non-secret facts about each sink (mode, target), shown under `details`. */
  readonly details: Readonly<Partial<Record<SinkName, () => Readonly<Record<string, unknown>>>>>;
}

const ALL_SINKS: readonly SinkName[] = ['tsdb', 'loki'];

/**
 * The /health body in the seed's shape. `healthy`: everything works. `degraded` (still 200): a
 * sink is failing but batches are spooled. `unhealthy` (503): batches cannot be accepted now
 * (spool full or unreachable, or shutting down).
 */
export async function healthReport(deps: HealthReportDeps): Promise<HealthBody> {
  const checks = await deps.monitor.statuses();
  const sinks: Partial<Record<SinkName, SinkHealthView>> = {};
  for (const name of ALL_SINKS) sinks[name] = { healthy: false, enabled: false };
  let allHealthy = true;
  for (const worker of deps.workers) {
    const name = worker.sink.name;
    const status = worker.status();
    const check = checks.find((c) => c.name === name);
    const backlog = deps.spool.backlogOf(name);
    const healthy = status.healthy && (check?.health.healthy ?? false);
    allHealthy &&= healthy;
    const view: SinkHealthView = {
      healthy,
      enabled: true,
      circuit: status.circuit,
      backlog_events: backlog.events,
      backlog_bytes: backlog.bytes,
      oldest_undelivered_age_seconds: Math.round(status.oldestUndeliveredAgeMs / 1000),
      drain_rate_events_per_second: Math.round(status.drainRatePerSecond),
      catch_up_seconds: catchUpSeconds(backlog.events, status.healthy ? status.backlogShrinkPerSecond : 0),
      dead_letters: deps.deadLetters.count(name),
    };
    const reason = check?.health.healthy === false ? check.health.reason : status.lastError;
    if (!healthy && reason !== undefined && reason !== null) view.reason = reason;
    const details = deps.details[name]?.();
    if (details !== undefined) view.details = details;
    sinks[name] = view;
  }
  const refusal = deps.spool.refusal();
  const accepting = deps.isAccepting();
  const status: HealthStatus = !accepting || refusal !== null ? 'unhealthy' : allHealthy ? 'healthy' : 'degraded';
  const body: HealthBody = {
    status,
    timestamp: Math.floor(deps.clock.now() / 1000),
    healthy: status !== 'unhealthy',
    sinks,
    enabled_sinks: deps.workers.map((w) => w.sink.name),
    spool: deps.spool.healthView(),
  };
  if (!accepting) body.reason = 'shutting down';
  else if (refusal !== null) body.reason = refusal;
  else if (!allHealthy) body.reason = 'a sink is failing; batches are spooled and will be delivered when it recovers';
  return body;
}

/** The backlog at the rate it shrinks: 0 when there is none, null while it does not shrink (or the sink is failing). */
export function catchUpSeconds(backlogEvents: number, shrinkPerSecond: number): number | null {
  if (backlogEvents <= 0) return 0;
  if (shrinkPerSecond <= 0) return null;
  return Math.ceil(backlogEvents / shrinkPerSecond);
}
