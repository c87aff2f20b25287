import type { LabelPairs } from './label-text.js';

/** One log entry ready to push. */
export interface LokiEntry {
  /** Position of its event in the array given to `send`. */
  readonly position: number;
  readonly labelsText: string;
  readonly labels: LabelPairs;
  /** Exact event time: whole ms since the epoch, and ns within that ms. */
  readonly timeMs: number;
  readonly timeNanos: number;
  readonly line: string;
  readonly metadata: ReadonlyArray<readonly [string, string]>;
  /** What the entry adds to a push, uncompressed: line, metadata, and a share of labels and framing. */
  readonly bytes: number;
}

/** Entries of one stream inside a push, oldest first. */
export interface StreamBatch {
  readonly labelsText: string;
  readonly labels: LabelPairs;
  readonly entries: readonly LokiEntry[];
}

const ENTRY_OVERHEAD_BYTES = 24;

export function entryBytes(labelsText: string, line: string, metadata: ReadonlyArray<readonly [string, string]>): number {
  let bytes = Buffer.byteLength(line) + ENTRY_OVERHEAD_BYTES + labelsText.length;
  for (const [name, value] of metadata) bytes += name.length + Buffer.byteLength(value) + 4;
  return bytes;
}

export function compareTime(a: LokiEntry, b: LokiEntry): number {
  return a.timeMs - b.timeMs || a.timeNanos - b.timeNanos;
}

/**
 * How far behind the newest entry of its stream Loki accepts an entry: half its max_chunk_age
 * (2 h by default), so one hour. An older one is refused as "entry too far behind".
 */
export const OUT_OF_ORDER_WINDOW_MS = 60 * 60 * 1000;

/**
 * Cuts entries into pushes of at most `maxEntries` entries and about `maxBytes` bytes (an
 * entry larger than that goes alone), each spanning less than `maxSpanMs`. Entries are ordered
 * by time first (stable), so one send walks each stream forward in time: Loki refuses entries
 * more than an hour behind the newest of their stream, and a send that spans hours must not
 * trip over its own order. The span bound keeps a push inside Loki's out-of-order window, so
 * that pushing its entries again (to learn the fate of those a 400 did not name) cannot make
 * Loki refuse an entry it stored the first time.
 */
export function planPushes(entries: readonly LokiEntry[], maxEntries: number, maxBytes: number, maxSpanMs = OUT_OF_ORDER_WINDOW_MS): LokiEntry[][] {
  const ordered = [...entries].sort(compareTime);
  const pushes: LokiEntry[][] = [];
  let current: LokiEntry[] = [];
  let bytes = 0;
  for (const entry of ordered) {
    const first = current[0];
    if (first !== undefined && (current.length >= maxEntries || bytes + entry.bytes > maxBytes || entry.timeMs - first.timeMs >= maxSpanMs)) {
      pushes.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += entry.bytes;
  }
  if (current.length > 0) pushes.push(current);
  return pushes;
}

/** One push's entries grouped by stream (first-seen order), each stream's entries oldest first. */
export function groupStreams(entries: readonly LokiEntry[]): StreamBatch[] {
  const streams = new Map<string, { labelsText: string; labels: LabelPairs; entries: LokiEntry[] }>();
  for (const entry of entries) {
    let stream = streams.get(entry.labelsText);
    if (stream === undefined) {
      stream = { labelsText: entry.labelsText, labels: entry.labels, entries: [] };
      streams.set(entry.labelsText, stream);
    }
    stream.entries.push(entry);
  }
  const out = [...streams.values()];
  for (const s of out) s.entries.sort(compareTime);
  return out;
}
