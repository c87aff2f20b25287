import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findStream, mapRejections, parseGoTime, type SentStream } from '../../src/sinks/loki/rejections.js';

const T0 = Date.UTC(2024, 0, 15, 8, 15, 23); // 2024-01-15T08:15:23Z

function stream(labels: Record<string, string>, entries: Array<{ position: number; ms: number; nanos?: number; bytes?: number; meta?: boolean }>): SentStream {
  const pairs = Object.entries(labels).sort();
  return {
    labelsText: `{${pairs.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}}`,
    labels: new Map(pairs),
    entries: entries.map((e) => ({ position: e.position, timeMs: e.ms, timeNanos: e.nanos ?? 0, lineBytes: e.bytes ?? 10, hasMetadata: e.meta ?? false })),
  };
}

const a = stream({ source: 'ship-1', host: 'web01' }, [
  { position: 0, ms: T0 },
  { position: 1, ms: T0 + 400 },
  { position: 2, ms: T0 + 5000, bytes: 300000 },
  { position: 3, ms: T0 + 86_400_000 },
]);
const b = stream({ source: 'ship-2' }, [{ position: 4, ms: T0 }, { position: 5, ms: T0 + 3_600_000 }]);

describe('Loki 400 answers → refused entries', () => {
  test('one distributor problem: the entry of that stream and second', () => {
    const body = `entry for stream '{host="web01", source="ship-1"}' has timestamp too new: 2024-01-16T08:15:23Z`;
    assert.deepEqual(mapRejections(body, [a, b])?.map((r) => [r.position, r.code]), [[3, 'loki_entry_too_new']]);
  });

  test('grouped problems, with Loki 3 service_name added and a zone offset', () => {
    const body =
      `2 errors like: entry for stream '{host="web01", service_name="unknown_service", source="ship-1"}' has timestamp too old: 2024-01-15T09:15:23+01:00, oldest acceptable timestamp is: 2024-01-20T00:00:00Z; ` +
      `1 errors like: entry for stream '{service_name="unknown_service", source="ship-2"}' has timestamp too old: 2024-01-15T08:15:23Z, oldest acceptable timestamp is: 2024-01-20T00:00:00Z; ` +
      `1 errors like: Max entry size '262144' bytes exceeded for stream '{host="web01", source="ship-1"}' while adding an entry with length '300000' bytes`;
    const mapped = mapRejections(body, [a, b]);
    assert.ok(mapped !== null);
    assert.deepEqual(mapped.map((r) => [r.position, r.code]).sort(), [[0, 'loki_entry_too_old'], [1, 'loki_entry_too_old'], [2, 'loki_line_too_long'], [4, 'loki_entry_too_old']]);
    assert.match(mapped[0]?.reason ?? '', /timestamp too old/);
  });

  test('a stream-level label problem refuses the whole stream', () => {
    const body = `entry for stream '{host="web01", source="ship-1"}' has 16 label names; limit 15`;
    assert.deepEqual(mapRejections(body, [a, b])?.map((r) => r.position), [0, 1, 2, 3]);
    const parse = `Error parsing labels '{source="ship-2"}' with error: 1:2: parse error: unexpected character`;
    assert.deepEqual(mapRejections(parse, [a, b])?.map((r) => [r.position, r.code]), [[4, 'loki_invalid_labels'], [5, 'loki_invalid_labels']]);
    const value = `stream '{source="ship-2"}' has label value too long: 'x; y'`;
    assert.deepEqual(mapRejections(value, [a, b])?.map((r) => r.position), [4, 5]);
  });

  test('structured metadata refused: the entries that carry some', () => {
    const s = stream({ source: 'n' }, [{ position: 0, ms: T0, meta: true }, { position: 1, ms: T0 }]);
    const body = "stream '{source=\"n\"}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it.";
    assert.deepEqual(mapRejections(body, [s])?.map((r) => [r.position, r.code]), [[0, 'loki_structured_metadata']]);
  });

  test('the ingester shape: exact timestamps of one stream', () => {
    const s = stream({ source: 'ship-1' }, [
      { position: 0, ms: T0, nanos: 456_789 },
      { position: 1, ms: T0 + 123, nanos: 0 },
      { position: 2, ms: T0 + 7_200_000 },
    ]);
    const body =
      `entry with timestamp 2024-01-15 08:15:23.000456789 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2024-01-15T08:15:23Z, oldest acceptable timestamp is: 2024-01-15T09:15:23Z',\n` +
      `entry with timestamp 2024-01-15 08:15:23.123 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2024-01-15T08:15:23Z, oldest acceptable timestamp is: 2024-01-15T09:15:23Z',\n` +
      `user 'fake', total ignored: 2 out of 3 for stream: {service_name="unknown_service", source="ship-1"}`;
    assert.deepEqual(mapRejections(body, [s])?.map((r) => [r.position, r.code]), [[0, 'loki_entry_out_of_order'], [1, 'loki_entry_out_of_order']]);
  });

  test('anything that cannot be matched exactly gives null (the push is then treated as refused)', () => {
    assert.equal(mapRejections('', [a]), null);
    assert.equal(mapRejections('couldn\'t parse push request: unexpected EOF', [a]), null);
    // a stream we did not send
    assert.equal(mapRejections(`entry for stream '{source="ship-9"}' has timestamp too new: 2024-01-16T08:15:23Z`, [a, b]), null);
    // the count does not match the entries of that second
    assert.equal(mapRejections(`3 errors like: entry for stream '{host="web01", source="ship-1"}' has timestamp too new: 2024-01-16T08:15:23Z`, [a, b]), null);
    // more ignored than listed (Loki lists 10 at most)
    const truncated = `entry with timestamp 2024-01-15 08:15:23 +0000 UTC ignored, reason: 'entry too far behind',\nuser 'fake', total ignored: 12 out of 20 for stream: {source="ship-2"}`;
    assert.equal(mapRejections(truncated, [a, b]), null);
    // a known problem followed by an unknown one
    assert.equal(mapRejections(`entry for stream '{host="web01", source="ship-1"}' has timestamp too new: 2024-01-16T08:15:23Z; something else`, [a, b]), null);
  });

  test('Go time text', () => {
    assert.deepEqual(parseGoTime('2024-01-15 08:15:23.123456789 +0000 UTC'), { ms: T0 + 123, nanos: 456_789 });
    assert.deepEqual(parseGoTime('2024-01-15 10:15:23 +0200 CEST'), { ms: T0, nanos: 0 });
    assert.deepEqual(parseGoTime('2024-01-15 08:15:23.5 +0000 UTC m=+0.000001'), { ms: T0 + 500, nanos: 0 });
    assert.equal(parseGoTime('yesterday'), null);
  });

  test('stream matching: the most specific sent stream inside the reported set', () => {
    const broad = stream({ source: 'x' }, []);
    const narrow = stream({ source: 'x', host: 'h' }, []);
    assert.equal(findStream([broad, narrow], new Map([['source', 'x'], ['host', 'h'], ['service_name', 's']])), narrow);
    assert.equal(findStream([broad, narrow], new Map([['source', 'x']])), broad);
    assert.equal(findStream([narrow], new Map([['source', 'y']])), null);
  });
});
