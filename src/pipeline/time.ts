/**
 * Event time parsing. Runs once per message, so the common shapes (ISO 8601 text, epoch
 * numbers) are parsed by hand: Date.parse drops digits below the millisecond and reads
 * zone-less text as local time, which would make the stored time depend on the server's TZ.
 */

export interface EventTime {
  /** Whole milliseconds since the Unix epoch, UTC. */
  readonly ms: number;
  /** Nanoseconds within `ms`, 0..999_999. */
  readonly nanos: number;
}

// Loki stores time as int64 nanoseconds, so the last storable instant is
// 2262-04-11T23:47:16.854775807Z. Anything before the epoch is a clock that was never set.
const MAX_MS = 9_223_372_036_854;
const MAX_NANOS_AT_MAX_MS = 775_807;
const MAX_NS_TEXT = '9223372036854775807';

// The accepted shape: date, optional time (T, t or space), fraction of any length (digits past
// the 9th are dropped), optional zone (Z, ±HH, ±HHMM, ±HH:MM). A zone without a time is not ISO.
const ISO_RE = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/;
// Starts like an ISO date: such text is ours to judge; Date.parse would roll 2024-02-30 over to March.
const ISO_SHAPE_RE = /^\d{4}-\d/;
const DECIMAL_RE = /^[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
// Date.parse is only trusted when the zone is spelled out (Z, GMT, UTC, ±HHMM, RFC 2822 names;
// otherwise it picks local time) and a four-digit year is present (otherwise V8 invents 2001,
// as in syslog's "Oct 11 22:14:15").
const EXPLICIT_ZONE_RE = /(?:\d|\s)(?:Z|UT|GMT|UTC|[ECMP][SD]T|(?:GMT|UTC)?[+-]\d{2}:?\d{2})(?:\s*\([^)]*\))?$/i;
const FOUR_DIGIT_YEAR_RE = /(?:^|\D)\d{4}(?:\D|$)/;

const PAD9 = '000000000';

const ZERO = 48;
const NINE = 57;
const COLON = 58;
const DOT = 46;
const COMMA = 44;
const PLUS = 43;
const MINUS = 45;

export function parseEventTime(value: unknown): EventTime | null {
  switch (typeof value) {
    case 'number':
      return parseEpochNumber(value);
    case 'string':
      return parseTimeText(value);
    case 'bigint':
      return value < 0n ? null : parseDecimalEpoch(value.toString());
    default:
      return null;
  }
}

function parseTimeText(raw: string): EventTime | null {
  const text = raw.trim();
  if (text.length === 0) return null;
  if (ISO_SHAPE_RE.test(text)) return parseIso(text);
  if (DECIMAL_RE.test(text)) return parseDecimalEpoch(text);
  if (!EXPLICIT_ZONE_RE.test(text) || !FOUR_DIGIT_YEAR_RE.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? inRange(ms, 0) : null;
}

function parseIso(text: string): EventTime | null {
  // The regex checks the whole shape; the fields are then read by position, which costs far
  // less than a match array of eleven substrings and their Number() conversions.
  if (!ISO_RE.test(text)) return null;
  const year = digits2(text, 0) * 100 + digits2(text, 2);
  const month = digits2(text, 5);
  const day = digits2(text, 8);
  let hour = 0;
  let minute = 0;
  let second = 0;
  let nsOfSecond = 0;
  let offsetMinutes = 0;
  const end = text.length;
  if (end > 10) {
    hour = digits2(text, 11);
    minute = digits2(text, 14);
    let pos = 16;
    if (pos < end && text.charCodeAt(pos) === COLON) {
      second = digits2(text, pos + 1);
      pos += 3;
      const sep = pos < end ? text.charCodeAt(pos) : 0;
      if (sep === DOT || sep === COMMA) {
        pos++;
        let scale = 100_000_000;
        for (let c = text.charCodeAt(pos); c >= ZERO && c <= NINE; c = text.charCodeAt(++pos)) {
          nsOfSecond += (c - ZERO) * scale; // past the 9th digit scale is 0: truncated, never rounded
          scale = scale >= 10 ? scale / 10 : 0;
        }
      }
    }
    if (pos < end) {
      const zone = text.charCodeAt(pos);
      if (zone === PLUS || zone === MINUS) {
        const oh = digits2(text, pos + 1);
        pos += 3;
        if (pos < end && text.charCodeAt(pos) === COLON) pos++;
        const om = pos < end ? digits2(text, pos) : 0;
        if (oh > 23 || om > 59) return null;
        offsetMinutes = (zone === MINUS ? -1 : 1) * (oh * 60 + om);
      }
    }
  }
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;

  const ms =
    daysFromCivil(year, month, day) * 86_400_000 +
    ((hour * 60 + minute - offsetMinutes) * 60 + second) * 1000 +
    Math.floor(nsOfSecond / 1_000_000);
  return inRange(ms, nsOfSecond % 1_000_000);
}

/** The two-digit number at `i`; the caller's regex has already checked both are digits. */
function digits2(text: string, i: number): number {
  return (text.charCodeAt(i) - ZERO) * 10 + (text.charCodeAt(i + 1) - ZERO);
}

function parseEpochNumber(v: number): EventTime | null {
  if (!Number.isFinite(v) || v < 0) return null;
  // Integers that doubles hold exactly need no text round-trip.
  if (Number.isSafeInteger(v)) {
    if (v < 1e11) return inRange(v * 1000, 0);
    if (v < 1e14) return inRange(v, 0);
    if (v < 1e17) return inRange(Math.floor(v / 1000), (v % 1000) * 1000);
  }
  // String(v) is the shortest text that round-trips, so 1640995200.123456 keeps its µs.
  return parseDecimalEpoch(String(v));
}

/** Decimal text (sign, fraction, exponent) → epoch, unit chosen by magnitude, digits kept exactly. */
function parseDecimalEpoch(text: string): EventTime | null {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) return null;
  const unitExp = n < 1e11 ? 9 : n < 1e14 ? 6 : n < 1e17 ? 3 : 0; // s, ms, µs, ns → ns
  if (n * 10 ** unitExp >= 1e19) return null; // cheap reject before any string work
  const m = DECIMAL_RE.exec(text);
  if (m === null) return null;
  const intDigits = m[1] ?? '';
  const fracDigits = m[2] ?? '';
  if (intDigits.length === 0 && fracDigits.length === 0) return null;
  const exp = m[3] === undefined ? 0 : Number(m[3]);

  let digits = stripLeadingZeros(intDigits + fracDigits);
  if (digits.length === 0) return { ms: 0, nanos: 0 };
  const shift = exp - fracDigits.length + unitExp;
  if (shift > 0) {
    if (digits.length + shift > 19) return null;
    digits += '0'.repeat(shift);
  } else if (shift < 0) {
    // Truncate toward zero: the time is never rounded into the next nanosecond.
    digits = digits.length + shift > 0 ? digits.slice(0, digits.length + shift) : '0';
  }
  digits = stripLeadingZeros(digits);
  if (digits.length > 19 || (digits.length === 19 && digits > MAX_NS_TEXT)) return null;
  if (digits.length <= 6) return { ms: 0, nanos: Number(digits || '0') };
  return inRange(Number(digits.slice(0, -6)), Number(digits.slice(-6)));
}

function inRange(ms: number, nanos: number): EventTime | null {
  if (ms < 0 || ms > MAX_MS || (ms === MAX_MS && nanos > MAX_NANOS_AT_MAX_MS)) return null;
  return { ms, nanos };
}

function stripLeadingZeros(s: string): string {
  let i = 0;
  while (i < s.length && s.charCodeAt(i) === 48) i++;
  return i === 0 ? s : s.slice(i);
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm; no Date quirks for years < 100). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/**
 * `2025-08-22T17:11:27.880579Z`. PostgreSQL timestamptz keeps microseconds; the nanoseconds
 * below are truncated (not rounded) so the same event always yields the same text.
 * `ms` must be a time `parseEventTime` accepted.
 *
 * Runs twice per stored event (time and received_at), so the `YYYY-MM-DDTHH:MM:SS.` part,
 * which needs a Date, is cached per whole second in a small direct-mapped table: the events of a
 * batch share a few seconds, and received_at one. Only the 6 fraction digits are built per call.
 */
export function formatPgTimestamp(msTime: number, nanos: number): string {
  const ms = Math.floor(msTime); // whole ms, as Date would take them
  const second = Math.floor(ms / 1000);
  const slot = second & SECOND_SLOT_MASK;
  let prefix = secondPrefixes[slot];
  if (secondKeys[slot] !== second || prefix === undefined) {
    prefix = new Date(second * 1000).toISOString().slice(0, 20); // YYYY-MM-DDTHH:MM:SS. for years 1970..2262
    secondKeys[slot] = second;
    secondPrefixes[slot] = prefix;
  }
  const fraction = String((ms - second * 1000) * 1000 + Math.floor(nanos / 1000));
  return prefix + PAD6[fraction.length] + fraction + 'Z';
}

const SECOND_SLOTS = 64;
const SECOND_SLOT_MASK = SECOND_SLOTS - 1;
/** Second (since the epoch) each slot holds; NaN matches nothing. */
const secondKeys = new Float64Array(SECOND_SLOTS).fill(Number.NaN);
const secondPrefixes: Array<string | undefined> = new Array<string | undefined>(SECOND_SLOTS);
/** Zeros that pad a fraction of n digits (1..6) to 6. */
const PAD6: readonly string[] = ['', '00000', '0000', '000', '00', '0', ''];

/**
 * Nanoseconds since the epoch as decimal text (Loki's format). ms * 1e6 + nanos exceeds 2^53,
 * so the two exact integers are joined as text instead of added as doubles.
 */
export function formatEpochNanos(ms: number, nanos: number): string {
  if (ms === 0) return String(nanos);
  const n = String(nanos);
  return String(ms) + PAD9.slice(0, 6 - n.length) + n;
}
