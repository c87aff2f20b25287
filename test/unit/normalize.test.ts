import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseEnvelope } from '../../src/pipeline/envelope.js';
import type { BatchEnvelope, IngestEvent, NormalizedBatch } from '../../src/pipeline/event.js';
import { eventId } from '../../src/pipeline/event-id.js';
import { normalizeBatch } from '../../src/pipeline/normalize.js';
import type { NormalizeContext } from '../../src/pipeline/normalize.js';
import { jsonlMessages, payloadSamples, weatherMessages } from '../helpers/samples.js';

const RECEIVED = Date.UTC(2025, 7, 22, 17, 11, 28); // 1755882688000
const ENVELOPE_TIME = '2025-08-22T17:11:27.936809+00:00';
const ENVELOPE_MS = 1755882687936;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CTX: NormalizeContext = { receivedAtMs: RECEIVED, idempotencyKey: null, maxJsonDepth: 32 };

function env(messages: unknown[], extra: Partial<BatchEnvelope> = {}): BatchEnvelope {
  return { messages, source: 'edge-01', timestamp: ENVELOPE_TIME, isRetry: false, ...extra };
}

function run(messages: unknown[], extra: Partial<BatchEnvelope> = {}, ctx: Partial<NormalizeContext> = {}): NormalizedBatch {
  return normalizeBatch(env(messages, extra), { ...CTX, ...ctx });
}

function one(message: unknown, extra: Partial<BatchEnvelope> = {}, ctx: Partial<NormalizeContext> = {}): IngestEvent {
  const batch = run([message], extra, ctx);
  assert.deepEqual(batch.rejected, []);
  const event = batch.events[0];
  assert.ok(event, 'one event');
  return event;
}

function promoted(e: IngestEvent): Record<string, unknown> {
  return { source: e.source, type: e.type, service: e.service, host: e.host, severity: e.severity, message: e.message };
}

describe('normalizeBatch: the samples from real nodes', () => {
  const payloads = payloadSamples();
  const expected: Record<string, { promoted: Record<string, unknown>; ms: number; nanos: number }> = {
    'payload-20250822_171127_936.json': {
      promoted: {
        source: 'edgebot',
        type: 'syslog',
        service: null,
        host: 'unknown',
        severity: 'unknown',
        message: '<34>Test syslog message from EdgeBot deployment test',
      },
      ms: 1755882687880,
      nanos: 579000,
    },
    'payload-20250822_171457_979.json': {
      promoted: {
        source: 'edgebot',
        type: 'syslog',
        service: 'su', // the syslog tag
        host: 'testserver',
        severity: 'crit', // "critical"
        message: "'su root' successful for edgebot-test on /dev/pts/1",
      },
      ms: 1755882897923,
      nanos: 308000,
    },
  };
  test('both payload files are present', () => assert.deepEqual(payloads.map((p) => p.name).sort(), Object.keys(expected).sort()));
  for (const payload of payloads) {
    test(payload.name, () => {
      const envelope = parseEnvelope(payload.body, { maxMessagesPerBatch: 1000 });
      const batch = normalizeBatch(envelope, CTX);
      assert.equal(batch.received, 1);
      assert.deepEqual(batch.rejected, []);
      const e = batch.events[0];
      const want = expected[payload.name];
      assert.ok(e && want);
      assert.deepEqual(promoted(e), want.promoted);
      assert.equal(e.timeMs, want.ms);
      assert.equal(e.timeNanos, want.nanos);
      assert.equal(e.receivedAtMs, RECEIVED);
      assert.deepEqual(e.data, payload.body.messages[0]); // nothing to strip: kept as-is
      assert.equal(e.dataJson, JSON.stringify(payload.body.messages[0]));
      assert.match(e.id, UUID_RE);
    });
  }

  // The samples README says 15 lines; the files hold 16 (the last line has no newline).
  test('syslog_events.jsonl: all 16, numeric severities named', () => {
    const messages = jsonlMessages('syslog_events.jsonl');
    const batch = run(messages);
    assert.equal(batch.events.length, 16);
    assert.deepEqual(batch.rejected, []);
    const [first, second, third] = batch.events;
    assert.ok(first && second && third);
    assert.deepEqual(promoted(first), {
      source: 'edge-01',
      type: null,
      service: 'nginx', // program
      host: 'web01',
      severity: 'info', // 6
      message: '192.168.1.100 - - [15/Jan/2024:08:15:23 +0000] "GET /api/status HTTP/1.1" 200 45',
    });
    assert.equal(first.timeMs, Date.UTC(2024, 0, 15, 8, 15, 23));
    assert.equal(second.severity, 'warning'); // 4
    assert.equal(third.severity, 'err'); // 3
    assert.equal(third.service, 'mysql');
    assert.equal(new Set(batch.events.map((e) => e.id)).size, 16);
  });

  test('snmp_metrics.jsonl: all 1,704, metrics kept in data', () => {
    const messages = jsonlMessages('snmp_metrics.jsonl');
    assert.equal(messages.length, 1704);
    const batch = run(messages);
    assert.equal(batch.events.length, 1704);
    assert.deepEqual(batch.rejected, []);
    const first = batch.events[0];
    assert.ok(first);
    assert.deepEqual(promoted(first), { source: 'edge-01', type: null, service: null, host: 'ap01', severity: null, message: null });
    assert.equal(first.timeMs, Date.UTC(2024, 0, 15, 8, 0, 0));
    assert.equal(first.data['metric_name'], 'sysUpTime');
    assert.equal(first.data['value'], 84039034);
    assert.equal(new Set(batch.events.map((e) => e.id)).size, 1704);
    for (const e of batch.events) assert.equal(e.dataJson, JSON.stringify(e.data));
  });

  test('weather_data.csv rows: all 16', () => {
    const messages = weatherMessages();
    const batch = run(messages);
    assert.equal(batch.events.length, 16);
    const first = batch.events[0];
    assert.ok(first);
    assert.equal(first.type, 'weather');
    assert.equal(first.timeMs, Date.UTC(2024, 0, 15, 8, 0, 0));
    assert.equal(first.data['city'], 'Delhi');
    assert.equal(first.data['temperature_celsius'], 12.5);
  });
});

describe('normalizeBatch: ids', () => {
  const sample = (): unknown[] => [...jsonlMessages('syslog_events.jsonl'), { message: 'dup' }, { message: 'dup' }, 'dup'];

  test('the same batch normalized twice (a retry) gets the same ids, whatever the receive time', () => {
    const a = run(sample());
    const b = run(sample(), { isRetry: true }, { receivedAtMs: RECEIVED + 60_000 });
    assert.deepEqual(b.events.map((e) => e.id), a.events.map((e) => e.id));
  });

  test('identical messages in one batch are distinct events; the k-th gets occurrence k', () => {
    const batch = run([{ message: 'dup' }, { message: 'other' }, { message: 'dup' }, 'dup']);
    const json = JSON.stringify({ message: 'dup' });
    assert.deepEqual(
      batch.events.map((e) => e.id),
      [
        eventId('content', 'edge-01', json, 0),
        eventId('content', 'edge-01', JSON.stringify({ message: 'other' }), 0),
        eventId('content', 'edge-01', json, 1),
        eventId('content', 'edge-01', json, 2), // a bare string is { message: s }
      ],
    );
    assert.equal(new Set(batch.events.map((e) => e.id)).size, 4);
  });

  test('content ids do not depend on the position in the batch', () => {
    const a = run([{ message: 'x' }, { message: 'y' }]);
    const b = run([{ message: 'y' }, { message: 'x' }]);
    assert.deepEqual(b.events.map((e) => e.id).reverse(), a.events.map((e) => e.id));
  });

  test('internal keys do not change the content id; the node does', () => {
    const plain = one({ message: 'x' });
    assert.equal(one({ message: 'x', _internal: 1 }).id, plain.id);
    assert.notEqual(one({ message: 'x' }, { source: 'edge-02' }).id, plain.id);
    assert.equal(one({ message: 'x' }, { source: null }).id, eventId('content', '', '{"message":"x"}', 0));
  });

  test('__spool_id (string or number) decides the id, whatever the content', () => {
    assert.equal(one({ __spool_id: 'sp-1', message: 'x' }).id, eventId('spool', 'edge-01', 'sp-1', null));
    assert.equal(one({ __spool_id: 'sp-1', message: 'changed' }).id, eventId('spool', 'edge-01', 'sp-1', null));
    assert.equal(one({ __spool_id: 17, message: 'x' }).id, eventId('spool', 'edge-01', '17', null));
    assert.equal(one({ __spool_id: 17, message: 'x' }).id, one({ __spool_id: '17', message: 'y' }).id);
    assert.notEqual(one({ __spool_id: 'sp-1', message: 'x' }, { source: 'edge-02' }).id, one({ __spool_id: 'sp-1', message: 'x' }).id);
  });

  test('__spool_id wins over Idempotency-Key; the key applies to messages without one', () => {
    const batch = run([{ __spool_id: 'sp-1', m: 1 }, { m: 2 }], {}, { idempotencyKey: 'k' });
    assert.deepEqual(
      batch.events.map((e) => e.id),
      [eventId('spool', 'edge-01', 'sp-1', null), eventId('key', 'edge-01', 'k', 1)],
    );
  });

  test('an empty or non-scalar __spool_id is no spool id', () => {
    for (const spoolId of ['', null, true, { a: 1 }, ['x']]) {
      assert.equal(one({ __spool_id: spoolId, message: 'x' }).id, eventId('content', 'edge-01', '{"message":"x"}', 0), JSON.stringify(spoolId));
    }
  });

  test('Idempotency-Key: id from (node, key, index in messages), rejected messages counted', () => {
    const batch = run([{ message: 'dup' }, 42, { message: 'dup' }], {}, { idempotencyKey: 'batch-7' });
    assert.deepEqual(
      batch.events.map((e) => e.id),
      [eventId('key', 'edge-01', 'batch-7', 0), eventId('key', 'edge-01', 'batch-7', 2)],
    );
    const other = run([{ message: 'dup' }], {}, { idempotencyKey: 'batch-8' });
    assert.notEqual(other.events[0]?.id, batch.events[0]?.id);
  });

  test('an empty Idempotency-Key is no key', () => {
    assert.equal(one({ message: 'x' }, {}, { idempotencyKey: '' }).id, eventId('content', 'edge-01', '{"message":"x"}', 0));
  });
});

describe('normalizeBatch: messages refused alone', () => {
  test('non-objects are rejected with their index; the rest is accepted', () => {
    const batch = run([{ message: 'ok' }, 42, null, ['a'], true, 'text', { message: 'ok2' }]);
    assert.equal(batch.received, 7);
    assert.deepEqual(batch.events.map((e) => e.message), ['ok', 'text', 'ok2']);
    assert.deepEqual(batch.rejected.map((r) => [r.index, r.error]), [
      [1, 'message_not_object'],
      [2, 'message_not_object'],
      [3, 'message_not_object'],
      [4, 'message_not_object'],
    ]);
    assert.match(batch.rejected[0]?.message ?? '', /^Message 1 is a number; expected a JSON object or a string$/);
    assert.match(batch.rejected[2]?.message ?? '', /is an array/);
  });

  const depths: Array<[string, unknown, boolean]> = [
    ['depth 1', { a: 1 }, true],
    ['depth 3 (the limit)', { a: { b: { c: 1 } } }, true],
    ['depth 3 via arrays', { a: [[1]] }, true],
    ['depth 4 via objects', { a: { b: { c: {} } } }, false],
    ['depth 4 via arrays', { a: [[[]]] }, false],
    ['depth 4 deep in a wide message', { x: 1, y: [1, 2, { z: 1 }], w: { v: [{ u: 1 }] } }, false],
  ];
  for (const [name, message, accepted] of depths) {
    test(`maxJsonDepth 3: ${name} ${accepted ? 'accepted' : 'rejected'}`, () => {
      const batch = run([message], {}, { maxJsonDepth: 3 });
      assert.equal(batch.events.length, accepted ? 1 : 0);
      assert.deepEqual(batch.rejected.map((r) => r.error), accepted ? [] : ['message_too_deep']);
    });
  }

  test('100,000 levels of objects and of arrays are rejected without throwing', () => {
    let deepObject: Record<string, unknown> = { leaf: true };
    let deepArray: unknown[] = [];
    for (let i = 0; i < 100_000; i++) {
      deepObject = { next: deepObject };
      deepArray = [deepArray];
    }
    const batch = run([deepObject, { payload: deepArray }, { message: 'fine' }]);
    assert.deepEqual(batch.rejected.map((r) => [r.index, r.error]), [
      [0, 'message_too_deep'],
      [1, 'message_too_deep'],
    ]);
    assert.match(batch.rejected[0]?.message ?? '', /^Message 0 is nested deeper than 32 levels$/);
    assert.deepEqual(batch.events.map((e) => e.message), ['fine']);
  });
});

describe('normalizeBatch: sanitized data', () => {
  test('top-level keys starting with "_" are dropped, nested ones kept, input untouched', () => {
    const input = { __spool_id: 's', _internal: { x: 1 }, __proto__x: 1, message: 'm', nested: { _keep: 1 } };
    const copy = structuredClone(input);
    const e = one(input);
    assert.deepEqual(e.data, { message: 'm', nested: { _keep: 1 } });
    assert.equal(e.dataJson, '{"message":"m","nested":{"_keep":1}}');
    assert.deepEqual(input, copy);
  });

  test('a "__proto__" key is dropped like any internal key', () => {
    const e = one(JSON.parse('{"__proto__": {"polluted": 1}, "message": "m"}'));
    assert.equal(e.dataJson, '{"message":"m"}');
    assert.equal(Object.getPrototypeOf(e.data), Object.prototype);
  });

  test('a bare string becomes { message }', () => {
    const e = one('just a line');
    assert.deepEqual(e.data, { message: 'just a line' });
    assert.equal(e.message, 'just a line');
    assert.equal(e.timeMs, ENVELOPE_MS);
  });

  test('NUL and lone surrogates are repaired in values, keys and promoted fields', () => {
    const e = one({
      message: 'a\u0000b',
      host: 'h\ud800',
      'k\u0000ey': 'v\udc00',
      nested: [{ '\ud83d': 'x\u0000' }],
    });
    assert.deepEqual(e.data, {
      message: 'a\uFFFDb',
      host: 'h\uFFFD',
      'k\uFFFDey': 'v\uFFFD',
      nested: [{ '\uFFFD': 'x\uFFFD' }],
    });
    assert.equal(e.message, 'a\uFFFDb');
    assert.equal(e.host, 'h\uFFFD');
    assert.equal(e.dataJson, JSON.stringify(e.data));
    assert.equal(e.dataJson.includes('\\u0000'), false);
    assert.equal(/\\ud[89a-f]/i.test(e.dataJson), false);
  });

  test('events all have the same fields in the same order', () => {
    const batch = run([{ message: 'a' }, 'b', { __spool_id: 1 }, { host: 1, severity: 3 }]);
    const shapes = new Set(batch.events.map((e) => Object.keys(e).join(',')));
    assert.deepEqual([...shapes], ['id,timeMs,timeNanos,receivedAtMs,source,type,service,host,severity,message,data,dataJson']);
  });
});

describe('normalizeBatch: time', () => {
  const cases: Array<[string, Record<string, unknown>, number, number]> = [
    ['µs kept', { timestamp: '2025-08-22T17:11:27.880579+00:00' }, 1755882687880, 579000],
    ['ns kept', { timestamp: '2025-08-22T17:11:27.880579123Z' }, 1755882687880, 579123],
    ['zone-less ISO is UTC', { timestamp: '2024-01-15T08:15:23.5' }, Date.UTC(2024, 0, 15, 8, 15, 23, 500), 0],
    ['epoch seconds', { timestamp: 1640995200 }, 1640995200000, 0],
    ['epoch seconds with µs', { timestamp: 1640995200.123456 }, 1640995200123, 456000],
    ['epoch ms', { timestamp: 1640995200123 }, 1640995200123, 0],
    ['epoch µs', { timestamp: 1640995200123456 }, 1640995200123, 456000],
    ['epoch ns as text', { timestamp: '1640995200123456789' }, 1640995200123, 456789],
    ['@timestamp', { '@timestamp': '2024-01-15T08:15:23Z' }, Date.UTC(2024, 0, 15, 8, 15, 23), 0],
    ['time', { time: 1640995200 }, 1640995200000, 0],
    ['ts', { ts: 1640995200 }, 1640995200000, 0],
    ['timestamp before @timestamp', { '@timestamp': 1, timestamp: 1640995200 }, 1640995200000, 0],
    ['a bad timestamp falls to @timestamp', { timestamp: 'garbage', '@timestamp': 1640995200 }, 1640995200000, 0],
    ['a bad time falls to ts', { time: '9999-01-01T00:00:00Z', ts: 1640995200 }, 1640995200000, 0],
    ['year 9999 → envelope', { timestamp: '9999-01-01T00:00:00Z' }, ENVELOPE_MS, 809000],
    ['1e22 → envelope', { timestamp: 1e22 }, ENVELOPE_MS, 809000],
    ['"garbage" → envelope', { timestamp: 'garbage' }, ENVELOPE_MS, 809000],
    ['-1 → envelope', { timestamp: -1 }, ENVELOPE_MS, 809000],
    ['"NaN" → envelope', { timestamp: 'NaN' }, ENVELOPE_MS, 809000],
    ['2024-02-30 → envelope', { timestamp: '2024-02-30' }, ENVELOPE_MS, 809000],
    ['syslog "Oct 11 22:14:15" → envelope', { timestamp: 'Oct 11 22:14:15' }, ENVELOPE_MS, 809000],
    ['none → envelope', { message: 'x' }, ENVELOPE_MS, 809000],
  ];
  for (const [name, message, ms, nanos] of cases) {
    test(name, () => {
      const e = one(message);
      assert.deepEqual([e.timeMs, e.timeNanos], [ms, nanos]);
    });
  }

  const absurdEnvelope: unknown[] = ['9999-01-01T00:00:00Z', 1e22, 'garbage', -1, 'NaN', null, undefined, { t: 1 }];
  for (const envelopeTime of absurdEnvelope) {
    test(`bad message time and envelope time ${JSON.stringify(envelopeTime) ?? 'undefined'} → receive time`, () => {
      const e = one({ timestamp: 'garbage' }, { timestamp: envelopeTime });
      assert.deepEqual([e.timeMs, e.timeNanos, e.receivedAtMs], [RECEIVED, 0, RECEIVED]);
    });
  }

  test('a fractional receive time is floored to whole ms', () => {
    const e = one({ m: 1 }, { timestamp: undefined }, { receivedAtMs: RECEIVED + 0.75 });
    assert.deepEqual([e.timeMs, e.timeNanos, e.receivedAtMs], [RECEIVED, 0, RECEIVED]);
  });
});

describe('normalizeBatch: promoted fields', () => {
  const long = 'h'.repeat(300);
  const cases: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
    ['service', { service: 'api', program: 'p', app_name: 'a', tag: 't' }, { service: 'api' }],
    ['program', { program: 'nginx', app_name: 'a', tag: 't' }, { service: 'nginx' }],
    ['app_name', { app_name: 'sshd', tag: 't' }, { service: 'sshd' }],
    ['tag', { tag: 'su' }, { service: 'su' }],
    ['non-string service falls back', { service: { a: 1 }, program: 'p' }, { service: 'p' }],
    ['empty service falls back', { service: '  ', program: 'p' }, { service: 'p' }],
    ['host', { host: 'web01', hostname: 'other' }, { host: 'web01' }],
    ['hostname', { hostname: 'testserver' }, { host: 'testserver' }],
    ['numbers become text for labels', { host: 42, service: 7, type: 1.5 }, { host: '42', service: '7', type: '1.5' }],
    ['booleans and objects are no label', { host: true, type: { a: 1 }, service: ['x'] }, { host: null, type: null, service: null }],
    ['labels trimmed', { host: '  web01 \n', type: '\tsyslog ' }, { host: 'web01', type: 'syslog' }],
    ['labels capped at 256', { host: long }, { host: 'h'.repeat(256) }],
    ['severity word', { severity: 'WARN' }, { severity: 'warning' }],
    ['severity number', { severity: 2 }, { severity: 'crit' }],
    ['level', { level: 'error' }, { severity: 'err' }],
    ['severity_code', { severity_code: 5 }, { severity: 'notice' }],
    ['severity before level', { severity: 'info', level: 'error' }, { severity: 'info' }],
    ['message', { message: 'm', raw_message: 'r', msg: 'x' }, { message: 'm' }],
    ['raw_message', { raw_message: 'r', msg: 'x' }, { message: 'r' }],
    ['msg', { msg: 'x' }, { message: 'x' }],
    ['message not trimmed', { message: '  indented\n' }, { message: '  indented\n' }],
    ['non-string message falls back', { message: 42, raw_message: 'r' }, { message: 'r' }],
    ['nothing to promote', { value: 1 }, { type: null, service: null, host: null, severity: null, message: null }],
  ];
  for (const [name, message, expected] of cases) {
    test(name, () => {
      const got = promoted(one(message));
      for (const [field, value] of Object.entries(expected)) assert.equal(got[field], value, field);
    });
  }

  test('the message column is not capped', () => {
    const text = 'x'.repeat(100_000);
    assert.equal(one({ message: text }).message, text);
  });

  test('source comes from the envelope only', () => {
    assert.equal(one({ source: 'in-message' }).source, 'edge-01');
    assert.equal(one({ source: 'in-message' }, { source: null }).source, null);
  });
});
