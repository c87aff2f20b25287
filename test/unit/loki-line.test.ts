import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildEntryContent, ID_KEY, TRUNCATION_MARKER, truncateLine } from '../../src/sinks/loki/line.js';
import { makeEvent } from '../helpers/events.js';

const json = { format: 'json' as const, maxLineBytes: 256 * 1024, structuredMetadata: [] as string[] };

describe('Loki lines', () => {
  test('json: the message fields as sent, plus the event id', () => {
    const event = makeEvent(7);
    const { line, metadata, truncated } = buildEntryContent(event, new Set(), json);
    assert.deepEqual(JSON.parse(line), { ...event.data, [ID_KEY]: event.id });
    assert.ok(line.startsWith(event.dataJson.slice(0, -1)), 'the original JSON text is kept as is');
    assert.deepEqual(metadata, []);
    assert.equal(truncated, false);
  });

  test('json: fields a label carries exactly are left out; an empty message still has its id', () => {
    const event = makeEvent(7);
    const parsed = JSON.parse(buildEntryContent(event, new Set(['host']), json).line) as Record<string, unknown>;
    assert.equal(parsed['host'], undefined);
    assert.equal(parsed['message'], 'event 7');
    const empty = makeEvent(8, { data: {}, dataJson: '{}' });
    assert.equal(buildEntryContent(empty, new Set(), json).line, `{"${ID_KEY}":"${empty.id}"}`);
  });

  test('the same event always gives the same line (replays are exact duplicates)', () => {
    const a = buildEntryContent(makeEvent(3), new Set(['host']), json).line;
    const b = buildEntryContent(makeEvent(3), new Set(['host']), json).line;
    assert.equal(a, b);
  });

  test('message format: the message text alone, else the JSON', () => {
    const options = { ...json, format: 'message' as const };
    assert.equal(buildEntryContent(makeEvent(1), new Set(), options).line, 'event 1');
    const noMessage = makeEvent(2, { message: null });
    assert.equal(buildEntryContent(noMessage, new Set(), options).line, noMessage.dataJson);
  });

  test('structured metadata: chosen fields move out of the line; objects as JSON; long values stay', () => {
    const data = { message: 'x', trace_id: 'abc123', ctx: { a: 1 }, big: 'y'.repeat(2000), severity: 6 };
    const event = makeEvent(1, { data, dataJson: JSON.stringify(data), severity: 'info' });
    const content = buildEntryContent(event, new Set(), { ...json, structuredMetadata: ['trace_id', 'ctx', 'big', 'missing', 'severity'] });
    assert.deepEqual(content.metadata, [['trace_id', 'abc123'], ['ctx', '{"a":1}'], ['severity', 'info']]);
    const parsed = JSON.parse(content.line) as Record<string, unknown>;
    assert.equal(parsed['trace_id'], undefined);
    assert.equal(parsed['ctx'], undefined);
    assert.equal(parsed['big'], 'y'.repeat(2000));
    assert.equal(parsed['severity'], 6, 'the numeric severity differs from the metadata value, so it stays');
  });

  test('a line over the limit is cut on a character boundary and ends with the marker', () => {
    const line = 'é'.repeat(3000); // 6000 bytes
    const cut = truncateLine(line, 1024);
    assert.ok(Buffer.byteLength(cut) <= 1024);
    assert.ok(cut.includes(`${TRUNCATION_MARKER}6000 bytes]`));
    assert.ok(cut.endsWith('bytes]'));
    assert.ok(!cut.includes('\ufffd'));
    assert.equal(truncateLine('short', 1024), 'short');
    const event = makeEvent(1, { message: 'z'.repeat(5000), data: { message: 'z'.repeat(5000) }, dataJson: JSON.stringify({ message: 'z'.repeat(5000) }) });
    const content = buildEntryContent(event, new Set(), { ...json, maxLineBytes: 1024 });
    assert.equal(content.truncated, true);
    assert.ok(Buffer.byteLength(content.line) <= 1024);
  });
});
