import { copyText, parseCopyText, parseTime } from '../pipeline/copy-text.js';
import type { IngestEvent } from '../pipeline/event.js';

/*
 * The payload of a spool record: the events of one accepted batch.
 *
 * Version 2 (written): a header line, then the events as PostgreSQL COPY text rows (see
 * pipeline/copy-text.ts), so the tsdb sink sends the record's own bytes and no event is
 * serialized twice.
 *
 *   #2\n                      or   #2 [n0,n1,…]\n   when some event's time has nanoseconds below
 *   <COPY row>\n…                                    the microsecond (ni for event i, 0..999)
 *
 * Version 1 (read only, written by earlier releases, which may have left records in a spool):
 * compact JSON, `[1, [[id, timeMs, timeNanos, receivedAtMs, source, type, service, host,
 * severity, message, data], …]]`.
 */
const V2_TAG = '#2';
const NEWLINE = 0x0a;
const HASH = 0x23;

export function encodeEvents(events: readonly IngestEvent[]): Buffer {
  let subMicros: number[] | null = null;
  for (let i = 0; i < events.length; i++) {
    const sub = (events[i] as IngestEvent).timeNanos % 1000;
    if (sub === 0) continue;
    subMicros ??= new Array<number>(events.length).fill(0);
    subMicros[i] = sub;
  }
  const header = subMicros === null ? `${V2_TAG}\n` : `${V2_TAG} ${JSON.stringify(subMicros)}\n`;
  return Buffer.from(header + copyText(events), 'utf8');
}

/**
 * The events of a record whose payload is known to be whole: `events` when at hand, else
 * decoded from the payload if a sink ever asks.
 */
export function wholeRecordEvents(payload: Buffer, eventCount: number, receivedAtMs: number | null, events: readonly IngestEvent[] | null): RecordEvents {
  return { eventCount, events: events === null ? decodedOnFirstCall(payload) : () => events, copyText: recordCopyText(payload), receivedAtMs };
}

/** The COPY rows of a version 2 payload, without copying; null for a version 1 payload. */
export function recordCopyText(payload: Buffer): Buffer | null {
  if (payload[0] !== HASH) return null;
  const end = payload.indexOf(NEWLINE);
  return end < 0 ? null : payload.subarray(end + 1);
}

/** A record's events as the sinks see them; `events()` decodes on the first call only. */
export interface RecordEvents {
  readonly eventCount: number;
  events(): readonly IngestEvent[];
  /** The events as COPY rows (version 2), without copying. */
  readonly copyText: Buffer | null;
  /** When the record's batch was received, ms since the epoch; null for a record without events. */
  readonly receivedAtMs: number | null;
}

const TAB = 0x09;

/**
 * A payload read back from disk, checked but not decoded: its layout, its header and, for
 * version 2, that it holds `eventCount` rows; the time it was received comes from its first
 * row. Decoding every event of a record the PostgreSQL sink sends as bytes would cost more than
 * the rest of its delivery. Throws RecordDecodeError when the payload is not a record.
 */
export function recordEvents(payload: Buffer, eventCount: number): RecordEvents {
  if (payload[0] !== HASH) {
    // Version 1 (older releases): decoded at once, as it always was.
    const events = decodeV1(payload);
    return wholeRecordEvents(payload, events.length, events[0]?.receivedAtMs ?? null, events);
  }
  const rows = v2Rows(payload).rows;
  let count = 0;
  for (let at = rows.indexOf(NEWLINE); at >= 0; at = rows.indexOf(NEWLINE, at + 1)) count++;
  if (count !== eventCount || (rows.length > 0 && rows[rows.length - 1] !== NEWLINE)) {
    throw new RecordDecodeError(`record holds ${count} rows, its frame says ${eventCount}`);
  }
  return wholeRecordEvents(payload, eventCount, firstReceivedAtMs(rows), null);
}

/** The payload's events, decoded on the first call and kept: a retried send gets the same objects. */
function decodedOnFirstCall(payload: Buffer): () => readonly IngestEvent[] {
  let decoded: IngestEvent[] | null = null;
  return () => (decoded ??= decodeEvents(payload));
}

/** The received_at field (the second) of the first row, or null without rows. */
function firstReceivedAtMs(rows: Buffer): number | null {
  if (rows.length === 0) return null;
  const start = rows.indexOf(TAB) + 1;
  const end = start > 0 ? rows.indexOf(TAB, start) : -1;
  if (end < 0) throw new RecordDecodeError('record rows are unreadable: the first row has no received_at');
  try {
    return parseTime(rows.toString('latin1', start, end)).ms;
  } catch (err) {
    throw new RecordDecodeError(`record rows are unreadable: ${(err as Error).message}`);
  }
}

export class RecordDecodeError extends Error {
  override readonly name = 'RecordDecodeError';
}

export function decodeEvents(payload: Buffer): IngestEvent[] {
  return payload[0] === HASH ? decodeV2(payload) : decodeV1(payload);
}

function decodeV2(payload: Buffer): IngestEvent[] {
  const { rows, subMicros } = v2Rows(payload);
  try {
    return parseCopyText(rows.toString('utf8'), subMicros);
  } catch (err) {
    throw new RecordDecodeError(`record rows are unreadable: ${(err as Error).message}`);
  }
}

/** The header of a version 2 payload, checked, and its rows (without copying). */
function v2Rows(payload: Buffer): { rows: Buffer; subMicros: number[] | null } {
  const end = payload.indexOf(NEWLINE);
  const header = payload.toString('utf8', 0, end < 0 ? payload.length : end);
  if (end < 0 || (header !== V2_TAG && !header.startsWith(`${V2_TAG} `))) throw new RecordDecodeError('record payload has an unknown layout');
  let subMicros: number[] | null = null;
  if (header !== V2_TAG) {
    const parsed: unknown = parseJson(header.slice(V2_TAG.length + 1));
    if (!Array.isArray(parsed) || !parsed.every((n) => Number.isInteger(n) && n >= 0 && n < 1000)) throw new RecordDecodeError('record header has bad sub-microseconds');
    subMicros = parsed as number[];
  }
  return { rows: payload.subarray(end + 1), subMicros };
}

function decodeV1(payload: Buffer): IngestEvent[] {
  const parsed = parseJson(payload.toString('utf8'));
  if (!Array.isArray(parsed) || parsed[0] !== 1 || !Array.isArray(parsed[1])) {
    throw new RecordDecodeError('record payload has an unknown layout');
  }
  const rows = parsed[1] as unknown[];
  const events: IngestEvent[] = new Array<IngestEvent>(rows.length);
  for (let i = 0; i < rows.length; i++) events[i] = toEvent(rows[i]);
  return events;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RecordDecodeError(`record payload is not JSON: ${(err as Error).message}`);
  }
}

function toEvent(row: unknown): IngestEvent {
  if (!Array.isArray(row) || row.length !== 11) throw new RecordDecodeError('record event has an unknown layout');
  const [id, timeMs, timeNanos, receivedAtMs, source, type, service, host, severity, message, data] = row as unknown[];
  if (typeof id !== 'string' || typeof timeMs !== 'number' || typeof timeNanos !== 'number' || typeof receivedAtMs !== 'number') {
    throw new RecordDecodeError('record event has bad field types');
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new RecordDecodeError('record event data is not an object');
  return {
    id,
    timeMs,
    timeNanos,
    receivedAtMs,
    source: nullableString(source),
    type: nullableString(type),
    service: nullableString(service),
    host: nullableString(host),
    severity: nullableString(severity),
    message: nullableString(message),
    data: data as Record<string, unknown>,
    dataJson: JSON.stringify(data),
  };
}

function nullableString(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}
