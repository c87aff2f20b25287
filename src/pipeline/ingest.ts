import type { RecordOutcome, SinkWorker } from '../delivery/sink-worker.js';
import type { SinkName } from '../sinks/sink.js';
import type { SpoolStore } from '../spool/store.js';
import type { Metrics } from '../telemetry/metrics.js';
import { parseEnvelope } from './envelope.js';
import type { RejectedMessage } from './event.js';
import { normalizeBatch } from './normalize.js';

/** The most rejected messages listed in one answer; the count in `errors` is always exact. */
export const MAX_REJECTED_LISTED = 100;

/** Per-sink part of the answer: the seed's `written`/`errors` (+ `queued` for Loki), plus `duplicates`. */
export interface SinkResult {
  written: number;
  duplicates: number;
  errors: number;
  queued?: number;
}

/** The 200 answer of POST /ingest: the seed's shape, plus `duplicates` per sink and `rejected`. */
export interface IngestAnswer {
  status: 'success';
  received: number;
  sanitized: number;
  written: number;
  errors: number;
  sink_results: Partial<Record<SinkName, SinkResult>>;
  rejected?: RejectedMessage[];
}

export interface IngestRequest {
  readonly body: unknown;
  readonly receivedAtMs: number;
  readonly idempotencyKey: string | null;
  /** The authenticated node id (stamped as `source`, used in ids), or null. */
  readonly node?: string | null;
  /** Who the rate limit counts this batch against (node id or client address); null: not counted. */
  readonly rateKey?: string | null;
  /**
   * Called once the batch holds no request memory any more: durable in the spool, refused by
   * it, or empty. The answer may then still wait for the sinks, which costs no memory.
   */
  readonly onAppended?: () => void;
}

/** Admits a batch of `messages` for `key` or throws (e.g. `rate_limited`); the HTTP layer's rate limiter. */
export interface Admission {
  take(key: string, messages: number): void;
}

export interface IngestOptions {
  readonly maxMessagesPerBatch: number;
  readonly maxJsonDepth: number;
  readonly maxKeysPerMessage: number;
  readonly maxStringBytes: number;
  /** Null or absent: no rate limit. */
  readonly admission?: Admission | null;
  /**
   * The most the answer waits for each sink to store the batch before reporting it `queued`
   * (0: never waits); the worker shortens it to 0 when waiting cannot pay (SinkWorker.answerWaitMs).
   */
  readonly waitMs: Readonly<Partial<Record<SinkName, number>>>;
  readonly metrics?: Metrics;
}

/** What the answer needs of a normalized batch, once its events are with the spool. */
interface Admitted {
  readonly received: number;
  readonly accepted: number;
  readonly rejected: readonly RejectedMessage[];
  readonly source: string | null;
  readonly receivedAtMs: number;
  /** The spool append (resolves with the record's seq once durable); null when no message was accepted. */
  readonly seq: Promise<number> | null;
}

/**
 * One batch, from parsed body to answer: validate and normalize, append to the spool (the
 * commit point: once this resolves the batch survives a crash), then give each sink a short
 * chance to report the batch stored so the answer can say `written` rather than `queued`.
 */
export class Ingestor {
  constructor(
    private readonly spool: Pick<SpoolStore, 'append'>,
    private readonly workers: readonly SinkWorker[],
    private readonly options: IngestOptions,
  ) {}

  /**
   * Not async itself: the parsed body and the batch's events are locals of `admit` only, so
   * once normalized and handed to the spool they are garbage. What waits for the sinks (up to
   * TSDB_WRITE_TIMEOUT_MS) is the small `Admitted` summary, not the request.
   */
  ingest(request: IngestRequest): Promise<IngestAnswer> {
    let admitted: Admitted;
    try {
      admitted = this.admit(request);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.settle(admitted, request.onAppended);
  }

  private admit(request: IngestRequest): Admitted {
    const envelope = parseEnvelope(request.body, this.options);
    // Counted before any work on the messages: a refused batch costs the node nothing.
    const rateKey = request.rateKey ?? null;
    if (rateKey !== null) this.options.admission?.take(rateKey, envelope.messages.length);
    const batch = normalizeBatch(envelope, {
      receivedAtMs: request.receivedAtMs,
      idempotencyKey: request.idempotencyKey,
      maxJsonDepth: this.options.maxJsonDepth,
      maxKeysPerMessage: this.options.maxKeysPerMessage,
      maxStringBytes: this.options.maxStringBytes,
      node: request.node ?? null,
    });
    this.options.metrics?.messagesCounted('received', batch.received);
    return {
      received: batch.received,
      accepted: batch.events.length,
      rejected: batch.rejected,
      source: envelope.source,
      receivedAtMs: request.receivedAtMs,
      seq: batch.events.length === 0 ? null : this.spool.append(batch.events),
    };
  }

  private async settle(admitted: Admitted, onAppended: (() => void) | undefined): Promise<IngestAnswer> {
    if (admitted.seq === null) {
      onAppended?.();
      return this.counted(this.answer(admitted, this.workers.map(() => ({ written: 0, duplicates: 0, poison: [] }))));
    }
    let seq: number;
    try {
      seq = await admitted.seq;
    } finally {
      onAppended?.();
    }
    this.options.metrics?.nodeSeen(admitted.source, admitted.accepted, admitted.receivedAtMs);
    const outcomes = await Promise.all(
      this.workers.map((w) => {
        const ceilingMs = this.options.waitMs[w.sink.name] ?? 0;
        return ceilingMs > 0 ? w.waitFor(seq, w.answerWaitMs(seq, admitted.accepted, ceilingMs)) : Promise.resolve(null);
      }),
    );
    return this.counted(this.answer(admitted, outcomes));
  }

  private counted(answer: IngestAnswer): IngestAnswer {
    const metrics = this.options.metrics;
    if (metrics !== undefined) {
      metrics.messagesCounted('accepted', answer.written);
      metrics.messagesCounted('rejected', answer.errors);
      let duplicates = 0;
      for (const r of Object.values(answer.sink_results)) duplicates = Math.max(duplicates, r.duplicates);
      metrics.messagesCounted('duplicate', duplicates);
    }
    return answer;
  }

  private answer(batch: Admitted, outcomes: ReadonlyArray<RecordOutcome | null>): IngestAnswer {
    const rejected = [...batch.rejected];
    const sinkResults: Partial<Record<SinkName, SinkResult>> = {};
    const poisoned = new Set<number>();
    for (let i = 0; i < this.workers.length; i++) {
      const name = (this.workers[i] as SinkWorker).sink.name;
      const outcome = outcomes[i] ?? null;
      if (outcome === null) {
        sinkResults[name] = { written: 0, duplicates: 0, errors: 0, queued: batch.accepted };
        continue;
      }
      sinkResults[name] = { written: outcome.written, duplicates: outcome.duplicates, errors: outcome.poison.length };
      for (const p of outcome.poison) {
        if (poisoned.has(p.position)) continue;
        poisoned.add(p.position);
        rejected.push({ index: messageIndexOf(batch, p.position), error: p.error.code, message: p.error.message });
      }
    }
    rejected.sort((a, b) => a.index - b.index);
    const answer: IngestAnswer = {
      status: 'success',
      received: batch.received,
      sanitized: batch.accepted,
      written: batch.accepted - poisoned.size,
      errors: rejected.length,
      sink_results: sinkResults,
    };
    if (rejected.length > 0) answer.rejected = rejected.slice(0, MAX_REJECTED_LISTED);
    return answer;
  }
}

/** Events keep message order, skipping the messages rejected during normalization. */
function messageIndexOf(batch: Admitted, eventPosition: number): number {
  let index = eventPosition;
  for (const r of batch.rejected) {
    if (r.index <= index) index++;
    else break;
  }
  return index;
}
