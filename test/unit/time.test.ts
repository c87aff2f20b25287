import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { formatEpochNanos, formatPgTimestamp, parseEventTime } from '../../src/pipeline/time.js';

const T_2024_01_15_081523 = Date.UTC(2024, 0, 15, 8, 15, 23); // 1705306523000
const T_2024_01_15_081500 = Date.UTC(2024, 0, 15, 8, 15);
const DAY_MS = 86_400_000;

describe('parseEventTime: ISO 8601 / RFC 3339 text', () => {
  const cases: Array<[string, number, number]> = [
    ['2025-08-22T17:11:27.880579+00:00', 1755882687880, 579000], // EdgeBot's own shape
    ['2024-01-15T08:15:23Z', T_2024_01_15_081523, 0],
    ['2024-01-15t08:15:23z', T_2024_01_15_081523, 0],
    ['2024-01-15T08:15:23+00:00', T_2024_01_15_081523, 0],
    ['2024-01-15T08:15:23+0000', T_2024_01_15_081523, 0],
    ['2024-01-15T08:15:23-00:00', T_2024_01_15_081523, 0],
    ['2024-01-15T13:45:23+05:30', T_2024_01_15_081523, 0],
    ['2024-01-15T13:45:23+0530', T_2024_01_15_081523, 0],
    ['2024-01-15T03:15:23-05', T_2024_01_15_081523, 0],
    ['2024-01-15 08:15:23', T_2024_01_15_081523, 0], // space separator, zone-less = UTC
    ['2024-01-15T08:15:23', T_2024_01_15_081523, 0], // zone-less = UTC, not local time
    ['2024-01-15T08:15', T_2024_01_15_081500, 0],
    ['2024-01-15T08:15Z', T_2024_01_15_081500, 0],
    ['2024-01-15T13:45+05:30', T_2024_01_15_081500, 0],
    ['2024-01-15T08:15:23.5-00:00', T_2024_01_15_081523 + 500, 0],
    ['2024-01-15T09:15:23.000000001+01:00', T_2024_01_15_081523, 1],
    ['2024-01-15', Date.UTC(2024, 0, 15), 0],
    ['  2024-01-15T08:15:23Z  ', T_2024_01_15_081523, 0],
    ['2024-01-15T08:15:23.1Z', T_2024_01_15_081523 + 100, 0],
    ['2024-01-15T08:15:23.123Z', T_2024_01_15_081523 + 123, 0],
    ['2024-01-15T08:15:23.123456Z', T_2024_01_15_081523 + 123, 456000],
    ['2024-01-15T08:15:23.123456789Z', T_2024_01_15_081523 + 123, 456789],
    ['2024-01-15T08:15:23.1234567899999Z', T_2024_01_15_081523 + 123, 456789], // past 9 digits: truncated
    ['2024-01-15T08:15:23,5Z', T_2024_01_15_081523 + 500, 0],
    ['2024-02-29T00:00:00Z', Date.UTC(2024, 1, 29), 0], // leap year
    ['2000-02-29T00:00:00Z', Date.UTC(2000, 1, 29), 0], // divisible by 400
    ['1970-01-01T00:00:00Z', 0, 0],
    ['1970-01-01T05:30:00+05:30', 0, 0],
    ['2262-04-11T23:47:16Z', 9223372036000, 0],
    ['2262-04-11T23:47:16.854775807Z', 9223372036854, 775807], // the last int64 nanosecond
  ];
  for (const [input, ms, nanos] of cases) {
    test(JSON.stringify(input), () => assert.deepEqual(parseEventTime(input), { ms, nanos }));
  }

  test('agrees with Date.parse to the ms on 2,000 pseudo-random instants with a zone', () => {
    let seed = 12345;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let i = 0; i < 2000; i++) {
      const ms = DAY_MS + Math.floor(next() * Date.UTC(2200, 0, 1));
      const iso = new Date(ms).toISOString(); // ...Z
      assert.deepEqual(parseEventTime(iso), { ms, nanos: 0 }, iso);
      const offsetMin = Math.floor(next() * 27 * 60) - 12 * 60;
      const sign = offsetMin < 0 ? '-' : '+';
      const abs = Math.abs(offsetMin);
      const local = new Date(ms + offsetMin * 60_000).toISOString().slice(0, 23);
      const withOffset = `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
      assert.deepEqual(parseEventTime(withOffset), { ms, nanos: 0 }, withOffset);
      assert.equal(Date.parse(withOffset), ms, withOffset);
    }
  });
});

describe('parseEventTime: epoch numbers, by magnitude', () => {
  const cases: Array<[number | string, number, number]> = [
    [1640995200, 1640995200000, 0], // seconds
    [1640995200.5, 1640995200500, 0],
    [1640995200.123456, 1640995200123, 456000], // fractional seconds keep µs
    [1640995200123, 1640995200123, 0], // ms
    [1640995200123.5, 1640995200123, 500000],
    [1640995200123456, 1640995200123, 456000], // µs
    [1.640995200123456e18, 1640995200123, 456000], // ns (as exact as a double can say)
    [0, 0, 0],
    [9223372036, 9223372036000, 0], // the last whole second Loki can store
    [100000000000, 100000000000, 0], // 1e11: ms (1973), not seconds
    ['1640995200', 1640995200000, 0], // numeric strings are numbers
    [' 1640995200.123456 ', 1640995200123, 456000],
    ['1640995200123456789', 1640995200123, 456789], // ns text: exact, beyond double precision
    ['1.6409952e9', 1640995200000, 0],
    ['+1640995200', 1640995200000, 0],
    ['9223372036854775807', 9223372036854, 775807], // int64 max ns
  ];
  for (const [input, ms, nanos] of cases) {
    test(`${typeof input} ${JSON.stringify(input)}`, () => assert.deepEqual(parseEventTime(input), { ms, nanos }));
  }
  test('bigint ns', () => assert.deepEqual(parseEventTime(1640995200123456789n), { ms: 1640995200123, nanos: 456789 }));
});

describe('parseEventTime: refused', () => {
  const cases: unknown[] = [
    '9999-12-31T23:59:59Z', // year 9999: past int64 ns
    '2262-04-11T23:47:17Z',
    '2262-04-11T23:47:16.854775808Z',
    '1969-12-31T23:59:59Z', // before the epoch
    '1970-01-01T00:00:00+00:01',
    '0070-01-01T00:00:00Z', // Date.UTC would read year 70 as 1970
    '2024-02-30', // no such day
    '2023-02-29T00:00:00Z', // not a leap year
    '1900-02-29T00:00:00Z',
    '2024-13-01T00:00:00Z',
    '2024-00-10T00:00:00Z',
    '2024-04-31T00:00:00Z',
    '2024-01-15T24:00:00Z',
    '2024-01-15T23:60:00Z',
    '2024-01-15T23:59:60Z',
    '2024-01-15T08:15:23+24:00',
    '2024-01-15T08:15:23+05:60',
    '2024-01-15Z', // a zone needs a time
    '2024-1-15',
    '2024-01-15T8:15:23Z',
    '2024-01-15T08:15:23 Z',
    '2024-01-15 08:15:23 garbage',
    'garbage',
    '',
    '   ',
    'NaN',
    'Infinity',
    '-1',
    '1e22',
    '0x5f000000',
    'Oct 11 22:14:15', // syslog time: no year, no zone (Date.parse would invent 2001, local)
    'Mon, 15 Jan 2024 08:15:23', // RFC 2822 shape without zone: would be local time
    'January 15, 2024 08:15', // no zone
    -1,
    -1640995200,
    99999999999, // just under 1e11, so seconds: year 5138
    1e22,
    1e19,
    9.3e18,
    NaN,
    Infinity,
    -Infinity,
    true,
    false,
    null,
    undefined,
    {},
    { seconds: 1640995200 },
    [1640995200],
    -1n,
  ];
  for (const input of cases) {
    const label = typeof input === 'bigint' ? `${input}n` : typeof input === 'number' ? String(input) : JSON.stringify(input) ?? String(input);
    test(`${typeof input} ${label}`, () => assert.equal(parseEventTime(input), null));
  }
});

describe('parseEventTime: other text through Date.parse, only with a zone and a year', () => {
  const cases: Array<[string, number]> = [
    ['Mon, 15 Jan 2024 08:15:23 GMT', T_2024_01_15_081523],
    ['Mon, 15 Jan 2024 08:15:23 +0000', T_2024_01_15_081523],
    ['15 Jan 2024 09:15:23 +0100', T_2024_01_15_081523],
    ['Mon, 15 Jan 2024 03:15:23 EST', T_2024_01_15_081523],
    ['Mon Jan 15 2024 09:15:23 GMT+0100 (Central European Standard Time)', T_2024_01_15_081523],
  ];
  for (const [input, ms] of cases) {
    test(input, () => assert.deepEqual(parseEventTime(input), { ms, nanos: 0 }));
  }
});

describe('formatPgTimestamp', () => {
  const cases: Array<[number, number, string]> = [
    [1755882687880, 579000, '2025-08-22T17:11:27.880579Z'],
    [1755882687880, 579999, '2025-08-22T17:11:27.880579Z'], // truncated, not rounded
    [1755882687880, 999, '2025-08-22T17:11:27.880000Z'],
    [1755882687880, 9000, '2025-08-22T17:11:27.880009Z'],
    [1755882687880, 99000, '2025-08-22T17:11:27.880099Z'],
    [0, 0, '1970-01-01T00:00:00.000000Z'],
    [9223372036854, 775807, '2262-04-11T23:47:16.854775Z'],
  ];
  for (const [ms, nanos, text] of cases) {
    test(text, () => assert.equal(formatPgTimestamp(ms, nanos), text));
  }

  // The per-second prefix cache must never change the text: compare with the plain formula,
  // over times that share seconds, collide in the cache's slots, and span the whole range.
  test('matches the Date-based formula for any storable time, cached or not', () => {
    const plain = (ms: number, nanos: number): string => {
      const micros = Math.floor(nanos / 1000);
      return new Date(ms).toISOString().slice(0, 23) + String(micros).padStart(3, '0') + 'Z';
    };
    fc.assert(fc.property(
      fc.oneof(fc.integer({ min: 0, max: 9_223_372_036_854 }), fc.integer({ min: 1_755_882_600_000, max: 1_755_882_800_000 })),
      fc.integer({ min: 0, max: 999_999 }),
      (ms, nanos) => {
        assert.equal(formatPgTimestamp(ms, nanos), plain(ms, nanos));
        assert.equal(formatPgTimestamp(ms + 64_000, nanos), plain(ms + 64_000, nanos)); // same slot, other second
        assert.equal(formatPgTimestamp(ms, nanos), plain(ms, nanos));
      },
    ), { numRuns: 5_000 });
  });
});

describe('formatEpochNanos', () => {
  const cases: Array<[number, number, string]> = [
    [1755882687880, 579000, '1755882687880579000'],
    [1755882687880, 1, '1755882687880000001'],
    [1755882687880, 0, '1755882687880000000'],
    [9223372036854, 775807, '9223372036854775807'],
    [1, 0, '1000000'],
    [0, 0, '0'],
    [0, 42, '42'],
  ];
  for (const [ms, nanos, text] of cases) {
    test(text, () => assert.equal(formatEpochNanos(ms, nanos), text));
  }
  test('exact (BigInt cross-check) where ms * 1e6 + nanos is past 2^53', () => {
    for (let i = 0; i < 1000; i++) {
      const ms = 1_600_000_000_000 + i * 7_919_993;
      const nanos = (i * 104_729) % 1_000_000;
      assert.equal(formatEpochNanos(ms, nanos), (BigInt(ms) * 1_000_000n + BigInt(nanos)).toString());
    }
  });
  test('round-trips through parseEventTime', () => {
    const t = parseEventTime('2025-08-22T17:11:27.880579123Z');
    assert.ok(t);
    assert.deepEqual(parseEventTime(formatEpochNanos(t.ms, t.nanos)), t);
  });
});
