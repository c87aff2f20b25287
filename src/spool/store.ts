import type { IngestEvent } from '../pipeline/event.js';
import type { SinkName } from '../sinks/sink.js';
import type { SpoolRecord } from './spool-reader.js';

/** /health calls a spool full this much before a batch is refused for good: a typical batch would not fit. */
const FULL_HEADROOM_BYTES = 1024 * 1024;

export function nearlyFull(bytes: number, maxBytes: number): boolean {
  return bytes + FULL_HEADROOM_BYTES > maxBytes;
}

/** Retry-After for a full spool: the seconds its drain needs to free `bytes`, 30 while it does not drain, at most 300. */
export function secondsToFree(bytes: number, drainBytesPerSecond: number): number {
  if (drainBytesPerSecond <= 0) return 30;
  return Math.min(300, Math.max(1, Math.ceil(bytes / drainBytesPerSecond)));
}

/** What a sink still has to deliver. `records`/`events` are exact on disk; see each backend. */
export interface SinkBacklog {
  readonly ackedSeq: number;
  readonly records: number;
  readonly events: number;
  readonly bytes: number;
}

/** Reads one sink's records in seq order (seqs count 1, 2, 3… without gaps). */
export interface RecordReader {
  /** The seq the next `read` returns. */
  readonly next: number;
  /** The next record; waits for one. Null only when the signal aborts. */
  read(signal: AbortSignal): Promise<SpoolRecord | null>;
  close(): Promise<void>;
}

/**
 * One sink's view of the spool, as its delivery worker uses it: records to read in order, and
 * an acknowledgement that moves over records once they are stored (or dead-lettered).
 */
export interface SinkFeed {
  /** Every record through this seq is finished; reading starts after it. */
  ackedSeq(): number;
  reader(): RecordReader;
  /** The last seq a reader can have now without waiting. */
  readableSeq(): number;
  /** Resolves once a record after `afterSeq` is readable, or the signal aborts. */
  waitForMore(afterSeq: number, signal: AbortSignal): Promise<void>;
  /** Records through `seq` are finished; they held `events` events and `bytes` bytes for this sink. */
  ack(seq: number, events: number, bytes: number): void;
  backlog(): SinkBacklog;
  /**
   * Whether the sink is delivering from this process (false while its circuit is open). A shared
   * spool stops handing this process batches meanwhile, so a process whose sink fails does not
   * hold what another could deliver; a local spool has no one else to hand them to.
   */
  setDelivering?(delivering: boolean): void;
  /**
   * Shutting down: a shared spool stops handing this process batches and hands back those it
   * fetched but the worker has not read; returns the last seq the worker still has to finish.
   * A local spool has no one else to deliver its records: absent, the worker drains it.
   */
  stopTaking?(): number;
}

export interface AppendOptions {
  /** Sinks the batch goes to (SINK_BITS); default: every sink of the spool. */
  readonly targets?: number;
  /**
   * Whether a second append of the same events may be taken for a resend and stored once
   * (JetStream's de-duplication window). A dead-letter replay says false: it resends on purpose.
   */
  readonly dedupe?: boolean;
}

/**
 * The durable hand-off between ingestion and delivery: a local disk log (the default) or a
 * JetStream stream shared by several motherships. `append` resolving is the commit point of a
 * batch: once it has, the batch survives a crash (and, on JetStream, the loss of this machine).
 */
export interface SpoolStore {
  readonly backend: 'disk' | 'jetstream';
  /**
   * Whether other processes deliver from this spool too: an answer then does not wait for a
   * write it will most often not see, and its backlog is not this process's alone.
   */
  readonly shared: boolean;
  readonly sinks: readonly SinkName[];
  append(events: readonly IngestEvent[], options?: AppendOptions): Promise<number>;
  feed(sink: SinkName): SinkFeed;
  backlogOf(sink: SinkName): SinkBacklog;
  readonly totalBytes: number;
  readonly maxBytes: number;
  /** Why batches cannot be taken now (full, unreachable), or null. /health is `unhealthy` then. */
  refusal(): string | null;
  /** The `spool` section of /health. */
  healthView(): Readonly<Record<string, unknown>>;
  /** GET /admin/spool, less the per-sink part. */
  adminView(): Readonly<Record<string, unknown>>;
  close(): Promise<void>;
}
