/**
 * The text form of a label set, as Loki reads it in a protobuf push (`StreamAdapter.labels`)
 * and writes it back in its error messages: `{host="edge-01", source="ship-7"}` — names sorted,
 * `, ` between pairs, values in Go string syntax.
 */

export type LabelPairs = ReadonlyArray<readonly [string, string]>;

/** Pairs sorted by name (byte order, as Prometheus sorts them). */
export function sortPairs(pairs: LabelPairs): Array<readonly [string, string]> {
  return [...pairs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/**
 * `{a="1", b="2"}` from pairs already sorted. JSON string syntax is a subset of Go's
 * (`\"`, `\\`, `\n`, `\u00XX`…), so Loki unquotes it to the same value.
 */
export function formatLabels(sorted: LabelPairs): string {
  let text = '{';
  for (let i = 0; i < sorted.length; i++) {
    const pair = sorted[i] as readonly [string, string];
    if (i > 0) text += ', ';
    text += pair[0] + '=' + JSON.stringify(pair[1]);
  }
  return text + '}';
}

export interface ParsedLabelSet {
  readonly labels: Map<string, string>;
  /** Index just past the closing `}`. */
  readonly end: number;
}

const NAME_START = /[a-zA-Z_]/;
const NAME_PART = /[a-zA-Z0-9_]/;

/**
 * Reads a label set starting at `start` (which must be `{`): plain or quoted names, Go-quoted
 * values (every escape Go's strconv.Unquote knows, including `\xNN` bytes). Null when the
 * text there is not a label set.
 */
export function parseLabelSet(text: string, start = 0): ParsedLabelSet | null {
  if (text.charAt(start) !== '{') return null;
  const labels = new Map<string, string>();
  let i = skipSpaces(text, start + 1);
  if (text.charAt(i) === '}') return { labels, end: i + 1 };
  for (;;) {
    let name: string;
    if (text.charAt(i) === '"') {
      const quoted = readQuoted(text, i);
      if (quoted === null) return null;
      name = quoted.value;
      i = quoted.end;
    } else {
      if (!NAME_START.test(text.charAt(i))) return null;
      const from = i;
      while (i < text.length && NAME_PART.test(text.charAt(i))) i++;
      name = text.slice(from, i);
    }
    i = skipSpaces(text, i);
    if (text.charAt(i) !== '=') return null;
    i = skipSpaces(text, i + 1);
    const value = readQuoted(text, i);
    if (value === null) return null;
    labels.set(name, value.value);
    i = skipSpaces(text, value.end);
    const c = text.charAt(i);
    if (c === '}') return { labels, end: i + 1 };
    if (c !== ',') return null;
    i = skipSpaces(text, i + 1);
  }
}

function skipSpaces(text: string, i: number): number {
  while (i < text.length && (text.charAt(i) === ' ' || text.charAt(i) === '\t')) i++;
  return i;
}

const SIMPLE_ESCAPES: Readonly<Record<string, number>> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34, "'": 39 };
const utf8 = new TextEncoder();
const decoder = new TextDecoder();

/** A Go double-quoted string at `start`; bytes are gathered so `\xNN` sequences decode as UTF-8. */
function readQuoted(text: string, start: number): { value: string; end: number } | null {
  if (text.charAt(start) !== '"') return null;
  const bytes: number[] = [];
  let i = start + 1;
  while (i < text.length) {
    const c = text.charAt(i);
    if (c === '"') return { value: decoder.decode(Uint8Array.from(bytes)), end: i + 1 };
    if (c !== '\\') {
      const cp = text.codePointAt(i) as number;
      const width = cp > 0xffff ? 2 : 1;
      for (const b of utf8.encode(text.slice(i, i + width))) bytes.push(b);
      i += width;
      continue;
    }
    const e = text.charAt(i + 1);
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      bytes.push(simple);
      i += 2;
    } else if (e === 'x') {
      const hex = text.slice(i + 2, i + 4);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 4;
    } else if (e === 'u' || e === 'U') {
      const len = e === 'u' ? 4 : 8;
      const hex = text.slice(i + 2, i + 2 + len);
      if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) return null;
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff) return null;
      for (const b of utf8.encode(String.fromCodePoint(cp))) bytes.push(b);
      i += 2 + len;
    } else if (e >= '0' && e <= '7') {
      const oct = text.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(oct)) return null;
      bytes.push(parseInt(oct, 8) & 0xff);
      i += 4;
    } else {
      return null;
    }
  }
  return null;
}
