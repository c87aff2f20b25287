import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { capString, needsRepair, repairValue, storableString } from '../../src/pipeline/storable.js';

const FFFD = '\uFFFD';

describe('storableString', () => {
  const cases: Array<[string, string]> = [
    ['plain text', 'plain text'],
    ['', ''],
    ['a\u0000b', `a${FFFD}b`],
    ['\u0000\u0000', FFFD + FFFD],
    ['lone high \ud800 here', `lone high ${FFFD} here`],
    ['lone low \udc00 here', `lone low ${FFFD} here`],
    ['reversed pair \udc00\ud800', `reversed pair ${FFFD}${FFFD}`],
    ['pair 😀 kept', 'pair 😀 kept'],
    ['high at end \ud83d', `high at end ${FFFD}`],
    ['é ü 漢字 \uFFFD', 'é ü 漢字 \uFFFD'],
  ];
  for (const [input, expected] of cases) {
    test(JSON.stringify(input), () => assert.equal(storableString(input), expected));
  }
  test('returns the same string when nothing needs repair', () => {
    const s = 'x'.repeat(1000);
    assert.equal(storableString(s), s);
  });
});

describe('needsRepair (input: JSON text)', () => {
  const cases: Array<[unknown, boolean]> = [
    [{ a: 'plain' }, false],
    [{ a: 'tab\tnewline\n quote" backslash\\ control\u0001' }, false], // escaped, but storable
    [{ a: 'emoji 😀' }, false],
    [{ a: 'a\u0000b' }, true],
    [{ 'k\u0000': 1 }, true],
    [{ a: ['x', { b: '\ud800' }] }, true],
    [{ a: '\udfff' }, true],
    [{ a: '\udbff' }, true],
    [{ a: 'literal backslash-u0000: \\u0000' }, true], // a false positive, which is allowed
  ];
  for (const [value, expected] of cases) {
    const json = JSON.stringify(value);
    test(json, () => assert.equal(needsRepair(json), expected));
  }
  test('upper-case escapes from other JSON writers are caught too', () => {
    assert.equal(needsRepair('{"a":"\\uD800"}'), true);
    assert.equal(needsRepair('{"a":"\\u0000"}'), true);
    assert.equal(needsRepair('{"a":"\\u00e9"}'), false);
  });
  test('never a false negative: every string with a NUL or lone surrogate is flagged', () => {
    const pieces = ['a', '\u0000', '\ud800', '\udc00', '😀', '\\', 'u0000', '"', '\u0001', 'é'];
    let seed = 7;
    for (let i = 0; i < 5000; i++) {
      let s = '';
      for (let j = 0; j < 6; j++) {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        s += pieces[seed % pieces.length];
      }
      if (storableString(s) !== s) {
        assert.equal(needsRepair(JSON.stringify({ v: s })), true, JSON.stringify(s));
        assert.equal(needsRepair(JSON.stringify({ [s]: 1 })), true, JSON.stringify(s));
      }
    }
  });
});

describe('repairValue', () => {
  test('repairs values and keys, at every depth, in objects and arrays', () => {
    const input = {
      ok: 'fine',
      'bad\u0000key': 'bad\u0000value',
      nested: { deeper: [{ '\ud800': ['\udc00', 1, true, null] }] },
      n: 42,
    };
    const out = repairValue(input);
    assert.deepEqual(out, {
      ok: 'fine',
      [`bad${FFFD}key`]: `bad${FFFD}value`,
      nested: { deeper: [{ [FFFD]: [FFFD, 1, true, null] }] },
      n: 42,
    });
    const json = JSON.stringify(out);
    assert.equal(json.includes('\\u0000'), false);
    assert.equal(needsRepair(json), false);
  });
  test('returns a copy and leaves its input alone', () => {
    const input = { a: 'x\u0000', b: { c: '\ud800' } };
    const out = repairValue(input) as Record<string, unknown>;
    assert.notEqual(out, input);
    assert.equal(input.a, 'x\u0000');
    assert.equal(input.b.c, '\ud800');
  });
  test('a "__proto__" key stays data and does not change the prototype', () => {
    const input = JSON.parse('{"__proto__": {"polluted": "yes\\u0000"}, "a": 1}') as Record<string, unknown>;
    const out = repairValue(input) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.equal(Object.hasOwn(out, '__proto__'), true);
    assert.deepEqual(JSON.parse(JSON.stringify(out)), JSON.parse(`{"__proto__": {"polluted": "yes${FFFD}"}, "a": 1}`));
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });
  test('primitives pass through', () => {
    for (const v of [1, 0, true, false, null, 1.5]) assert.equal(repairValue(v), v);
    assert.equal(repairValue('a\u0000'), `a${FFFD}`);
  });
});

describe('capString', () => {
  const cases: Array<[string, number, string]> = [
    ['abc', 5, 'abc'],
    ['abcdef', 3, 'abc'],
    ['ab😀', 3, 'ab'], // would split the pair
    ['ab😀', 4, 'ab😀'],
    ['a😀b', 3, 'a😀'],
  ];
  for (const [s, max, expected] of cases) {
    test(`${JSON.stringify(s)} to ${max}`, () => assert.equal(capString(s, max), expected));
  }
});
