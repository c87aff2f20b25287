import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MothershipError } from '../../src/lib/errors.js';
import { parseEnvelope } from '../../src/pipeline/envelope.js';

const LIMITS = { maxMessagesPerBatch: 3 };

function refusal(body: unknown): MothershipError {
  try {
    parseEnvelope(body, LIMITS);
  } catch (err) {
    assert.ok(err instanceof MothershipError, `expected a MothershipError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected parseEnvelope to throw');
}

describe('parseEnvelope: refused bodies', () => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['null', null, 'invalid_envelope', /JSON object.*got null/],
    ['a string', 'hello', 'invalid_envelope', /got a string/],
    ['a number', 42, 'invalid_envelope', /got a number/],
    ['an array', [{ message: 'x' }], 'invalid_envelope', /got an array/],
    ['a class instance', new Date(0), 'invalid_envelope', /got an object/],
    ['no messages', { source: 'n' }, 'invalid_envelope', /no "messages" field/],
    ['messages: null', { messages: null }, 'invalid_envelope', /"messages" must be an array, got null/],
    ['messages: object', { messages: { a: 1 } }, 'invalid_envelope', /"messages" must be an array, got an object/],
    ['messages: string', { messages: 'x' }, 'invalid_envelope', /"messages" must be an array, got a string/],
    ['over the limit', { messages: [1, 2, 3, 4] }, 'too_many_messages', /^The batch has 4 messages; the limit is 3$/],
  ];
  for (const [name, body, code, message] of cases) {
    test(name, () => {
      const err = refusal(body);
      assert.equal(err.code, code);
      assert.match(err.message, message);
      assert.equal(err.status, code === 'too_many_messages' ? 413 : 400);
    });
  }
});

describe('parseEnvelope: accepted bodies', () => {
  test('the EdgeBot shape', () => {
    const messages = [{ message: 'a' }, 'b'];
    const env = parseEnvelope(
      { messages, batch_size: 2, timestamp: '2025-08-22T17:11:27.936809+00:00', source: 'edgebot', is_retry: true },
      LIMITS,
    );
    assert.deepEqual(env, { messages, source: 'edgebot', timestamp: '2025-08-22T17:11:27.936809+00:00', isRetry: true });
    assert.equal(env.messages, messages);
  });
  test('at the limit, and empty', () => {
    assert.equal(parseEnvelope({ messages: [1, 2, 3] }, LIMITS).messages.length, 3);
    assert.equal(parseEnvelope({ messages: [] }, LIMITS).messages.length, 0);
  });
  test('batch_size is never trusted', () => {
    assert.equal(parseEnvelope({ messages: [1], batch_size: 1000 }, LIMITS).messages.length, 1);
    assert.equal(parseEnvelope({ messages: [1, 2], batch_size: 1 }, LIMITS).messages.length, 2);
    assert.equal(parseEnvelope({ messages: [1, 2, 3], batch_size: 'x' }, LIMITS).messages.length, 3);
  });
  test('a null-prototype object is a plain object', () => {
    const body = Object.create(null) as Record<string, unknown>;
    body['messages'] = [];
    assert.deepEqual(parseEnvelope(body, LIMITS).messages, []);
  });
  test('timestamp is kept raw', () => {
    for (const t of [1640995200, 'garbage', null, { a: 1 }, undefined]) {
      assert.equal(parseEnvelope({ messages: [], timestamp: t }, LIMITS).timestamp, t);
    }
  });

  const sources: Array<[unknown, string | null]> = [
    ['edge-01', 'edge-01'],
    ['  edge-01 \n', 'edge-01'],
    ['', null],
    ['   ', null],
    [42, null],
    [null, null],
    [undefined, null],
    [{ name: 'x' }, null],
    [['x'], null],
    [true, null],
    ['n'.repeat(300), 'n'.repeat(256)],
    ['bad\u0000node', 'bad\uFFFDnode'],
    ['lone\ud800', 'lone\uFFFD'],
  ];
  for (const [source, expected] of sources) {
    const label = typeof source === 'string' && source.length > 20 ? `${source.length} chars` : JSON.stringify(source) ?? 'undefined';
    test(`source ${label} → ${JSON.stringify(expected)}`, () => {
      assert.equal(parseEnvelope({ messages: [], source }, LIMITS).source, expected);
    });
  }

  const retries: Array<[unknown, boolean]> = [
    [true, true],
    [false, false],
    ['true', false],
    [1, false],
    [undefined, false],
    [null, false],
  ];
  for (const [isRetry, expected] of retries) {
    test(`is_retry ${JSON.stringify(isRetry) ?? 'undefined'} → ${expected}`, () => {
      assert.equal(parseEnvelope({ messages: [], is_retry: isRetry }, LIMITS).isRetry, expected);
    });
  }
});
