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

export interface Sink {
  readonly name: SinkName;
  /** Connects, migrates, and whatever else must happen before the first send. Throws on failure. */
  start(signal: AbortSignal): Promise<void>;
  send(events: readonly IngestEvent[], signal: AbortSignal, rows?: CopyRows): Promise<SendOutcome>;
  healthcheck(signal: AbortSignal): Promise<SinkHealth>;
  /** Idempotent; releases connections. */
  shutdown(): Promise<void>;
}
