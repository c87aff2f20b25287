import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MothershipError } from '../../src/lib/errors.js';
import { batchId, batchMessages, EVENTS_HEADER, messageRecord, TARGETS_HEADER } from '../../src/spool/jetstream/message.js';
import { makeEvent, makeEvents } from '../helpers/events.js';

const headersOf = (targets: number, events: number) => (name: string): string => (name === TARGETS_HEADER ? String(targets) : name === EVENTS_HEADER ? String(events) : '');

describe('a batch as JetStream messages', () => {
  test('a resent batch gets the same message id; other events, another order or other sinks get another', () => {
    const events = makeEvents(0, 20);
    const [first] = batchMessages(events, 3, 1024 * 1024, true);
    const [again] = batchMessages(makeEvents(0, 20), 3, 1024 * 1024, true);
    assert.ok(first !== undefined && again !== undefined);
    assert.equal(first.msgId, again.msgId);
    assert.match(first.msgId ?? '', /^[0-9a-f]{32}$/);
    assert.notEqual(batchId(makeEvents(0, 19), 3), first.msgId);
    assert.notEqual(batchId([...events].reverse(), 3), first.msgId);
    assert.notEqual(batchId(events, 1), first.msgId);
  });

  test('a replay (no de-duplication) carries no message id', () => {
    const [m] = batchMessages(makeEvents(0, 3), 1, 1024 * 1024, false);
    assert.equal(m?.msgId, null);
  });

  test('a batch over the server\'s max_payload is split, deterministically, into messages that each fit and keep every event in order', () => {
    const events = makeEvents(0, 400);
    const maxPayload = 16 * 1024;
    const parts = batchMessages(events, 1, maxPayload, true);
    assert.ok(parts.length > 1, `split into ${parts.length}`);
    for (const p of parts) assert.ok(p.payload.length <= maxPayload - 1024, `${p.payload.length} bytes`);
    assert.deepEqual(parts.map((p) => p.msgId), batchMessages(makeEvents(0, 400), 1, maxPayload, true).map((p) => p.msgId));
    assert.equal(new Set(parts.map((p) => p.msgId)).size, parts.length);
    const back = parts.flatMap((p) => messageRecord(p.payload, headersOf(1, p.eventCount)).events());
    assert.deepEqual(back.map((e) => e.id), events.map((e) => e.id));
  });

  test('one message larger than max_payload is refused as too large (413), with the fix', () => {
    const huge = makeEvent(1, { message: 'x'.repeat(40 * 1024) });
    assert.throws(() => batchMessages([huge], 1, 16 * 1024, true), (err: unknown) => err instanceof MothershipError && err.code === 'body_too_large' && /max_payload/.test(err.message));
  });

  test('a message reads back as the record it was: events, targets, received time', () => {
    const events = makeEvents(5, 7);
    const [m] = batchMessages(events, 2, 1024 * 1024, true);
    assert.ok(m !== undefined);
    const record = messageRecord(m.payload, headersOf(2, m.eventCount));
    assert.equal(record.targets, 2);
    assert.equal(record.eventCount, 7);
    assert.deepEqual(record.events(), events);
    assert.equal(record.receivedAtMs, events[0]?.receivedAtMs);
  });

  test('a message without our headers, or whose count disagrees with its rows, is not a record', () => {
    const [m] = batchMessages(makeEvents(0, 2), 1, 1024 * 1024, true);
    assert.ok(m !== undefined);
    assert.throws(() => messageRecord(m.payload, () => ''), /not a spool record/);
    assert.throws(() => messageRecord(m.payload, headersOf(1, 3)), /rows/);
  });
});
