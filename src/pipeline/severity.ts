import { capString, storableString } from './storable.js';

/**
 * Severity names are syslog's (RFC 5424 keywords), so a Grafana panel can group by one column
 * whether a node sent `3`, `"3"`, `"ERROR"` or `"err"`.
 */
const SYSLOG_NAMES: readonly string[] = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'];

const ALIASES: ReadonlyMap<string, string> = new Map([
  ['emerg', 'emerg'],
  ['emergency', 'emerg'],
  ['panic', 'emerg'],
  ['alert', 'alert'],
  ['crit', 'crit'],
  ['critical', 'crit'],
  ['fatal', 'crit'],
  ['err', 'err'],
  ['error', 'err'],
  ['warning', 'warning'],
  ['warn', 'warning'],
  ['notice', 'notice'],
  ['info', 'info'],
  ['informational', 'info'],
  ['information', 'info'],
  ['debug', 'debug'],
]);

const MAX_LENGTH = 64;
const SYSLOG_DIGIT_RE = /^[0-7]$/;

/**
 * - numbers 0–7 (or such a digit as text) → the syslog name; other numbers → null (no meaning);
 * - known words and aliases → the syslog name; other words → kept, lower-cased, trimmed, capped
 *   at 64 chars (e.g. "unknown", "trace"), so nothing a node says is lost;
 * - empty text and any other type → null.
 */
export function normalizeSeverity(value: unknown): string | null {
  if (typeof value === 'number') {
    return Number.isInteger(value) && value >= 0 && value <= 7 ? (SYSLOG_NAMES[value] ?? null) : null;
  }
  if (typeof value !== 'string') return null;
  const word = value.trim().toLowerCase();
  if (word.length === 0) return null;
  const known = ALIASES.get(word);
  if (known !== undefined) return known;
  if (SYSLOG_DIGIT_RE.test(word)) return SYSLOG_NAMES[Number(word)] ?? null;
  return storableString(capString(word, MAX_LENGTH));
}
