/**
 * PostgreSQL refuses NUL in text and jsonb (`\u0000 cannot be converted to text`) and refuses
 * invalid UTF-16 (lone surrogates) when encoding to UTF-8. One such character must not cost a
 * node its whole batch, so both become U+FFFD, the Unicode replacement character.
 */

const REPLACEMENT = '\uFFFD';
// With the `u` flag a string is read by code points, so \p{Cs} matches only *lone* surrogates:
// a well-formed pair is one astral code point and is left alone.
const UNSTORABLE_RE = /[\0\p{Cs}]/u;
const UNSTORABLE_GLOBAL_RE = /[\0\p{Cs}]/gu;
// JSON.stringify writes NUL as \u0000 and lone surrogates as \udXXX (XXX from 800 to fff); it
// never writes them raw. Case-insensitive, so text from other JSON writers is judged right too.
const ESCAPE_RE = /\\u(?:0000|d[89a-f])/i;

/**
 * True when JSON text may hold a NUL or a lone surrogate. The text must write them only as `\u`
 * escapes, as JSON.stringify does (and as any valid JSON decoded from UTF-8 must: raw NUL is not
 * valid JSON, raw lone surrogates cannot come out of UTF-8). May say true for text that merely
 * looks like one (an escaped backslash followed by "u0000"); never says false for text that
 * holds one.
 */
export function needsRepair(json: string): boolean {
  // Almost every message has no `\u` escape at all; indexOf is far cheaper than the regex.
  return json.includes('\\u') && ESCAPE_RE.test(json);
}

/** `s` with every NUL and lone surrogate replaced by U+FFFD; `s` itself when it has none. */
export function storableString(s: string): string {
  return UNSTORABLE_RE.test(s) ? s.replace(UNSTORABLE_GLOBAL_RE, REPLACEMENT) : s;
}

/**
 * A deep copy of a JSON value with every string, object key included, made storable.
 * Recursive: callers bound the depth first (normalize rejects messages over `maxJsonDepth`).
 * If two keys become equal after repair, the later one wins, as JSON.parse does for duplicates.
 */
export function repairValue(value: unknown): unknown {
  if (typeof value === 'string') return storableString(value);
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const out: unknown[] = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = repairValue(value[i]);
    return out;
  }
  const source = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key in source) {
    if (!Object.hasOwn(source, key)) continue;
    setOwn(out, storableString(key), repairValue(source[key]));
  }
  return out;
}

/**
 * `out[key] = value`, except that a "__proto__" key (which JSON.parse makes an ordinary own
 * property) must stay data: plain assignment would replace the copy's prototype instead.
 */
export function setOwn(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    out[key] = value;
  }
}

/**
 * The first `max` UTF-16 units of `s`, one fewer when the cut would split a surrogate pair
 * (a half pair would be a lone surrogate, which storage refuses).
 */
export function capString(s: string, max: number): string {
  if (s.length <= max) return s;
  const last = s.charCodeAt(max - 1);
  return s.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}
