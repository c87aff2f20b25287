import type { ErrorCode } from '../../lib/errors.js';
import { parseLabelSet } from './label-text.js';

/**
 * Reads Loki's 400 answer to a push: which entries did it refuse? Loki stores the valid entries
 * of a push and answers 400 with one problem per refused entry (or stream), in one of two shapes:
 *
 * - Distributor validation (pkg/distributor/validator.go), problems grouped by identical text and
 *   joined with "; ", each prefixed by "N errors like: " when there are several:
 *     entry for stream '{a="b"}' has timestamp too old: 2024-01-15T08:15:23Z, oldest acceptable timestamp is: …
 *     entry for stream '{a="b"}' has timestamp too new: 2024-01-15T08:15:23Z
 *     Max entry size '262144' bytes exceeded for stream '{a="b"}' while adding an entry with length '300000' bytes
 *     entry for stream '{a="b"}' has 16 label names; limit 15          (and other label problems: whole stream)
 *   Times there are RFC 3339 to the second (in Loki's time zone).
 * - Ingester (pkg/ingester/stream.go), for one stream, at most 10 entries listed:
 *     entry with timestamp 2024-01-15 08:15:23.123456789 +0000 UTC ignored, reason: 'entry too far behind, …',
 *     user 'tenant', total ignored: 3 out of 5 for stream: {a="b"}
 *
 * Stream label sets are matched as sets (Loki 3 may have added `service_name`). The answer is
 * exact or nothing: every problem must match exactly as many sent entries as it counts, else the
 * result is null and the caller treats the whole push as refused (and narrows it down by splitting).
 */
export interface SentEntry {
  readonly position: number;
  readonly timeMs: number;
  readonly timeNanos: number;
  readonly lineBytes: number;
  readonly hasMetadata: boolean;
}

export interface SentStream {
  readonly labelsText: string;
  readonly labels: ReadonlyMap<string, string>;
  readonly entries: readonly SentEntry[];
}

export interface EntryRejection {
  readonly position: number;
  readonly code: ErrorCode;
  /** Loki's own words for this entry's problem. */
  readonly reason: string;
}

export function mapRejections(body: string, streams: readonly SentStream[]): EntryRejection[] | null {
  const text = body.trim();
  if (text === '') return null;
  if (INGESTER_SUMMARY_RE.test(text)) return mapIngesterAnswer(text, streams);
  const problems = parseDistributorAnswer(text);
  if (problems === null) return null;
  const claimed = new Set<number>();
  const out: EntryRejection[] = [];
  for (const p of problems) {
    const ref = p.stream;
    const stream = ref.kind === 'set' ? findStream(streams, ref.labels) : (streams.find((s) => s.labelsText === ref.text) ?? null);
    if (stream === null) return null;
    const open = stream.entries.filter((e) => !claimed.has(e.position));
    const scope = p.scope;
    const hit =
      scope.kind === 'second'
        ? open.filter((e) => Math.floor(e.timeMs / 1000) === scope.second)
        : scope.kind === 'length'
          ? open.filter((e) => e.lineBytes === scope.length)
          : scope.kind === 'metadata'
            ? open.filter((e) => e.hasMetadata)
            : open;
    if (scope.kind === 'stream' ? hit.length === 0 : hit.length !== p.count) return null;
    for (const e of hit) {
      claimed.add(e.position);
      out.push({ position: e.position, code: p.code, reason: p.text });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Ingester shape

const INGESTER_SUMMARY_RE = /(?:^|\n)user '.*', total ignored: \d+ out of \d+ for stream: \{.*$/;
const INGESTER_LINE_RE = /^entry with timestamp (.+?) ignored, reason: '(.*)',$/;
const INGESTER_LAST_RE = /^user '.*', total ignored: (\d+) out of (\d+) for stream: (\{.*)$/;

function mapIngesterAnswer(text: string, streams: readonly SentStream[]): EntryRejection[] | null {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const last = INGESTER_LAST_RE.exec(lines[lines.length - 1] ?? '');
  if (last === null) return null;
  const ignored = Number(last[1]);
  const set = parseLabelSet(last[3] as string);
  if (set === null) return null;
  const stream = findStream(streams, set.labels);
  if (stream === null) return null;
  const listed = lines.slice(0, -1);
  // Loki lists at most 10 entries (ingester max_returned_stream_errors): the rest cannot be named.
  if (listed.length !== ignored) return null;
  const byTime = new Map<string, { reason: string; count: number }>();
  for (const line of listed) {
    const m = INGESTER_LINE_RE.exec(line);
    if (m === null) return null;
    const time = parseGoTime(m[1] as string);
    if (time === null) return null;
    const key = `${time.ms}.${time.nanos}`;
    const known = byTime.get(key);
    byTime.set(key, { reason: m[2] as string, count: (known?.count ?? 0) + 1 });
  }
  const out: EntryRejection[] = [];
  for (const [key, { reason, count }] of byTime) {
    const hit = stream.entries.filter((e) => `${e.timeMs}.${e.timeNanos}` === key);
    if (hit.length !== count) return null;
    const code: ErrorCode = /too far behind|out of order/i.test(reason) ? 'loki_entry_out_of_order' : 'loki_rejected';
    for (const e of hit) out.push({ position: e.position, code, reason: `${reason} (stream ${stream.labelsText})` });
  }
  return out;
}

/** Go's `time.Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST` (fraction optional). */
const GO_TIME_RE = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? ([+-])(\d{2})(\d{2})(?: [^ ]+)?(?: m=[+-][\d.]+)?$/;

export function parseGoTime(text: string): { ms: number; nanos: number } | null {
  const m = GO_TIME_RE.exec(text.trim());
  if (m === null) return null;
  const offsetSeconds = (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 3600 + Number(m[10]) * 60);
  const seconds = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) / 1000 - offsetSeconds;
  const ns = Number(((m[7] ?? '') + '000000000').slice(0, 9));
  return { ms: seconds * 1000 + Math.floor(ns / 1_000_000), nanos: ns % 1_000_000 };
}

// ---------------------------------------------------------------------------------------------
// Distributor shape

type StreamRef = { readonly kind: 'set'; readonly labels: ReadonlyMap<string, string> } | { readonly kind: 'text'; readonly text: string };
type Scope =
  | { readonly kind: 'second'; readonly second: number }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'metadata' }
  | { readonly kind: 'stream' };

interface Problem {
  readonly count: number;
  readonly stream: StreamRef;
  readonly scope: Scope;
  readonly code: ErrorCode;
  readonly text: string;
}

const COUNT_RE = /(\d+) errors like: /y;
const RFC3339_RE = /(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})/y;

/** The problems of a distributor answer, or null when any part of it is not a known problem. */
function parseDistributorAnswer(text: string): Problem[] | null {
  const problems: Problem[] = [];
  let pos = 0;
  while (pos < text.length) {
    COUNT_RE.lastIndex = pos;
    const counted = COUNT_RE.exec(text);
    const count = counted === null ? 1 : Number(counted[1]);
    if (counted !== null) pos = COUNT_RE.lastIndex;
    const parsed = parseProblem(text, pos);
    if (parsed === null) return null;
    problems.push({ ...parsed.problem, count, text: text.slice(pos, parsed.end) });
    pos = parsed.end;
    if (pos === text.length) break;
    if (!text.startsWith('; ', pos)) return null;
    pos += 2;
  }
  return problems;
}

type Parsed = { problem: Omit<Problem, 'count' | 'text'>; end: number };

function parseProblem(text: string, pos: number): Parsed | null {
  if (text.startsWith("entry for stream '", pos)) {
    const set = labelSetAt(text, pos + "entry for stream '".length);
    if (set === null) return null;
    let at = set.end;
    if (text.startsWith("' has timestamp too old: ", at)) {
      const time = rfc3339At(text, at + "' has timestamp too old: ".length);
      if (time === null || !text.startsWith(', oldest acceptable timestamp is: ', time.end)) return null;
      const cutoff = rfc3339At(text, time.end + ', oldest acceptable timestamp is: '.length);
      if (cutoff === null) return null;
      return { problem: { stream: set.ref, scope: { kind: 'second', second: time.second }, code: 'loki_entry_too_old' }, end: cutoff.end };
    }
    if (text.startsWith("' has timestamp too new: ", at)) {
      const time = rfc3339At(text, at + "' has timestamp too new: ".length);
      if (time === null) return null;
      return { problem: { stream: set.ref, scope: { kind: 'second', second: time.second }, code: 'loki_entry_too_new' }, end: time.end };
    }
    const names = /' has \d+ label names; limit \d+/y;
    names.lastIndex = at;
    if (names.exec(text) !== null) {
      at = names.lastIndex;
      return { problem: { stream: set.ref, scope: { kind: 'stream' }, code: 'loki_invalid_labels' }, end: at };
    }
    return null;
  }
  const size = /Max entry size '\d+' bytes exceeded for stream '/y;
  size.lastIndex = pos;
  if (size.exec(text) !== null) {
    const set = labelSetAt(text, size.lastIndex);
    if (set === null) return null;
    const length = /' while adding an entry with length '(\d+)' bytes/y;
    length.lastIndex = set.end;
    const m = length.exec(text);
    if (m === null) return null;
    return { problem: { stream: set.ref, scope: { kind: 'length', length: Number(m[1]) }, code: 'loki_line_too_long' }, end: length.lastIndex };
  }
  if (text.startsWith("stream '", pos)) {
    const set = labelSetAt(text, pos + "stream '".length);
    if (set === null) return null;
    const at = set.end;
    for (const tail of ["' has label name too long: '", "' has label value too long: '", "' has duplicate label name: '"]) {
      if (text.startsWith(tail, at)) {
        const end = quotedTailEnd(text, at + tail.length);
        return end === null ? null : { problem: { stream: set.ref, scope: { kind: 'stream' }, code: 'loki_invalid_labels' }, end };
      }
    }
    const metadata = /' (?:includes structured metadata, but this feature is disallowed\.|has structured metadata too large: '\d+' bytes, limit: '\d+' bytes\.|has too many structured metadata labels: '\d+', limit: '\d+'\.)/y;
    metadata.lastIndex = at;
    if (metadata.exec(text) !== null) {
      // "… Please see `limits_config.…` or contact your Loki administrator to (enable it|increase it)."
      const rest = /[^;]*?(?:enable it|increase it)\./y;
      rest.lastIndex = metadata.lastIndex;
      const end = rest.exec(text) === null ? metadata.lastIndex : rest.lastIndex;
      return { problem: { stream: set.ref, scope: { kind: 'metadata' }, code: 'loki_structured_metadata' }, end };
    }
    return null;
  }
  if (text.startsWith("Error parsing labels '", pos)) {
    const start = pos + "Error parsing labels '".length;
    const sep = text.indexOf("' with error: ", start);
    if (sep < 0) return null;
    const next = text.indexOf('; ', sep);
    const end = next < 0 ? text.length : next;
    return { problem: { stream: { kind: 'text', text: text.slice(start, sep) }, scope: { kind: 'stream' }, code: 'loki_invalid_labels' }, end };
  }
  return null;
}

function labelSetAt(text: string, pos: number): { ref: StreamRef; end: number } | null {
  const set = parseLabelSet(text, pos);
  return set === null ? null : { ref: { kind: 'set', labels: set.labels }, end: set.end };
}

function rfc3339At(text: string, pos: number): { second: number; end: number } | null {
  RFC3339_RE.lastIndex = pos;
  const m = RFC3339_RE.exec(text);
  if (m === null) return null;
  const zone = m[7] as string;
  const offset = zone === 'Z' ? 0 : (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 3600 + Number(zone.slice(4, 6)) * 60);
  const second = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) / 1000 - offset;
  return { second, end: RFC3339_RE.lastIndex };
}

/** End of a `'…'` value at the end of a problem: the first `'` followed by the end or by "; ". */
function quotedTailEnd(text: string, from: number): number | null {
  for (let i = text.indexOf("'", from); i >= 0; i = text.indexOf("'", i + 1)) {
    if (i + 1 === text.length || text.startsWith('; ', i + 1)) return i + 1;
  }
  return null;
}

/**
 * The sent stream whose labels are all in `reported` (Loki may add some, e.g. service_name);
 * the most specific one wins. Null when none fits, or two fit equally well.
 */
export function findStream(streams: readonly SentStream[], reported: ReadonlyMap<string, string>): SentStream | null {
  let best: SentStream | null = null;
  let bestSize = -1;
  let tie = false;
  for (const s of streams) {
    let fits = s.labels.size <= reported.size;
    for (const [name, value] of s.labels) {
      if (!fits) break;
      fits = reported.get(name) === value;
    }
    if (!fits) continue;
    if (s.labels.size > bestSize) {
      best = s;
      bestSize = s.labels.size;
      tie = false;
    } else if (s.labels.size === bestSize) {
      tie = true;
    }
  }
  return tie ? null : best;
}
