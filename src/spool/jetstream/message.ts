import { createHash } from 'node:crypto';
import { MothershipError } from '../../lib/errors.js';
import type { IngestEvent } from '../../pipeline/event.js';
import { encodeEvents, recordEvents, type RecordEvents } from '../record-codec.js';

/*
 * One spool record as a JetStream message: the record codec's payload (the same bytes the disk
 * spool writes), with the sinks it goes to and its event count in headers. A batch larger than
 * the server's max_payload goes as several messages; each is a record of its own.
 */
export const TARGETS_HEADER = 'Edgebot-Targets';
export const EVENTS_HEADER = 'Edgebot-Events';
/** Room left for the subject, headers and protocol framing under the server's max_payload. */
const ENVELOPE_BYTES = 1024;

export interface OutgoingMessage {
  readonly payload: Buffer;
  readonly eventCount: number;
  /** JetStream de-duplication id; null when a resend must be stored again (a replay). */
  readonly msgId: string | null;
}

/**
 * The messages of one batch. Their ids derive from the batch's event ids and targets only, so a
 * node resending the batch (same events, same ids) publishes the same messages, which JetStream
 * stores once within its duplicate window; splitting is deterministic for the same reason.
 */
export function batchMessages(events: readonly IngestEvent[], targets: number, maxPayload: number, dedupe: boolean): OutgoingMessage[] {
  const limit = Math.max(1024, maxPayload - ENVELOPE_BYTES);
  const parts = split(events, limit);
  const base = dedupe ? batchId(events, targets) : null;
  return parts.map((p, i) => ({ payload: p.payload, eventCount: p.events.length, msgId: base === null ? null : parts.length === 1 ? base : `${base}.${i + 1}-${parts.length}` }));
}

/** The record a received message holds; throws when its headers are not ours. */
export function messageRecord(payload: Uint8Array, header: (name: string) => string): RecordEvents & { readonly targets: number } {
  const rawTargets = header(TARGETS_HEADER);
  const rawCount = header(EVENTS_HEADER);
  const targets = Number(rawTargets);
  const eventCount = Number(rawCount);
  if (rawTargets === '' || rawCount === '' || !Number.isSafeInteger(targets) || !Number.isSafeInteger(eventCount) || eventCount < 0) {
    throw new Error(`not a spool record (headers ${TARGETS_HEADER}/${EVENTS_HEADER} missing or invalid)`);
  }
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return { targets, ...recordEvents(bytes, eventCount) };
}

/** 128 bits of SHA-256 over the targets and the event ids, in order. */
export function batchId(events: readonly IngestEvent[], targets: number): string {
  const hash = createHash('sha256').update(String(targets));
  for (const e of events) hash.update('\n').update(e.id);
  return hash.digest('hex').slice(0, 32);
}

function split(events: readonly IngestEvent[], limit: number): Array<{ events: readonly IngestEvent[]; payload: Buffer }> {
  const payload = encodeEvents(events);
  if (payload.length <= limit) return [{ events, payload }];
  if (events.length === 1) {
    throw new MothershipError('body_too_large', `One message encodes to ${payload.length} bytes, over the NATS server's max_payload (${limit + ENVELOPE_BYTES}); raise max_payload in the NATS configuration or send smaller messages`);
  }
  const half = Math.ceil(events.length / 2);
  return [...split(events.slice(0, half), limit), ...split(events.slice(half), limit)];
}
