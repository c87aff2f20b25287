import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import snappy from 'snappyjs';
import { entryBytes, groupStreams, planPushes, type LokiEntry } from '../../src/sinks/loki/batch.js';
import { encodeJson, encodeProtobuf } from '../../src/sinks/loki/encode.js';

function entry(position: number, timeMs: number, timeNanos = 0, labelsText = '{source="x"}', line = 'hello', metadata: ReadonlyArray<readonly [string, string]> = []): LokiEntry {
  const labels = [...(labelsText.matchAll(/(\w+)="([^"]*)"/g))].map((m) => [m[1] as string, m[2] as string] as const);
  return { position, labelsText, labels, timeMs, timeNanos, line, metadata, bytes: entryBytes(labelsText, line, metadata) };
}

/** A protobuf length-delimited field (payloads here are < 128 bytes). */
const field = (num: number, payload: Buffer): Buffer => Buffer.concat([Buffer.from([(num << 3) | 2, payload.length]), payload]);

describe('Loki push encoding', () => {
  test('protobuf: exactly push.proto on the wire, snappy block format', () => {
    // 1755882000.123456789 s: seconds varint 0x90 0xc4 0xa2 0xc5 0x06, nanos 123456789 = 0x95 0x9a 0xef 0x3a
    const encoded = encodeProtobuf([entry(0, 1_755_882_000_123, 456_789, '{source="x"}', 'hello', [['trace_id', 'abc']])]);
    assert.equal(encoded.contentType, 'application/x-protobuf');
    const timestamp = Buffer.from([0x08, 0x90, 0xc4, 0xa2, 0xc5, 0x06, 0x10, 0x95, 0x9a, 0xef, 0x3a]);
    const pair = Buffer.concat([field(1, Buffer.from('trace_id')), field(2, Buffer.from('abc'))]);
    const entryBytes = Buffer.concat([field(1, timestamp), field(2, Buffer.from('hello')), field(3, pair)]);
    const expected = field(1, Buffer.concat([field(1, Buffer.from('{source="x"}')), field(2, entryBytes)]));
    const raw = Buffer.from(snappy.uncompress(encoded.body));
    assert.deepEqual(raw, expected);
    // block format: starts with the uncompressed length as a varint, no stream identifier chunk
    assert.equal(encoded.body[0], expected.length);
  });

  test('json: streams with a label object and [ns, line, metadata?] values', () => {
    const encoded = encodeJson([entry(0, 1_755_882_000_123, 456_789), entry(1, 1_755_882_000_000, 0, '{source="x"}', 'm', [['k', 'v']])]);
    assert.equal(encoded.contentType, 'application/json');
    assert.deepEqual(JSON.parse(Buffer.from(encoded.body).toString()), {
      streams: [{ stream: { source: 'x' }, values: [['1755882000000000000', 'm', { k: 'v' }], ['1755882000123456789', 'hello']] }],
    });
  });
});

describe('Loki batches', () => {
  test('pushes are bounded by count and bytes; entries go in time order', () => {
    const entries = Array.from({ length: 25 }, (_, i) => entry(i, 1000 - i));
    const byCount = planPushes(entries, 10, 1_000_000);
    assert.deepEqual(byCount.map((p) => p.length), [10, 10, 5]);
    assert.deepEqual(byCount.flat().map((e) => e.position), entries.map((e) => e.position).reverse());
    const size = entries[0]?.bytes ?? 0;
    const byBytes = planPushes(entries, 100, size * 4);
    assert.ok(byBytes.every((p) => p.length <= 4));
    assert.equal(byBytes.flat().length, 25);
    const big = entry(99, 5, 0, '{source="x"}', 'z'.repeat(5000));
    assert.deepEqual(planPushes([big, entry(1, 1)], 100, 1000).map((p) => p.length), [1, 1], 'an entry over the byte bound goes alone');
  });

  test('streams are grouped, each oldest first', () => {
    const groups = groupStreams([entry(0, 30, 0, '{source="a"}'), entry(1, 10, 0, '{source="b"}'), entry(2, 20, 5, '{source="a"}'), entry(3, 20, 1, '{source="a"}')]);
    assert.deepEqual(groups.map((g) => [g.labelsText, g.entries.map((e) => e.position)]), [['{source="a"}', [3, 2, 0]], ['{source="b"}', [1]]]);
  });
});
