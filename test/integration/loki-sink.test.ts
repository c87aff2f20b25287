import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LokiConfig } from '../../src/config/config.js';
import type { IngestEvent } from '../../src/pipeline/event.js';
import { parseEnvelope } from '../../src/pipeline/envelope.js';
import { normalizeBatch } from '../../src/pipeline/normalize.js';
import { formatEpochNanos } from '../../src/pipeline/time.js';
import { TRUNCATION_MARKER } from '../../src/sinks/loki/line.js';
import { createLokiSink, type LokiSink } from '../../src/sinks/loki/sink.js';
import { batchOf, type SendOutcome } from '../../src/sinks/sink.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { makeEvent } from '../helpers/events.js';
import { DAY, entriesById, HOUR, LOKI_TEST, LokiStandin, lokiConfigFor, type StandinOptions, type StoredEntry } from '../helpers/loki-standin.js';
import { cleanupsAfterEach } from '../helpers/cleanups.js';
import { envelope, jsonlMessages, payloadSamples, weatherMessages } from '../helpers/samples.js';

const NOW = Date.UTC(2025, 7, 22, 18, 0, 0);

const T = LOKI_TEST;

const cleanups = cleanupsAfterEach();

interface Rig {
  standin: LokiStandin;
  sink: LokiSink;
  clock: { ms: number };
  config: LokiConfig;
}

async function rig(overrides: Partial<LokiConfig> = {}, standinOptions: StandinOptions = {}): Promise<Rig> {
  const clock = { ms: NOW };
  const standin = await LokiStandin.start({ now: () => clock.ms, ...standinOptions });
  cleanups.push(() => standin.close());
  const config = lokiConfigFor(standin.url, { staticLabels: { job: 'edgebot' }, timeoutMs: 2000, ...overrides });
  const sink = createLokiSink(config, silentLogger(), { now: () => clock.ms });
  cleanups.push(() => sink.shutdown());
  await sink.start(AbortSignal.timeout(5000));
  return { standin, sink, clock, config };
}

const send = (sink: LokiSink, events: readonly IngestEvent[]): Promise<SendOutcome> => sink.send(batchOf(events), AbortSignal.timeout(20_000));

function eventsOf(body: unknown, receivedAtMs: number): IngestEvent[] {
  const batch = normalizeBatch(parseEnvelope(body, { maxMessagesPerBatch: 100_000 }), { receivedAtMs, idempotencyKey: null, maxJsonDepth: 64 });
  assert.equal(batch.rejected.length, 0);
  return batch.events;
}

/** Events at `NOW - ageMs` (+ i µs), on one node. */
function eventsAt(ageMs: number, count: number, from = 0, overrides: Partial<IngestEvent> = {}): IngestEvent[] {
  return Array.from({ length: count }, (_, i) => {
    const data = { message: `event ${from + i}`, host: 'edge-01', seq: from + i };
    return makeEvent(from + i, { timeMs: NOW - ageMs + i, timeNanos: 1000 * (i % 1000), receivedAtMs: NOW, data, dataJson: JSON.stringify(data), message: `event ${from + i}`, ...overrides });
  });
}

/** Every event stored exactly once, at its exact time, with the labels the policy gives it. */
function assertStored(entries: readonly StoredEntry[], events: readonly IngestEvent[]): void {
  const stored = entriesById(entries);
  assert.equal(entries.length, events.length, 'one entry per event');
  for (const event of events) {
    const found = stored.get(event.id);
    assert.ok(found !== undefined && found.length === 1, `event ${event.id} stored exactly once`);
    const entry = found[0] as StoredEntry;
    assert.equal(entry.tsNs, BigInt(formatEpochNanos(event.timeMs, event.timeNanos)), 'exact time to the ns');
    assert.equal(entry.labels['source'], event.source ?? 'unknown');
    assert.equal(entry.labels['job'], 'edgebot');
    for (const name of ['type', 'service', 'severity', 'host'] as const) assert.equal(entry.labels[name], event[name] ?? undefined, `${name} label of ${event.id}`);
    const line = JSON.parse(entry.line) as Record<string, unknown>;
    for (const [key, value] of Object.entries(event.data)) {
      if (typeof value === 'string' && entry.labels[key] === value) assert.equal(line[key], undefined, `${key} is carried by its label`);
      else assert.deepEqual(line[key], value, `${key} of ${event.id} is in the line`);
    }
  }
}

/** A protobuf field: tag varint, then a length-delimited payload (all lengths here are < 128). */
function field(num: number, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(num << 3) | 2, payload.length]), payload]);
}

describe('the Loki stand-in on the wire', () => {
  test('decodes a hand-built snappy block of a hand-built PushRequest; refuses bad content like Loki', T, async () => {
    const clock = { ms: NOW };
    const standin = await LokiStandin.start({ now: () => clock.ms });
    cleanups.push(() => standin.close());
    const post = (body: Uint8Array | string, headers: Record<string, string>) =>
      fetch(`${standin.url}/loki/api/v1/push`, { method: 'POST', body, headers }).then(async (res) => ({ status: res.status, text: await res.text() }));
    // seconds = 1755882000 (varint), nanos = 5
    const seconds = Buffer.from([0x08, 0x90, 0xc4, 0xa2, 0xc5, 0x06, 0x10, 0x05]);
    const entry = Buffer.concat([field(1, seconds), field(2, Buffer.from('hello'))]);
    const request = field(1, Buffer.concat([field(1, Buffer.from('{source="x"}')), field(2, entry)]));
    // Snappy block: uncompressed length (varint), then one literal element (tag = (len-1) << 2).
    const block = Buffer.concat([Buffer.from([request.length, (request.length - 1) << 2]), request]);
    assert.deepEqual(await post(block, { 'Content-Type': 'application/x-protobuf' }), { status: 204, text: '' });
    const [stored] = standin.entries();
    assert.equal(stored?.tsNs, 1_755_882_000_000_000_005n);
    assert.equal(stored?.line, 'hello');
    assert.deepEqual(stored?.labels, { source: 'x', service_name: 'unknown_service' });

    // Loki 3.4.6 reads any Content-Type but JSON as snappy protobuf, and refuses an unknown encoding with a 400
    assert.deepEqual(await post('{}', { 'Content-Type': 'text/plain' }), { status: 400, text: 'snappy: corrupt input\n' });
    assert.equal((await post(block, { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'br' })).status, 400);
    assert.equal((await post(Buffer.from([0xff, 0xff, 0xff]), { 'Content-Type': 'application/x-protobuf' })).status, 400);
    assert.equal((await post('{"streams": [', { 'Content-Type': 'application/json' })).status, 400);
    assert.equal((await post('{"streams":[{"stream":{"a":"b"},"values":[["soon","x"]]}]}', { 'Content-Type': 'application/json' })).status, 400);

    const ts = String(BigInt(NOW) * 1_000_000n);
    const json = (stream: Record<string, string>) => JSON.stringify({ streams: [{ stream, values: [[ts, 'line']] }] });
    const badName = await post(json({ 'bad-name': 'x' }), { 'Content-Type': 'application/json' });
    assert.equal(badName.status, 400);
    assert.match(badName.text, /^couldn't parse labels: 1:5: parse error: unexpected character inside braces: '-'/);
    const many = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`l${i}`, 'v']));
    const tooMany = await post(json(many), { 'Content-Type': 'application/json' });
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.text, /service_name="unknown_service"\}' has 16 label names; limit 15/);
    const ok = await post(json({ source: 'y' }), { 'Content-Type': 'application/json' });
    assert.equal(ok.status, 204);
    const ready = await fetch(`${standin.url}/ready`);
    assert.equal(ready.status, 200);
    assert.equal((await ready.text()).trim(), 'ready');
  });
});

describe('Loki sink against the stand-in', () => {
  for (const encoding of ['protobuf', 'json'] as const) {
    test(`every sample lands with its labels, lines and exact times (${encoding})`, T, async () => {
      const r = await rig({ encoding });
      const payloads = payloadSamples().flatMap((s) => eventsOf(s.body, NOW));
      let outcome = await send(r.sink, payloads);
      assert.deepEqual(outcome, { kind: 'delivered', written: payloads.length, duplicates: 0 });

      r.clock.ms = Date.UTC(2024, 0, 16, 0, 0, 0); // the jsonl/csv samples are from 2024-01-15
      const lab = [
        ...eventsOf(envelope(jsonlMessages('syslog_events.jsonl'), 'edge-lab'), r.clock.ms),
        ...eventsOf(envelope(jsonlMessages('snmp_metrics.jsonl'), 'edge-lab'), r.clock.ms),
        ...eventsOf(envelope(weatherMessages(), 'edge-weather'), r.clock.ms),
      ];
      outcome = await send(r.sink, lab);
      assert.deepEqual(outcome, { kind: 'delivered', written: lab.length, duplicates: 0 });

      assertStored(r.standin.entries(), [...payloads, ...lab]);
      const pushes = r.standin.pushes();
      assert.ok(pushes.length >= Math.ceil(lab.length / 100), 'batches of LOKI_BATCH_SIZE entries');
      assert.ok(pushes.every((p) => p.entries <= 100));
      const expectedType = encoding === 'json' ? 'application/json' : 'application/x-protobuf';
      assert.ok(pushes.every((p) => p.contentType === expectedType && p.status === 204));
      // syslog severities arrive as numbers and become names; they stay numbers in the line
      const nginx = r.standin.entries().find((e) => e.line.includes('GET /api/status'));
      assert.equal(nginx?.labels['severity'], 'info');
      assert.equal((JSON.parse(nginx?.line ?? '{}') as Record<string, unknown>)['severity'], 6);
    });
  }

  test('tenant and basic auth go with every push and probe', T, async () => {
    const r = await rig({ tenantId: 'fleet-a', username: 'edge', password: 'p@ss:word' }, { basicAuth: { username: 'edge', password: 'p@ss:word' } });
    assert.deepEqual(await r.sink.healthcheck(AbortSignal.timeout(2000)), { healthy: true });
    const events = eventsAt(HOUR, 5);
    assert.equal((await send(r.sink, events)).kind, 'delivered');
    assert.equal(r.standin.entries('fleet-a').length, 5);
    const expected = `Basic ${Buffer.from('edge:p@ss:word').toString('base64')}`;
    assert.ok(r.standin.requests.length >= 3);
    for (const req of r.standin.requests) {
      assert.equal(req.tenant, 'fleet-a');
      assert.equal(req.authorization, expected);
    }
  });

  test('wrong credentials: 401 is refused for good (every entry of the push)', T, async () => {
    const r = await rig({ username: 'edge', password: 'wrong' }, { basicAuth: { username: 'edge', password: 'right' } });
    const outcome = await send(r.sink, eventsAt(HOUR, 3));
    assert.ok(outcome.kind === 'delivered');
    assert.deepEqual(outcome.rejected?.map((x) => [x.position, x.error.code]), [[0, 'loki_rejected'], [1, 'loki_rejected'], [2, 'loki_rejected']]);
  });

  test('label explosion: a random host per message stays inside the budget, and no event is lost', T, async () => {
    const r = await rig({ maxLabelValues: 20 });
    const events = eventsAt(HOUR, 300).map((e, i) => {
      const host = `host-${i}-${Math.random().toString(36).slice(2, 8)}`;
      const data = { ...e.data, host };
      return { ...e, host, data, dataJson: JSON.stringify(data) };
    });
    assert.equal((await send(r.sink, events)).kind, 'delivered');
    const entries = r.standin.entries();
    assert.equal(entries.length, 300);
    const hosts = new Set(entries.map((e) => e.labels['host']).filter((h) => h !== undefined));
    assert.equal(hosts.size, 20);
    assert.ok(r.standin.streams().length <= 21);
    assert.equal(r.sink.counters.overBudget['host'], 280);
    for (const e of entries) {
      const line = JSON.parse(e.line) as Record<string, unknown>;
      if (e.labels['host'] === undefined) assert.match(String(line['host']), /^host-/, 'an over-budget host stays in the line');
      assert.equal(e.labels['source'], 'edge-01');
    }
  });

  test('week-old backlog: older than LOKI_MAX_AGE_HOURS is skipped and counted, six days old is stored', T, async () => {
    const r = await rig();
    const tooOld = eventsAt(8 * DAY, 40, 0);
    const sixDays = eventsAt(6 * DAY, 40, 1000);
    const outcome = await send(r.sink, [...tooOld, ...sixDays]);
    assert.deepEqual(outcome, { kind: 'delivered', written: 80, duplicates: 0 });
    assert.equal(r.sink.counters.skippedTooOld, 40);
    const stored = entriesById(r.standin.entries());
    assert.equal(stored.size, 40);
    for (const e of sixDays) assert.ok(stored.has(e.id));
  });

  test('a line over LOKI_MAX_LINE_BYTES is cut and ends with the marker', T, async () => {
    const r = await rig({ maxLineBytes: 2048 });
    const long = 'x'.repeat(10_000);
    const data = { message: long };
    const event = makeEvent(1, { timeMs: NOW - HOUR, data, dataJson: JSON.stringify(data), message: long });
    assert.equal((await send(r.sink, [event])).kind, 'delivered');
    const [entry] = r.standin.entries();
    assert.ok(entry !== undefined);
    assert.ok(Buffer.byteLength(entry.line) <= 2048);
    assert.ok(entry.line.includes(TRUNCATION_MARKER));
    assert.equal(r.sink.counters.truncatedLines, 1);
  });

  test('Loki refuses lines over its own limit: only that entry is refused', T, async () => {
    const r = await rig({ maxLineBytes: 8192 }, { maxLineBytes: 1024 });
    const events = eventsAt(HOUR, 5);
    const long = { message: 'y'.repeat(3000), host: 'edge-01' };
    events[2] = { ...(events[2] as IngestEvent), data: long, dataJson: JSON.stringify(long), message: long.message };
    const outcome = await send(r.sink, events);
    assert.ok(outcome.kind === 'delivered');
    assert.deepEqual(outcome.rejected?.map((x) => [x.position, x.error.code]), [[2, 'loki_line_too_long']]);
    assert.equal(outcome.written, 4);
    assert.equal(r.standin.entries().length, 4);
  });

  test('a mixed batch with an entry too far in the future: that entry alone is refused, the rest stored', T, async () => {
    const r = await rig();
    const events = eventsAt(HOUR, 10);
    events[6] = { ...(events[6] as IngestEvent), timeMs: NOW + DAY };
    const outcome = await send(r.sink, events);
    assert.ok(outcome.kind === 'delivered');
    assert.equal(outcome.written, 9);
    assert.deepEqual(outcome.rejected?.map((x) => x.position), [6]);
    assert.equal(outcome.rejected?.[0]?.error.code, 'loki_entry_too_new');
    assert.match(outcome.rejected?.[0]?.error.message ?? '', /too new/);
    assert.equal(r.standin.entries().length, 9);
    assert.equal(r.sink.counters.entriesRefused, 1);
  });

  test('an entry far behind its stream (ingester answer) is refused alone', T, async () => {
    const r = await rig();
    assert.equal((await send(r.sink, eventsAt(HOUR, 3))).kind, 'delivered');
    const late = eventsAt(4 * HOUR, 2, 100);
    const fresh = eventsAt(HOUR / 2, 2, 200);
    const outcome = await send(r.sink, [...fresh, ...late]);
    assert.ok(outcome.kind === 'delivered');
    assert.deepEqual(outcome.rejected?.map((x) => [x.position, x.error.code]), [[2, 'loki_entry_out_of_order'], [3, 'loki_entry_out_of_order']]);
    assert.equal(r.standin.entries().length, 5);
  });

  test('a 400 naming nothing we can match: the push is split until each refused entry is known', T, async () => {
    const r = await rig();
    r.standin.faults.push({ kind: 'status', status: 400, body: 'couldn\'t parse push request: something odd' });
    const events = eventsAt(HOUR, 8);
    const outcome = await send(r.sink, events);
    assert.deepEqual(outcome, { kind: 'delivered', written: 8, duplicates: 0 });
    assert.equal(r.standin.entries().length, 8);
    assert.ok(r.sink.counters.splitPushes >= 1);
    r.standin.faults.push(...Array.from({ length: 20 }, () => ({ kind: 'status' as const, status: 400, body: 'garbage' })));
    const single = await send(r.sink, eventsAt(HOUR, 1, 50));
    assert.ok(single.kind === 'delivered');
    assert.deepEqual(single.rejected?.map((x) => [x.position, x.error.code]), [[0, 'loki_rejected']]);
  });

  test('413: the push is halved until it fits; a single entry too large is refused', T, async () => {
    const r = await rig({}, { maxBodyBytes: 1500 });
    const noise = (): string => Array.from({ length: 6 }, () => Math.random().toString(36).slice(2)).join('');
    const events = eventsAt(HOUR, 40).map((e) => {
      const data = { ...e.data, noise: noise() };
      return { ...e, data, dataJson: JSON.stringify(data) };
    });
    const outcome = await send(r.sink, events);
    assert.deepEqual(outcome, { kind: 'delivered', written: 40, duplicates: 0 });
    assert.equal(r.standin.entries().length, 40);
    assert.ok(r.standin.pushes().some((p) => p.status === 413));
    const big = { message: Array.from({ length: 300 }, noise).join('') };
    const huge = makeEvent(99, { timeMs: NOW - HOUR, data: big, dataJson: JSON.stringify(big) });
    const alone = await send(r.sink, [huge]);
    assert.ok(alone.kind === 'delivered');
    assert.equal(alone.rejected?.[0]?.error.code, 'loki_payload_too_large');
  });

  test('429 with Retry-After, 5xx, resets, timeouts and outages are retryable', T, async () => {
    const r = await rig({ timeoutMs: 600 });
    const events = eventsAt(HOUR, 3);
    r.standin.faults.push({ kind: 'status', status: 429, retryAfter: '7' });
    const limited = await send(r.sink, events);
    assert.ok(limited.kind === 'retryable');
    assert.equal(limited.retryAfterMs, 7000);
    assert.equal(limited.error.code, 'sink_rate_limited');

    r.standin.faults.push({ kind: 'status', status: 503, retryAfter: new Date(NOW + 30_000).toUTCString() });
    const unavailable = await send(r.sink, events);
    assert.ok(unavailable.kind === 'retryable');
    assert.equal(unavailable.retryAfterMs, 30_000);

    r.standin.faults.push({ kind: 'status', status: 500 });
    assert.equal((await send(r.sink, events)).kind, 'retryable');

    r.standin.faults.push({ kind: 'reset' });
    const reset = await send(r.sink, events);
    assert.ok(reset.kind === 'retryable');
    assert.equal(reset.error.code, 'sink_unavailable');

    r.standin.faults.push({ kind: 'delay', ms: 1500 });
    const slow = await send(r.sink, events);
    assert.ok(slow.kind === 'retryable');
    assert.equal(slow.error.code, 'sink_timeout');

    await r.standin.down();
    const down = await send(r.sink, events);
    assert.ok(down.kind === 'retryable');
    assert.match(down.error.message, /unreachable/);
    const health = await r.sink.healthcheck(AbortSignal.timeout(2000));
    assert.equal(health.healthy, false);
    await r.standin.up();

    // The first push after an outage may still meet a connection cut during it (a retryable
    // socket error); the worker would simply retry, and so does this test.
    let after = await send(r.sink, events);
    for (let i = 0; i < 5 && after.kind === 'retryable'; i++) after = await send(r.sink, events);
    assert.deepEqual(after, { kind: 'delivered', written: 3, duplicates: 0 });
    // whatever the abandoned pushes left behind, resends are exact duplicates: three entries in all
    assert.equal(r.standin.entries().length, 3);
    assert.equal(r.sink.counters.rateLimited, 1);
  });

  test('501 and other 4xx are refused for good', T, async () => {
    const r = await rig();
    r.standin.faults.push({ kind: 'status', status: 501, body: 'not implemented' });
    const outcome = await send(r.sink, eventsAt(HOUR, 2));
    assert.ok(outcome.kind === 'delivered');
    assert.deepEqual(outcome.rejected?.map((x) => x.error.code), ['loki_rejected', 'loki_rejected']);
    assert.match(outcome.rejected?.[0]?.error.message ?? '', /501: not implemented/);
  });

  test('a send over LOKI_BATCH_SIZE / LOKI_BATCH_MAX_BYTES is split; entries are time-ordered per stream', T, async () => {
    const r = await rig({ batchSize: 10, batchMaxBytes: 2048 });
    const events = eventsAt(HOUR, 45).reverse();
    assert.equal((await send(r.sink, events)).kind, 'delivered');
    const pushes = r.standin.pushes();
    assert.ok(pushes.length >= 5);
    assert.ok(pushes.every((p) => p.entries <= 10 && p.bytes <= 2048 + 1024));
    const ts = r.standin.entries().map((e) => e.tsNs);
    assert.deepEqual(ts, [...ts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  });

  test('the same events twice are stored once (Loki drops exact duplicates)', T, async () => {
    const r = await rig();
    const events = eventsAt(HOUR, 20);
    await send(r.sink, events);
    // A replay (after a restart, or a node retrying): equal events, new objects, pushed again.
    const replay = events.map((e) => ({ ...e }));
    assert.deepEqual(await send(r.sink, replay), { kind: 'delivered', written: 20, duplicates: 0 });
    await send(r.sink, replay.slice(5, 12).map((e) => ({ ...e })));
    assert.equal(r.standin.pushes().length, 3);
    assert.equal(r.standin.entries().length, 20);
  });

  test('a retry resumes where the last attempt stopped: stored pushes are not sent again', T, async () => {
    const r = await rig({ batchSize: 10 });
    const events = eventsAt(HOUR, 30);
    r.standin.faults.push({ kind: 'none' }, { kind: 'status', status: 429 });
    assert.equal((await send(r.sink, events)).kind, 'retryable');
    assert.equal(r.standin.entries().length, 10);
    assert.deepEqual(await send(r.sink, events), { kind: 'delivered', written: 30, duplicates: 0 });
    assert.deepEqual(r.standin.pushes().map((p) => [p.entries, p.status]), [[10, 204], [0, 429], [10, 204], [10, 204]]);
    assert.equal(r.standin.entries().length, 30);
    // once settled, the same events need no push at all
    await send(r.sink, events);
    assert.equal(r.standin.pushes().length, 4);
  });

  test('identical messages in one batch stay two entries (their ids differ)', T, async () => {
    const r = await rig();
    const twice = eventsOf(envelope([{ message: 'same', timestamp: '2025-08-22T17:00:00Z' }, { message: 'same', timestamp: '2025-08-22T17:00:00Z' }], 'edge-x'), NOW);
    await send(r.sink, twice);
    assert.equal(r.standin.entries().length, 2);
  });

  for (const encoding of ['protobuf', 'json'] as const) {
    test(`structured metadata is sent and kept (${encoding})`, T, async () => {
      const r = await rig({ encoding, structuredMetadata: ['trace_id', 'pid'] });
      const data = { message: 'hello', trace_id: 'abc123', pid: 42 };
      const event = makeEvent(1, { timeMs: NOW - HOUR, data, dataJson: JSON.stringify(data) });
      assert.equal((await send(r.sink, [event])).kind, 'delivered');
      const [entry] = r.standin.entries();
      // detected_level: added by Loki 3 from the severity label
      assert.deepEqual(entry?.metadata, { trace_id: 'abc123', pid: '42', detected_level: 'info' });
      const line = JSON.parse(entry?.line ?? '{}') as Record<string, unknown>;
      assert.equal(line['trace_id'], undefined);
      assert.equal(line['message'], 'hello');
    });
  }

  test('message line format', T, async () => {
    const r = await rig({ lineFormat: 'message' });
    await send(r.sink, eventsAt(HOUR, 2));
    assert.deepEqual(r.standin.entries().map((e) => e.line).sort(), ['event 0', 'event 1']);
  });

  test('health follows /ready; shutdown is idempotent and stops sends', T, async () => {
    const r = await rig();
    assert.deepEqual(await r.sink.healthcheck(AbortSignal.timeout(2000)), { healthy: true });
    r.standin.ready = false;
    const unready = await r.sink.healthcheck(AbortSignal.timeout(2000));
    assert.equal(unready.healthy, false);
    assert.match(unready.reason ?? '', /503/);
    const before = r.standin.requests.filter((q) => q.path === '/ready').length;
    await Promise.all([r.sink.shutdown(), r.sink.shutdown()]);
    await r.sink.shutdown();
    assert.deepEqual(await r.sink.healthcheck(AbortSignal.timeout(2000)), { healthy: false, reason: 'shut down' });
    assert.equal(r.standin.requests.filter((q) => q.path === '/ready').length, before);
    assert.equal((await send(r.sink, eventsAt(HOUR, 1))).kind, 'retryable');
    await assert.rejects(r.sink.start(AbortSignal.timeout(1000)));
  });
});
