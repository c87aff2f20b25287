import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { copyText, parseCopyText } from '../../src/pipeline/copy-text.js';
import type { IngestEvent } from '../../src/pipeline/event.js';
import { decodeEvents, encodeEvents, recordCopyText, RecordDecodeError, recordEvents } from '../../src/spool/record-codec.js';
import { makeEvent, makeEvents } from '../helpers/events.js';

// Text a COPY row must escape, and text that merely looks escaped.
const tricky = fc.constantFrom('', '\t', '\n', '\r', '\\', '\\N', 'N', 'a\tb\nc\r\\d', '\\t', 'é', '\ud83d\ude00', '\u2028', 'x'.repeat(300));
const text = fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: 'grapheme', maxLength: 10 }), tricky);
const nullableText = fc.option(text, { nil: null });
// Storable JSON: no NUL, no lone surrogates (normalize guarantees both).
const storable = (s: string): boolean => !/[\0\p{Cs}]/u.test(s);
const jsonValue = fc.jsonValue({ maxDepth: 3 }).filter((v) => storable(JSON.stringify(v)));
const event: fc.Arbitrary<IngestEvent> = fc
  .record({
    id: fc.uuid(),
    // 1970..2262: the times normalization lets through.
    timeMs: fc.integer({ min: 0, max: 9_000_000_000_000 }),
    timeNanos: fc.integer({ min: 0, max: 999_999 }),
    receivedAtMs: fc.integer({ min: 0, max: 9_000_000_000_000 }),
    source: nullableText, type: nullableText, service: nullableText, host: nullableText, severity: nullableText, message: nullableText,
    data: fc.dictionary(text.filter(storable), jsonValue, { maxKeys: 6 }),
  })
  .filter((e) => [e.source, e.type, e.service, e.host, e.severity, e.message].every((v) => v === null || storable(v)))
  // Through JSON, as normalization's data is: plain prototypes, no -0, no undefined.
  .map((e) => ({ ...e, data: JSON.parse(JSON.stringify(e.data)) as Record<string, unknown>, dataJson: JSON.stringify(e.data) }));

describe('COPY rows', () => {
  it('read back exactly what was written, whatever the text holds', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 8 }), (events) => {
        const subMicros = events.map((e) => e.timeNanos % 1000);
        const back = parseCopyText(copyText(events), subMicros);
        assert.deepEqual(back, events);
      }),
      { numRuns: 300 },
    );
  });

  it('escape what COPY text treats as syntax and write \\N only for NULL', () => {
    const e = makeEvent(1, { message: 'a\tb\nc\\N', host: null, data: { s: 'x\ty' }, dataJson: '{"s":"x\\ty"}' });
    const row = copyText([e]);
    assert.equal(row.split('\n').length, 2, 'one line per row');
    const fields = row.slice(0, -1).split('\t');
    assert.equal(fields.length, 10);
    assert.equal(fields[0], '2025-08-22T17:11:27.881579Z');
    assert.equal(fields[5], '\\N');
    assert.equal(fields[7], 'a\\tb\\nc\\\\N');
    assert.equal(fields[8], '{"s":"x\\\\ty"}');
  });
});

describe('spool record payload', () => {
  it('is a header line then the COPY rows, which the tsdb sink sends as they are', () => {
    const events = makeEvents(0, 3).map((e) => ({ ...e, timeNanos: 579_000 }));
    const payload = encodeEvents(events);
    assert.equal(payload.toString('utf8', 0, 3), '#2\n');
    assert.equal(recordCopyText(payload)?.toString('utf8'), copyText(events));
    assert.deepEqual(decodeEvents(payload), events);
  });

  it('keeps nanoseconds below the microsecond in the header', () => {
    const events = [makeEvent(1, { timeNanos: 579_123 }), makeEvent(2, { timeNanos: 5_000 }), makeEvent(3, { timeNanos: 999_999 })];
    const payload = encodeEvents(events);
    assert.equal(payload.toString('utf8', 0, payload.indexOf('\n')), '#2 [123,0,999]');
    assert.deepEqual(decodeEvents(payload), events);
  });

  it('still reads records written by earlier releases (version 1, JSON), which hold no COPY rows', () => {
    const e = makeEvent(7);
    const v1 = Buffer.from(JSON.stringify([1, [[e.id, e.timeMs, e.timeNanos, e.receivedAtMs, e.source, e.type, e.service, e.host, e.severity, e.message, e.data]]]));
    assert.deepEqual(decodeEvents(v1), [e]);
    assert.equal(recordCopyText(v1), null);
  });

  it('read back from disk, gives its count, rows and received time without decoding an event; events() decodes once', () => {
    const events = makeEvents(0, 4).map((e, i) => ({ ...e, receivedAtMs: 1_755_882_690_123, timeNanos: i * 1001 }));
    const payload = encodeEvents(events);
    const view = recordEvents(payload, events.length);
    assert.equal(view.eventCount, 4);
    assert.equal(view.receivedAtMs, 1_755_882_690_123);
    assert.equal(view.copyText?.toString('utf8'), copyText(events));
    const decoded = view.events();
    assert.deepEqual(decoded, events);
    assert.equal(view.events(), decoded, 'decoded once, then kept');
    // Rows whose data no longer parses: nothing is decoded until events() is called.
    const broken = Buffer.from(payload.toString('utf8').replace('"message":', '"message"'));
    const lazy = recordEvents(broken, events.length);
    assert.equal(lazy.eventCount, 4);
    assert.throws(() => lazy.events(), RecordDecodeError);
    const empty = recordEvents(encodeEvents([]), 0);
    assert.equal(empty.receivedAtMs, null);
    assert.deepEqual(empty.events(), []);
  });

  it('read back from disk, refuses a payload whose rows do not match its frame, or that is not a record', () => {
    const payload = encodeEvents(makeEvents(0, 3));
    assert.throws(() => recordEvents(payload, 2), RecordDecodeError);
    assert.throws(() => recordEvents(payload, 4), RecordDecodeError);
    for (const bad of ['#3\n', '#2 nope\n', '{}', '']) assert.throws(() => recordEvents(Buffer.from(bad), 0), RecordDecodeError, bad);
    // Version 1 records (earlier releases) are decoded at once, as before.
    const e = makeEvent(7);
    const v1 = Buffer.from(JSON.stringify([1, [[e.id, e.timeMs, e.timeNanos, e.receivedAtMs, e.source, e.type, e.service, e.host, e.severity, e.message, e.data]]]));
    const view = recordEvents(v1, 1);
    assert.deepEqual(view.events(), [e]);
    assert.equal(view.receivedAtMs, e.receivedAtMs);
    assert.equal(view.copyText, null);
  });

  it('refuses payloads it cannot read, with RecordDecodeError', () => {
    for (const bad of ['#3\n', '#2 [1001]\n', '#2 nope\n', '#2\nnot\ta\trow\n', `#2\n${copyText([makeEvent(1)]).replace('Z\t', 'Q\t')}`, '[2,[]]', '{}', '']) {
      assert.throws(() => decodeEvents(Buffer.from(bad)), RecordDecodeError, JSON.stringify(bad));
    }
  });
});
