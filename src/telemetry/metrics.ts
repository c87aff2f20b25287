import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SinkName } from '../sinks/sink.js';
import type { WritePathCounts } from '../sinks/tsdb/writer.js';

/** Most distinct node ids tracked by the per-node series; the rest share the `_other` series. */
export const MAX_TRACKED_NODES = 1000;
export const OTHER_NODE = '_other';

export type MessageOutcome = 'received' | 'accepted' | 'rejected' | 'duplicate';
export type SinkEventResult = 'written' | 'duplicate' | 'retried' | 'dead_lettered';

/** Live values read at scrape time (gauges are computed, never pushed from the hot path). */
export interface MetricsSource {
  spoolBytes(): number;
  /** 1 while the spool takes batches, 0 while it refuses them (full, or JetStream unreachable). */
  spoolUp(): number;
  sinks(): ReadonlyArray<{
    readonly name: SinkName;
    readonly backlogEvents: number;
    readonly backlogRecords: number;
    readonly backlogBytes: number;
    readonly oldestUndeliveredAgeSeconds: number;
    readonly drainRatePerSecond: number;
    readonly catchUpSeconds: number;
    readonly circuit: 'closed' | 'half_open' | 'open';
    readonly deadLetters: number;
  }>;
  inflightBytes(): number;
  /** PostgreSQL writes per path since start; absent when the tsdb sink is off. */
  tsdbWritePaths?: () => Readonly<WritePathCounts>;
}

/** The `path` label of each write-path count. */
const WRITE_PATH_LABELS: Readonly<Record<keyof WritePathCounts, string>> = { copy: 'copy', conflicts: 'conflicts', skipDuplicates: 'skip_duplicates' };

const CIRCUIT_VALUE = { closed: 0, half_open: 1, open: 2 } as const;

/**
 * The mothership's Prometheus metrics, in a registry of their own (no global state: two apps in
 * one test process do not share counters). Every label is bounded: status codes, error codes
 * from the registry, sink names, and node ids capped at MAX_TRACKED_NODES.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'status' | 'error_code'>;
  private readonly messages: Counter<'outcome'>;
  private readonly sinkEvents: Counter<'sink' | 'result'>;
  private readonly writeDuration: Histogram<'sink'>;
  private readonly nodeLastSeen: Gauge<'node'>;
  private readonly nodeMessages: Counter<'node'>;
  private readonly nodes = new Set<string>();

  constructor(source: MetricsSource, options: { readonly defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({ name: 'mothership_ingest_requests_total', help: 'POST /ingest answers by HTTP status and error code ("" on success).', labelNames: ['status', 'error_code'], registers });
    this.messages = new Counter({ name: 'mothership_messages_total', help: 'Messages by outcome: received, accepted (durable), rejected (alone), duplicate (already stored).', labelNames: ['outcome'], registers });
    this.sinkEvents = new Counter({ name: 'mothership_sink_events_total', help: 'Events per sink by result: written, duplicate, retried (a failed attempt), dead_lettered.', labelNames: ['sink', 'result'], registers });
    this.writeDuration = new Histogram({
      name: 'mothership_sink_write_duration_seconds',
      help: 'Duration of one send to a sink, successful or not.',
      labelNames: ['sink'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.nodeLastSeen = new Gauge({ name: 'mothership_node_last_seen_timestamp_seconds', help: 'When each edge node last sent an accepted batch.', labelNames: ['node'], registers });
    this.nodeMessages = new Counter({ name: 'mothership_node_messages_total', help: 'Accepted messages per edge node.', labelNames: ['node'], registers });
    new Gauge({
      name: 'mothership_sink_backlog_events',
      help: 'Events in the spool not yet delivered to the sink.',
      labelNames: ['sink'],
      registers,
      collect() {
        for (const s of source.sinks()) this.set({ sink: s.name }, s.backlogEvents);
      },
    });
    new Gauge({
      name: 'mothership_sink_backlog_records',
      help: 'Spool records (accepted batches; JetStream messages) the sink has not finished: with JetStream, the consumer lag shared by every instance.',
      labelNames: ['sink'],
      registers,
      collect() {
        for (const s of source.sinks()) this.set({ sink: s.name }, s.backlogRecords);
      },
    });
    new Gauge({
      name: 'mothership_sink_backlog_bytes',
      help: 'Spool bytes not yet delivered to the sink.',
      labelNames: ['sink'],
      registers,
      collect() {
        for (const s of source.sinks()) this.set({ sink: s.name }, s.backlogBytes);
      },
    });
    new Gauge({
      name: 'mothership_sink_oldest_undelivered_age_seconds',
      help: 'Age of the oldest event the sink has not stored yet (0 when caught up).',
      labelNames: ['sink'],
      registers,
      collect() {
        for (const s of source.sinks()) this.set({ sink: s.name }, s.oldestUndeliveredAgeSeconds);
      },
    });
    new Gauge({
      name: 'mothership_sink_drain_rate_events_per_second',
      help: 'Events the sink stored per second over the last 10 s (how fast a backlog drains).',
      labelNames: ['sink'],
      registers,
      collect() {
        for (const s of source.sinks()) this.set({ sink: s.name }, s.drainRatePerSecond);
      },
    });
    new Gauge({
      name: 'mothership_sink_catch_up_seconds',
      help: 'Estimated time for the sink to drain its backlog at the rate it shrinks, net of new batches (0 when caught up, -1 while it does not shrink).',
      labelNames: ['sink'],
      registers,
      collect() {
        for (const s of source.sinks()) this.set({ sink: s.name }, s.catchUpSeconds);
      },
    });
    new Gauge({
      name: 'mothership_sink_circuit_state',
      help: 'Circuit breaker per sink: 0 closed, 1 half-open, 2 open.',
      labelNames: ['sink'],
      registers,
      collect() {
        for (const s of source.sinks()) this.set({ sink: s.name }, CIRCUIT_VALUE[s.circuit]);
      },
    });
    new Gauge({
      name: 'mothership_sink_dead_letters',
      help: 'Dead letters held for the sink.',
      labelNames: ['sink'],
      registers,
      collect() {
        for (const s of source.sinks()) this.set({ sink: s.name }, s.deadLetters);
      },
    });
    new Gauge({
      name: 'mothership_spool_bytes',
      help: 'Bytes the spool uses (on disk, or in the JetStream stream).',
      registers,
      collect() {
        this.set(source.spoolBytes());
      },
    });
    new Gauge({
      name: 'mothership_spool_up',
      help: '1 while the spool takes batches; 0 while it refuses them (full, or JetStream unreachable).',
      registers,
      collect() {
        this.set(source.spoolUp());
      },
    });
    const tsdbWritePaths = source.tsdbWritePaths;
    if (tsdbWritePaths !== undefined) {
      const counted: WritePathCounts = { copy: 0, conflicts: 0, skipDuplicates: 0 };
      new Counter({
        name: 'mothership_tsdb_writes_total',
        help: 'PostgreSQL writes by path: copy (plain COPY, every row new), conflicts (a plain COPY met a stored row and was redone), skip_duplicates (written skipping stored rows).',
        labelNames: ['path'],
        registers,
        collect() {
          // The writer keeps plain counts (no prom-client on the write path); catch up here.
          const now = tsdbWritePaths();
          for (const key of Object.keys(WRITE_PATH_LABELS) as Array<keyof WritePathCounts>) {
            this.inc({ path: WRITE_PATH_LABELS[key] }, Math.max(0, now[key] - counted[key]));
            counted[key] = now[key];
          }
        },
      });
    }
    new Gauge({
      name: 'mothership_inflight_request_bytes',
      help: 'Request bytes being received or processed.',
      registers,
      collect() {
        this.set(source.inflightBytes());
      },
    });
  }

  ingestAnswered(status: number, errorCode: string): void {
    this.requests.inc({ status: String(status), error_code: errorCode });
  }

  messagesCounted(outcome: MessageOutcome, n: number): void {
    if (n > 0) this.messages.inc({ outcome }, n);
  }

  nodeSeen(node: string | null, accepted: number, nowMs: number): void {
    const label = this.nodeLabel(node ?? '');
    this.nodeLastSeen.set({ node: label }, nowMs / 1000);
    if (accepted > 0) this.nodeMessages.inc({ node: label }, accepted);
  }

  sinkEventsCounted(sink: SinkName, result: SinkEventResult, n: number): void {
    if (n > 0) this.sinkEvents.inc({ sink, result }, n);
  }

  sinkWriteSeconds(sink: SinkName, seconds: number): void {
    this.writeDuration.observe({ sink }, seconds);
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private nodeLabel(node: string): string {
    if (this.nodes.has(node)) return node;
    if (this.nodes.size >= MAX_TRACKED_NODES) return OTHER_NODE;
    this.nodes.add(node);
    return node;
  }
}
