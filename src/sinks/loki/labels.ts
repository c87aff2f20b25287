import type { IngestEvent } from '../../pipeline/event.js';
import { MAX_LABELS_PER_STREAM, toLabelName } from './label-name.js';
import { formatLabels, sortPairs, type LabelPairs } from './label-text.js';

/** Loki refuses values over 2048 bytes by default; a label value this long is never useful anyway. */
export const MAX_LABEL_VALUE_BYTES = 256;
/** The `source` value of events whose batch named no node. */
export const UNKNOWN_SOURCE = 'unknown';

const CONTROL_RUN_RE = /[\u0000-\u001f\u007f-\u009f]+/g;

/**
 * A label value Loki stores as sent: well-formed UTF-8 (lone surrogates become U+FFFD), no
 * control characters (a run of them becomes one space), trimmed, at most `maxBytes` UTF-8
 * bytes (cut on a character boundary). May be empty: the caller then drops the label.
 */
export function sanitizeLabelValue(raw: string, maxBytes = MAX_LABEL_VALUE_BYTES): string {
  let value = raw;
  if (/[\ud800-\udfff]/.test(value)) value = Buffer.from(value, 'utf8').toString('utf8');
  value = value.replace(CONTROL_RUN_RE, ' ').trim();
  return capUtf8(value, maxBytes);
}

/** `text` cut to at most `maxBytes` UTF-8 bytes, never inside a character. */
export function capUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

export interface LabelPolicyOptions {
  /** Event fields that become labels, in priority order (LOKI_LABELS). */
  readonly fields: readonly string[];
  /** LOKI_STATIC_LABELS. */
  readonly staticLabels: Readonly<Record<string, string>>;
  /** Distinct values each label may take (LOKI_MAX_LABEL_VALUES); `source` is exempt. */
  readonly maxValuesPerLabel: number;
}

export interface StreamLabels {
  /** Sorted by name. */
  readonly pairs: LabelPairs;
  /** `{a="1", b="2"}`: the stream's identity in a push. */
  readonly text: string;
  /** Data keys whose exact value a label carries: the JSON line leaves them out. */
  readonly carried: ReadonlySet<string>;
}

export interface LabelBudgetEvent {
  readonly label: string;
  /** How many distinct values the label has (the budget). */
  readonly limit: number;
}

/** The five fields the normalizer promotes onto IngestEvent. */
const PROMOTED = new Set(['source', 'type', 'service', 'host', 'severity']);

/**
 * Turns events into stream labels: `source` first (always present, so two edge nodes never
 * share a stream), then the static labels, then the allow-listed fields. Each label may take
 * `maxValuesPerLabel` distinct values since start-up; a value past that budget is not made a
 * label (it stays in the line), is counted, and the first time per label `onOverBudget` fires.
 *
 * `source` is exempt from the budget: its values are bounded by the size of the fleet, and
 * dropping it would merge nodes' streams. Past the budget it is still a label; `onOverBudget`
 * fires once so an operator hears about a fleet (or a misbehaving client) larger than expected.
 */
export class LabelPolicy {
  /** Values refused per label (over budget), for metrics. */
  readonly overBudget = new Map<string, number>();
  private readonly fields: ReadonlyArray<{ readonly field: string; readonly name: string }>;
  private readonly staticPairs: ReadonlyArray<readonly [string, string]>;
  private readonly seen = new Map<string, Set<string>>();
  private readonly warned = new Set<string>();
  private readonly cache = new Map<string, StreamLabels>();

  constructor(
    private readonly options: LabelPolicyOptions,
    private readonly onOverBudget: (event: LabelBudgetEvent) => void = () => undefined,
  ) {
    const used = new Set<string>(['source']);
    const staticPairs: Array<readonly [string, string]> = [];
    for (const [name, raw] of Object.entries(options.staticLabels)) {
      const value = sanitizeLabelValue(raw);
      if (value.length === 0 || used.has(name)) continue;
      used.add(name);
      staticPairs.push([name, value]);
    }
    this.staticPairs = staticPairs;
    const fields: Array<{ field: string; name: string }> = [];
    for (const field of options.fields) {
      const name = toLabelName(field);
      if (name === null || used.has(name)) continue;
      used.add(name);
      fields.push({ field, name });
    }
    const room = MAX_LABELS_PER_STREAM - 1 - this.staticPairs.length;
    this.fields = fields.slice(0, Math.max(0, room));
  }

  /** Distinct values currently labelled, per label (for describe/metrics). */
  distinctValues(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, values] of this.seen) out[name] = values.size;
    return out;
  }

  labelsFor(event: IngestEvent): StreamLabels {
    const pairs: Array<readonly [string, string]> = [];
    const carried: string[] = [];
    const source = sanitizeLabelValue(event.source ?? '') || UNKNOWN_SOURCE;
    this.trackSource(source);
    pairs.push(['source', source]);
    if (typeof event.data['source'] === 'string' && event.data['source'] === source) carried.push('source');
    for (const pair of this.staticPairs) pairs.push(pair);
    for (const { field, name } of this.fields) {
      const raw = fieldValue(event, field);
      if (raw === null) continue;
      const value = sanitizeLabelValue(raw);
      if (value.length === 0 || !this.admit(name, value)) continue;
      pairs.push([name, value]);
      if (event.data[field] === value) carried.push(field);
    }
    const sorted = sortPairs(pairs);
    const text = formatLabels(sorted);
    // Streams repeat across events: share one object per label set (and per carried set).
    const key = carried.length === 0 ? text : `${text}\u0000${carried.join('\u0000')}`;
    const known = this.cache.get(key);
    if (known !== undefined) return known;
    const labels: StreamLabels = { pairs: sorted, text, carried: new Set(carried) };
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(key, labels);
    return labels;
  }

  private admit(name: string, value: string): boolean {
    let values = this.seen.get(name);
    if (values === undefined) {
      values = new Set();
      this.seen.set(name, values);
    }
    if (values.has(value)) return true;
    if (values.size < this.options.maxValuesPerLabel) {
      values.add(value);
      return true;
    }
    this.overBudget.set(name, (this.overBudget.get(name) ?? 0) + 1);
    if (!this.warned.has(name)) {
      this.warned.add(name);
      this.onOverBudget({ label: name, limit: this.options.maxValuesPerLabel });
    }
    return false;
  }

  private trackSource(source: string): void {
    let values = this.seen.get('source');
    if (values === undefined) {
      values = new Set();
      this.seen.set('source', values);
    }
    if (values.has(source) || values.size > this.options.maxValuesPerLabel) return;
    values.add(source);
    if (values.size > this.options.maxValuesPerLabel && !this.warned.has('source')) {
      this.warned.add('source');
      this.onOverBudget({ label: 'source', limit: this.options.maxValuesPerLabel });
    }
  }
}

/** A field's value as label text: promoted fields first, then top-level scalars of the message. */
export function fieldValue(event: IngestEvent, field: string): string | null {
  if (PROMOTED.has(field)) {
    const promoted = event[field as 'source' | 'type' | 'service' | 'host' | 'severity'];
    if (promoted !== null) return promoted;
  }
  const raw = Object.hasOwn(event.data, field) ? event.data[field] : undefined;
  switch (typeof raw) {
    case 'string':
      return raw;
    case 'number':
    case 'boolean':
      return String(raw);
    default:
      return null;
  }
}
