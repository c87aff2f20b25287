import type { MothershipError } from '../lib/errors.js';
import { batchOf, type SendBatch, type Sink } from './sink.js';

export interface PoisonEvent {
  /** Position of the event in the batch given to `deliverIsolating`. */
  readonly position: number;
  readonly error: MothershipError;
}

export type DeliveryResult =
  | {
      readonly kind: 'delivered';
      readonly written: number;
      readonly duplicates: number;
      /** Events the sink refused for good; everything else is stored. */
      readonly poison: readonly PoisonEvent[];
      /** Positions of the duplicates, when every send that found some said which; else null. */
      readonly duplicatePositions: readonly number[] | null;
    }
  | { readonly kind: 'retryable'; readonly error: MothershipError; readonly retryAfterMs?: number };

/**
 * Sends a batch to one sink; when the sink rejects it for good, bisects it so that only
 * the events it refuses are set aside and every other event is stored. A retryable outcome at
 * any depth stops the whole delivery: the caller retries it all (writes are idempotent, so the
 * halves already stored cost nothing the second time).
 */
export async function deliverIsolating(sink: Sink, batch: SendBatch, signal: AbortSignal): Promise<DeliveryResult> {
  const poison: PoisonEvent[] = [];
  let written = 0;
  let duplicates = 0;
  let duplicatePositions: number[] | null = [];
  const pending: Array<{ start: number; end: number }> = [{ start: 0, end: batch.size }];
  while (pending.length > 0) {
    const range = pending.pop() as { start: number; end: number };
    if (range.end <= range.start) continue;
    const whole = range.start === 0 && range.end === batch.size;
    // The encoded rows cover the whole batch only; halves are decoded and encoded again.
    const outcome = await sink.send(whole ? batch : batchOf(batch.events().slice(range.start, range.end)), signal);
    if (outcome.kind === 'retryable') return outcome;
    if (outcome.kind === 'delivered') {
      written += outcome.written;
      duplicates += outcome.duplicates;
      if (outcome.duplicatePositions === undefined || outcome.duplicatePositions.length !== outcome.duplicates) {
        if (outcome.duplicates > 0) duplicatePositions = null;
      } else {
        for (const p of outcome.duplicatePositions) duplicatePositions?.push(range.start + p);
      }
      for (const r of outcome.rejected ?? []) poison.push({ position: range.start + r.position, error: r.error });
      continue;
    }
    if (range.end - range.start === 1) {
      poison.push({ position: range.start, error: outcome.error });
      continue;
    }
    const mid = range.start + Math.floor((range.end - range.start) / 2);
    // Right half pushed first so the left half is sent first: events keep their order.
    pending.push({ start: mid, end: range.end }, { start: range.start, end: mid });
  }
  poison.sort((a, b) => a.position - b.position);
  duplicatePositions?.sort((a, b) => a - b);
  return { kind: 'delivered', written, duplicates, poison, duplicatePositions };
}
