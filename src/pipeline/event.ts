/**
 * The normalized unit that flows from the HTTP layer through the spool to every sink.
 * Built once per accepted message by `normalizeBatch`; never mutated afterwards.
 */
export interface IngestEvent {
  /** Deterministic 16-byte id in UUID text form (see README, "Event ids"). */
  readonly id: string;
  /** Event time: whole milliseconds since the Unix epoch (UTC). */
  readonly timeMs: number;
  /** Nanoseconds within `timeMs` (0..999_999), so source precision down to ns survives. */
  readonly timeNanos: number;
  /** When the mothership received the batch, ms since epoch. */
  readonly receivedAtMs: number;
  readonly source: string | null;
  readonly type: string | null;
  readonly service: string | null;
  readonly host: string | null;
  readonly severity: string | null;
  readonly message: string | null;
  /** The full sanitized message, storable as PostgreSQL jsonb (no NUL, no lone surrogates). */
  readonly data: Readonly<Record<string, unknown>>;
  /** `JSON.stringify(data)`, computed once and reused by every sink. */
  readonly dataJson: string;
}

/** A message refused alone; the rest of its batch is accepted. `index` is its position in `messages`. */
export interface RejectedMessage {
  readonly index: number;
  readonly error: string;
  readonly message: string;
}

/** The validated envelope of one POST /ingest body. */
export interface BatchEnvelope {
  readonly messages: readonly unknown[];
  /** Envelope `source`, if a string. */
  readonly source: string | null;
  /** Envelope `timestamp`, raw (normalized later like any message time). */
  readonly timestamp: unknown;
  readonly isRetry: boolean;
}

export interface NormalizedBatch {
  readonly events: IngestEvent[];
  readonly rejected: RejectedMessage[];
  readonly received: number;
}
