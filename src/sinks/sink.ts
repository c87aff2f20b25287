import type { MothershipError } from '../lib/errors.js';
import type { IngestEvent } from '../pipeline/event.js';

export type SinkName = 'tsdb' | 'loki';

/**
 * What a sink says about one `send`. Sinks only classify; retrying, backoff and cursors live
 * in shared code.
 * - delivered: every event is stored (`written` new, `duplicates` already there from a retry),
 *   except those listed in `rejected` (a sink like Loki that accepts part of a batch).
 * - retryable: nothing can be assumed stored; try again later (optionally after `retryAfterMs`).
 * - rejected: the sink refuses these events for good (bad data, not a bad link).
 */
export type SendOutcome =
  | {
      readonly kind: 'delivered';
      readonly written: number;
      readonly duplicates: number;
      /** A partial success: these events (positions in the batch sent) were refused for good, all others stored. */
      readonly rejected?: ReadonlyArray<{ readonly position: number; readonly error: MothershipError }>;
      /**
       * Which events were the duplicates (positions in the batch sent, `duplicates` of them), when
       * the sink knows: a send that merges several batches then answers each of them exactly.
       */
      readonly duplicatePositions?: readonly number[];
    }
  | { readonly kind: 'retryable'; readonly error: MothershipError; readonly retryAfterMs?: number }
  | { readonly kind: 'rejected'; readonly error: MothershipError };

export interface SinkHealth {
  readonly healthy: boolean;
  /** Present when unhealthy: a short reason, free of secrets. */
  readonly reason?: string;
}

/**
 * The events of a send as PostgreSQL COPY text rows, in order: the spool records' own bytes
 * (see pipeline/copy-text.ts). Given only when it covers exactly the events sent; a sink that
 * writes COPY sends these bytes instead of encoding the events again.
 */
export type CopyRows = readonly Buffer[];

/**
 * The events of one send. A spool record is bytes until something asks for its events: a sink
 * that sends `rows` as they are (PostgreSQL, on its usual path) never decodes them, so neither
 * keeping up nor catching up on a backlog costs parsing.
 */
export interface SendBatch {
  /** How many events. */
  readonly size: number;
  /** The events, in order; decoded on the first call, then kept. */
  events(): readonly IngestEvent[];
  /** The same events as COPY rows, when every record holds them. */
  readonly rows: CopyRows | undefined;
}

/** A batch of events already decoded (tests, a bisected half, the dead-letter replay). */
export function batchOf(events: readonly IngestEvent[], rows?: CopyRows): SendBatch {
  return { size: events.length, events: () => events, rows };
}

export interface Sink {
  readonly name: SinkName;
  /** Connects, migrates, and whatever else must happen before the first send. Throws on failure. */
  start(signal: AbortSignal): Promise<void>;
  send(batch: SendBatch, signal: AbortSignal): Promise<SendOutcome>;
  healthcheck(signal: AbortSignal): Promise<SinkHealth>;
  /** Idempotent; releases connections. */
  shutdown(): Promise<void>;
}
