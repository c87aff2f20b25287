import type { IngestEvent } from '../../pipeline/event.js';
import { toLabelName } from './label-name.js';
import { capUtf8, fieldValue } from './labels.js';

/** Every truncated line ends with this, followed by the original size: `…[truncated by mothership, 300000 bytes]`. */
export const TRUNCATION_MARKER = '…[truncated by mothership, ';
/** The key of the event id in a JSON line. Top-level `_` keys never reach events (sanitizing drops them), so it cannot clash. */
export const ID_KEY = '_id';
/** Structured metadata values longer than this stay in the line instead (Loki caps metadata per entry). */
export const MAX_METADATA_VALUE_BYTES = 1024;

export interface LineOptions {
  readonly format: 'json' | 'message';
  readonly maxLineBytes: number;
  /** Event fields sent as structured metadata (LOKI_STRUCTURED_METADATA). */
  readonly structuredMetadata: readonly string[];
}

export interface EntryContent {
  readonly line: string;
  /** Structured metadata pairs (name, value); empty when none. */
  readonly metadata: ReadonlyArray<readonly [string, string]>;
  readonly truncated: boolean;
}

/**
 * The log line of one event, and its structured metadata.
 * - `json`: the event's message fields as sent (`dataJson`), minus the keys whose exact value a
 *   label or the structured metadata already carries, plus `_id` (the event id: two identical
 *   messages stay two entries, and a replayed event yields the very same line, which Loki's
 *   exact-duplicate rule then absorbs).
 * - `message`: the message text alone (`message`, else `raw_message`, else the JSON).
 * A line over `maxLineBytes` is cut and ends with TRUNCATION_MARKER.
 */
export function buildEntryContent(event: IngestEvent, carried: ReadonlySet<string>, options: LineOptions): EntryContent {
  let removed: Set<string> | null = carried.size > 0 ? new Set(carried) : null;
  const metadata: Array<readonly [string, string]> = [];
  for (const field of options.structuredMetadata) {
    const value = metadataValue(event, field);
    const name = toLabelName(field);
    if (value === null || name === null || Buffer.byteLength(value) > MAX_METADATA_VALUE_BYTES) continue;
    metadata.push([name, value]);
    if (carriesExactly(event, field, value)) (removed ??= new Set()).add(field);
  }
  const full = options.format === 'message' ? (event.message ?? event.dataJson) : jsonLine(event, removed);
  const line = truncateLine(full, options.maxLineBytes);
  return { line, metadata, truncated: line !== full };
}

function jsonLine(event: IngestEvent, removed: ReadonlySet<string> | null): string {
  let json = event.dataJson;
  if (removed !== null && [...removed].some((k) => Object.hasOwn(event.data, k))) {
    const rest: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(event.data)) if (!removed.has(key)) rest[key] = value;
    json = JSON.stringify(rest);
  }
  const id = `"${ID_KEY}":${JSON.stringify(event.id)}`;
  return json === '{}' ? `{${id}}` : `${json.slice(0, -1)},${id}}`;
}

/** Whether `value` says exactly what the message's own `field` says (then the line may drop it). */
function carriesExactly(event: IngestEvent, field: string, value: string): boolean {
  if (!Object.hasOwn(event.data, field)) return false;
  const raw = event.data[field];
  if (raw === null || raw === undefined) return false;
  if (typeof raw === 'string') return raw === value;
  return (typeof raw === 'object' ? JSON.stringify(raw) : String(raw)) === value;
}

function metadataValue(event: IngestEvent, field: string): string | null {
  const scalar = fieldValue(event, field);
  if (scalar !== null) return scalar.replace(/\u0000/g, '');
  const raw = Object.hasOwn(event.data, field) ? event.data[field] : undefined;
  if (raw === undefined || raw === null) return null;
  return JSON.stringify(raw);
}

/** `line` if it fits in `maxBytes` UTF-8 bytes; else its start and the marker, `maxBytes` at most in all. */
export function truncateLine(line: string, maxBytes: number): string {
  if (line.length * 3 <= maxBytes) return line;
  const total = Buffer.byteLength(line);
  if (total <= maxBytes) return line;
  const marker = `${TRUNCATION_MARKER}${total} bytes]`;
  return capUtf8(line, Math.max(0, maxBytes - Buffer.byteLength(marker))) + marker;
}
