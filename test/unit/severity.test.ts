import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normalizeSeverity } from '../../src/pipeline/severity.js';

describe('normalizeSeverity', () => {
  const cases: Array<[unknown, string | null]> = [
    // syslog numbers, as numbers and as text
    [0, 'emerg'],
    [1, 'alert'],
    [2, 'crit'],
    [3, 'err'],
    [4, 'warning'],
    [5, 'notice'],
    [6, 'info'],
    [7, 'debug'],
    ['0', 'emerg'],
    ['3', 'err'],
    [' 7 ', 'debug'],
    // numbers that are no syslog severity
    [8, null],
    [-1, null],
    [3.5, null],
    [NaN, null],
    [Infinity, null],
    // canonical words and aliases, any case, trimmed
    ['emerg', 'emerg'],
    ['EMERGENCY', 'emerg'],
    ['panic', 'emerg'],
    ['alert', 'alert'],
    ['crit', 'crit'],
    ['Critical', 'crit'], // the EdgeBot syslog sample's word
    ['fatal', 'crit'],
    ['err', 'err'],
    ['error', 'err'],
    ['  ERROR\n', 'err'],
    ['warning', 'warning'],
    ['warn', 'warning'],
    ['WARN', 'warning'],
    ['notice', 'notice'],
    ['info', 'info'],
    ['INFO', 'info'],
    ['informational', 'info'],
    ['information', 'info'],
    ['debug', 'debug'],
    // other words are kept, lower-cased
    ['unknown', 'unknown'], // the EdgeBot unparsed-syslog sample's word
    ['Trace', 'trace'],
    ['8', '8'],
    ['03', '03'],
    // capped at 64 characters
    ['X'.repeat(100), 'x'.repeat(64)],
    // made storable
    ['bad\u0000level', 'bad\uFFFDlevel'],
    // nothing to say
    ['', null],
    ['   ', null],
    [null, null],
    [undefined, null],
    [true, null],
    [{ level: 'info' }, null],
    [['info'], null],
  ];
  for (const [input, expected] of cases) {
    const label = typeof input === 'string' ? JSON.stringify(input.length > 20 ? `${input.slice(0, 20)}…` : input) : String(input);
    test(`${typeof input} ${label} → ${String(expected)}`, () => assert.equal(normalizeSeverity(input), expected));
  }

  test('a cap never leaves half a surrogate pair', () => {
    const s = `${'a'.repeat(63)}😀tail`;
    assert.equal(normalizeSeverity(s), 'a'.repeat(63));
  });
});
