import type { IngestEvent } from '../pipeline/event.js';

/**
 * The payload of a spool record: the events of one accepted batch, as compact JSON.
 * `data` is embedded from the event's precomputed `dataJson`, so encoding costs one string
 * concatenation per event and the message is never serialized twice. Decoding (only when a
 * sink replays from disk) parses it back and re-derives `dataJson`.
 *
 *   [version, [[id, timeMs, timeNanos, receivedAtMs, source, type, service, host, severity, message, data], …]]
 */
const VERSION = 1;

export function encodeEvents(events: readonly IngestEvent[]): Buffer {
  let out = `[${VERSION},[`;
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as IngestEvent;
    if (i > 0) out += ',';
    out += `[${JSON.stringify(e.id)},${e.timeMs},${e.timeNanos},${e.receivedAtMs},${str(e.source)},${str(e.type)},${str(e.service)},${str(e.host)},${str(e.severity)},${str(e.message)},${e.dataJson}]`;
  }
  out += ']]';
  return Buffer.from(out, 'utf8');
}

function str(value: string | null): string {
  return value === null ? 'null' : JSON.stringify(value);
}

export class RecordDecodeError extends Error {
  override readonly name = 'RecordDecodeError';
}

export function decodeEvents(payload: Buffer): IngestEvent[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new RecordDecodeError(`record payload is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed) || parsed[0] !== VERSION || !Array.isArray(parsed[1])) {
    throw new RecordDecodeError('record payload has an unknown layout');
  }
  const rows = parsed[1] as unknown[];
  const events: IngestEvent[] = new Array<IngestEvent>(rows.length);
  for (let i = 0; i < rows.length; i++) events[i] = toEvent(rows[i]);
  return events;
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
