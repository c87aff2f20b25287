import type { IngestEvent } from './event.js';
import { formatPgTimestamp } from './time.js';

/*
 * Events as PostgreSQL COPY text rows: the tsdb sink's wire format, and the body of a spool
 * record, so an event is serialized once on its way in and its bytes go to PostgreSQL as they
 * were written to disk.
 *
 * One row per event, ending in "\n", fields in COPY_COLUMNS order, separated by "\t"; NULL is
 * `\N`; in text, backslash, tab, newline and carriage return are escaped as `\\`, `\t`, `\n`,
 * `\r` (https://www.postgresql.org/docs/current/sql-copy.html, "Text Format"). Times are
 * `YYYY-MM-DDTHH:MM:SS.ffffffZ`: microseconds, as timestamptz keeps them.
 */

/** Column order of every row, of the events table's COPY, and of its staging table. */
export const COPY_COLUMNS = 'time, received_at, source, type, service, host, severity, message, data, id';

const FIELDS = 10;
const SPECIAL = /[\\\t\n\r]/;
const SPECIAL_ALL = /[\\\t\n\r]/g;
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const ESCAPED_ALL = /\\(.)/g;
const UNESCAPES: Readonly<Record<string, string>> = { '\\': '\\', t: '\t', n: '\n', r: '\r' };

/** One field: `\N` for NULL; backslash, tab, newline and CR escaped. */
function copyField(value: string | null): string {
  if (value === null) return '\\N';
  if (!SPECIAL.test(value)) return value;
  return value.replace(SPECIAL_ALL, (c) => ESCAPES[c] ?? c);
}

/**
 * The data field: JSON.stringify output, which writes every control character as a `\u`
 * escape and adds no whitespace, so a backslash is the only character COPY needs escaped. A
 * memchr-like search instead of the regex: this is the longest field of every row.
 */
function copyJsonField(json: string): string {
  return json.includes('\\') ? json.replaceAll('\\', '\\\\') : json;
}

/**
 * One row (with its newline). `receivedAt` is `formatPgTimestamp(e.receivedAtMs, 0)`, passed in
 * because a batch shares it; by default it is formatted here.
 */
export function copyLine(e: IngestEvent, receivedAt: string = formatPgTimestamp(e.receivedAtMs, 0)): string {
  return (
    formatPgTimestamp(e.timeMs, e.timeNanos) + '\t' +
    receivedAt + '\t' +
    copyField(e.source) + '\t' +
    copyField(e.type) + '\t' +
    copyField(e.service) + '\t' +
    copyField(e.host) + '\t' +
    copyField(e.severity) + '\t' +
    copyField(e.message) + '\t' +
    copyJsonField(e.dataJson) + '\t' +
    copyField(e.id) + '\n'
  );
}

/** The rows of `events`, concatenated. */
export function copyText(events: readonly IngestEvent[]): string {
  let text = '';
  let receivedAtMs = Number.NaN;
  let receivedAt = '';
  for (const e of events) {
    if (e.receivedAtMs !== receivedAtMs) {
      receivedAtMs = e.receivedAtMs;
      receivedAt = formatPgTimestamp(receivedAtMs, 0);
    }
    text += copyLine(e, receivedAt);
  }
  return text;
}

export class CopyTextError extends Error {
  override readonly name = 'CopyTextError';
}

/**
 * The events of `text` (rows as `copyText` writes them). `subMicros[i]`, when given, holds the
 * nanoseconds of event i below the microsecond, which the row's time cannot carry. Throws
 * CopyTextError on a row it cannot read.
 */
export function parseCopyText(text: string, subMicros: readonly number[] | null): IngestEvent[] {
  const events: IngestEvent[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    events.push(parseRow(text.slice(start, end), subMicros?.[events.length] ?? 0));
    start = end + 1;
  }
  return events;
}

function parseRow(row: string, subMicro: number): IngestEvent {
  const f = row.split('\t');
  if (f.length !== FIELDS) throw new CopyTextError(`a row has ${f.length} fields, expected ${FIELDS}`);
  const [time, receivedAt, source, type, service, host, severity, message, data, id] = f.map(unescapeField);
  if (time == null || receivedAt == null || data == null || id == null) throw new CopyTextError('a row lacks time, received_at, data or id');
  const t = parseTime(time);
  const r = parseTime(receivedAt);
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch (err) {
    throw new CopyTextError(`a row's data is not JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CopyTextError("a row's data is not a JSON object");
  return {
    id,
    timeMs: t.ms,
    timeNanos: t.micros * 1000 + subMicro,
    receivedAtMs: r.ms,
    source: source ?? null,
    type: type ?? null,
    service: service ?? null,
    host: host ?? null,
    severity: severity ?? null,
    message: message ?? null,
    data: parsed as Record<string, unknown>,
    dataJson: data,
  };
}

function unescapeField(field: string): string | null {
  if (field === '\\N') return null;
  return field.includes('\\') ? field.replace(ESCAPED_ALL, (_, c: string) => UNESCAPES[c] ?? c) : field;
}

const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.(\d{3})(\d{3})Z$/;

/** `YYYY-MM-DDTHH:MM:SS.ffffffZ` → whole ms since the epoch + the microseconds within the ms. */
export function parseTime(text: string): { ms: number; micros: number } {
  const m = TIME_RE.exec(text);
  const ms = m === null ? Number.NaN : Date.parse(`${text.slice(0, 23)}Z`);
  if (m === null || !Number.isFinite(ms)) throw new CopyTextError(`a row's time "${text.slice(0, 40)}" is not a COPY time`);
  return { ms, micros: Number(m[2]) };
}
