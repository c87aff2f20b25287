/**
 * The Loki sink against the stand-in and against a real Grafana Loki (TEST_LOKI_URL; skipped
 * without it), on the real clock: what a real Loki can be made to do on demand — samples in both
 * encodings, resends, the label allow-list and value budget, ordering, Loki's refusals (too old,
 * too new, line and metadata limits, entries too far behind that Loki drops without saying so),
 * its rate limit. Faults a real Loki cannot produce on demand (5xx, resets, outages, 413) are in
 * loki-sink.test.ts, against the stand-in. Each test writes under a source of its own.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LokiConfig } from '../../src/config/config.js';
import type { IngestEvent } from '../../src/pipeline/event.js';
import { parseEnvelope } from '../../src/pipeline/envelope.js';
import { normalizeBatch } from '../../src/pipeline/normalize.js';
import { formatEpochNanos } from '../../src/pipeline/time.js';
import { createLokiSink, type LokiSink } from '../../src/sinks/loki/sink.js';
import { batchOf, type SendOutcome } from '../../src/sinks/sink.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { cleanupsAfterEach } from '../helpers/cleanups.js';
import { makeEvent } from '../helpers/events.js';
import { labelNames, labelValues, lokiTargets, realLoki, selectorOf, uniqueName, type LokiTarget, type SeenEntry } from '../helpers/loki-real.js';
import { DAY, entriesById, HOUR, LOKI_TEST, lokiConfigFor } from '../helpers/loki-standin.js';
import { envelope, jsonlMessages, payloadSamples, weatherMessages } from '../helpers/samples.js';

const T = LOKI_TEST;

const cleanups = cleanupsAfterEach();
const real = await realLoki();
const targets = lokiTargets(real);

const send = (sink: LokiSink, events: readonly IngestEvent[]): Promise<SendOutcome> => sink.send(batchOf(events), AbortSignal.timeout(20_000));

function eventsOf(body: unknown, receivedAtMs: number): IngestEvent[] {
  const batch = normalizeBatch(parseEnvelope(body, { maxMessagesPerBatch: 100_000 }), { receivedAtMs, idempotencyKey: null, maxJsonDepth: 64 });
  assert.equal(batch.rejected.length, 0);
  return batch.events;
}

/**
 * Events moved in time so that the newest is at `newestMs`, and their span squeezed into
 * `maxSpanMs` (order kept): Loki refuses week-old data, and a real Loki's queries read the
 * ingesters for the last 3 hours only (query_ingesters_within), so older entries cannot be read
 * back until they are flushed.
 */
function movedTo(events: readonly IngestEvent[], newestMs: number, maxSpanMs = 2 * HOUR): IngestEvent[] {
  const newest = Math.max(...events.map((e) => e.timeMs));
  const span = newest - Math.min(...events.map((e) => e.timeMs));
  const scale = span > maxSpanMs ? maxSpanMs / span : 1;
  return events.map((e) => ({ ...e, timeMs: newestMs - Math.round((newest - e.timeMs) * scale) }));
}

/** `count` events on `source`, `ageMs` old (+ i ms), each with its own line. */
function recentOn(source: string, count: number, ageMs: number, from = 0, extra: Record<string, unknown> = {}): IngestEvent[] {
  const now = Date.now();
  return Array.from({ length: count }, (_, i) => {
    const n = from + i;
    const data = { message: `event ${n}`, host: 'edge-01', seq: n, ...extra };
    return makeEvent(n, { id: `${source}-${n}`, timeMs: now - ageMs + i, timeNanos: 1000 * (i % 1000), receivedAtMs: now, source, data, dataJson: JSON.stringify(data), message: `event ${n}` });
  });
}

/** Every event exactly once, at its exact time, with the labels the policy gives it (and what Loki 3 adds). */
function assertSeen(entries: readonly SeenEntry[], events: readonly IngestEvent[]): void {
  const seen = entriesById(entries);
  assert.equal(entries.length, events.length, 'one entry per event');
  for (const event of events) {
    const found = seen.get(event.id);
    assert.ok(found !== undefined && found.length === 1, `event ${event.id} stored exactly once`);
    const entry = found[0] as SeenEntry;
    assert.equal(entry.tsNs, BigInt(formatEpochNanos(event.timeMs, event.timeNanos)), 'exact time to the ns');
    const expected: Record<string, string> = { source: event.source ?? 'unknown', job: 'edgebot' };
    for (const name of ['type', 'service', 'severity', 'host'] as const) if (event[name] !== null) expected[name] = event[name];
    expected['service_name'] = event.service ?? 'edgebot'; // Loki 3: from service, else job
    assert.deepEqual(entry.labels, expected, `labels of ${event.id}`);
    if (event.severity !== null) assert.equal(entry.metadata['detected_level'], event.severity, 'Loki 3 takes the level from the severity label');
    else assert.equal(typeof entry.metadata['detected_level'], 'string');
    const line = JSON.parse(entry.line) as Record<string, unknown>;
    for (const [key, value] of Object.entries(event.data)) {
      if (typeof value === 'string' && entry.labels[key] === value) assert.equal(line[key], undefined, `${key} is carried by its label`);
      else assert.deepEqual(line[key], value, `${key} of ${event.id} is in the line`);
    }
  }
}

const around = (events: readonly IngestEvent[]): { startMs: number; endMs: number } => ({
  startMs: Math.min(...events.map((e) => e.timeMs)) - 1000,
  endMs: Math.max(...events.map((e) => e.timeMs)) + 1000,
});

for (const target of targets) {
  describe(`Loki sink against ${target.name}`, { skip: target.skip }, () => {
    async function sinkFor(t: LokiTarget, overrides: Partial<LokiConfig> = {}): Promise<LokiSink> {
      const config = lokiConfigFor(t.url(), { staticLabels: { job: 'edgebot' }, timeoutMs: 10_000, ...overrides });
      const sink = createLokiSink(config, silentLogger());
      cleanups.push(() => sink.shutdown());
      await sink.start(AbortSignal.timeout(5000));
      return sink;
    }

    for (const encoding of ['protobuf', 'json'] as const) {
      test(`every sample lands once, with its labels, line, exact time and Loki's additions (${encoding})`, T, async () => {
        const sink = await sinkFor(target, { encoding });
        const run = uniqueName(`samples-${encoding}`);
        const now = Date.now();
        const payloads = payloadSamples().flatMap((p, i) => movedTo(eventsOf(envelope(p.body.messages, `${run}-payload`, { timestamp: p.body['timestamp'] }), now), now - HOUR + i));
        const syslog = movedTo(eventsOf(envelope(jsonlMessages('syslog_events.jsonl'), `${run}-syslog`), now), now - HOUR / 2);
        const snmp = movedTo(eventsOf(envelope(jsonlMessages('snmp_metrics.jsonl'), `${run}-snmp`), now), now - 10 * 60_000); // 14 hours of readings, in 2
        const weather = movedTo(eventsOf(envelope(weatherMessages(), `${run}-weather`), now), now - 5 * 60_000);
        const all = [...payloads, ...syslog, ...snmp, ...weather];
        assert.deepEqual(await send(sink, all), { kind: 'delivered', written: all.length, duplicates: 0 });
        for (const events of [payloads, syslog, snmp, weather]) {
          const source = events[0]?.source ?? '';
          assertSeen(await target.read({ source }, around(events), events.length), events);
        }
        const nginx = (await target.read({ source: `${run}-syslog` }, around(syslog))).find((e) => e.line.includes('GET /api/status'));
        assert.equal(nginx?.labels['severity'], 'info');
        assert.equal((JSON.parse(nginx?.line ?? '{}') as Record<string, unknown>)['severity'], 6);
      });
    }

    test('the same events again (new objects, as after a restart or a node retrying) add no entry', T, async () => {
      const sink = await sinkFor(target);
      const source = uniqueName('resend');
      const events = recentOn(source, 30, HOUR / 2);
      assert.deepEqual(await send(sink, events), { kind: 'delivered', written: 30, duplicates: 0 });
      assert.deepEqual(await send(sink, events.map((e) => ({ ...e }))), { kind: 'delivered', written: 30, duplicates: 0 });
      const again = await sinkFor(target); // another process: knows nothing of the first
      assert.deepEqual(await send(again, events.slice(5, 20).map((e) => ({ ...e }))), { kind: 'delivered', written: 15, duplicates: 0 });
      assertSeen(await target.read({ source }, around(events), 30), events);
    });

    test('labels come from the allow-list only; new values past LOKI_MAX_LABEL_VALUES stay in the line', T, async () => {
      const sink = await sinkFor(target, { labels: ['source', 'host'], maxLabelValues: 5 });
      const source = uniqueName('budget');
      const events = recentOn(source, 30, HOUR / 2).map((e, i) => {
        const host = `host-${i}`;
        const data = { ...e.data, host };
        return { ...e, host, data, dataJson: JSON.stringify(data) };
      });
      assert.deepEqual(await send(sink, events), { kind: 'delivered', written: 30, duplicates: 0 });
      const entries = await target.read({ source }, around(events), 30);
      assert.equal(entries.length, 30);
      for (const e of entries) {
        assert.deepEqual(Object.keys(e.labels).sort(), e.labels['host'] === undefined ? ['job', 'service_name', 'source'] : ['host', 'job', 'service_name', 'source']);
        if (e.labels['host'] === undefined) assert.match(String((JSON.parse(e.line) as Record<string, unknown>)['host']), /^host-/, 'an over-budget host stays in the line');
      }
      assert.equal(new Set(entries.map((e) => e.labels['host']).filter((h) => h !== undefined)).size, 5);
      assert.equal(sink.counters.overBudget['host'], 25);
      if (target.standin() === null) {
        const range = around(events);
        assert.deepEqual(await labelNames(real.url, range, selectorOf({ source })), ['host', 'job', 'service_name', 'source']);
        assert.deepEqual(await labelValues(real.url, 'host', range, selectorOf({ source })), ['host-0', 'host-1', 'host-2', 'host-3', 'host-4']);
      }
    });

    test('twenty label fields and odd field names: at most 15 labels, all valid, so Loki takes them', T, async () => {
      const fields = Array.from({ length: 17 }, (_, i) => `f${i}`);
      const sink = await sinkFor(target, { labels: ['source', 'source-ip', '1st', 'a.b', ...fields] });
      const source = uniqueName('many-labels');
      const extra: Record<string, unknown> = { 'source-ip': '10.0.0.1', '1st': 'yes', 'a.b': 'dot' };
      for (const f of fields) extra[f] = `v-${f}`;
      const events = recentOn(source, 3, HOUR / 2, 0, extra);
      assert.deepEqual(await send(sink, events), { kind: 'delivered', written: 3, duplicates: 0 });
      const entries = await target.read({ source }, around(events), 3);
      assert.equal(entries.length, 3);
      const names = Object.keys(entries[0]?.labels ?? {}).filter((n) => n !== 'service_name');
      assert.equal(names.length, 15);
      for (const name of ['source', 'job', 'source_ip', '_1st', 'a_b']) assert.ok(names.includes(name), `${name} is a label`);
      assert.ok(names.every((n) => /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(n) && !n.startsWith('__')));
    });

    test('a send in reverse time order spanning two hours: the sink sorts it, every entry is taken', T, async () => {
      const sink = await sinkFor(target, { batchSize: 10 });
      const source = uniqueName('sorted');
      const events = recentOn(source, 40, 2 * HOUR).map((e, i) => ({ ...e, timeMs: e.timeMs + i * 3 * 60_000 })).reverse();
      assert.deepEqual(await send(sink, events), { kind: 'delivered', written: 40, duplicates: 0 });
      const entries = await target.read({ source }, around(events), 40);
      assertSeen(entries, events);
      const standin = target.standin();
      if (standin !== null) {
        const mine = standin.entries().filter((e) => e.labels['source'] === source).map((e) => e.tsNs);
        assert.deepEqual(mine, [...mine].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), 'pushed oldest first');
      }
    });

    test('Loki refuses entries too old, too new, with lines or metadata over its limits: those alone, with their codes', T, async () => {
      const sink = await sinkFor(target, { maxAgeMs: 0, maxLineBytes: 512 * 1024, structuredMetadata: Array.from({ length: 130 }, (_, i) => `m${i}`) });
      const source = uniqueName('refused');
      const events = recentOn(source, 10, HOUR / 2);
      const at = (i: number): IngestEvent => events[i] as IngestEvent;
      events[1] = { ...at(1), timeMs: Date.now() - 8 * DAY };
      events[2] = { ...at(2), timeMs: Date.now() - 8 * DAY - 1 };
      events[4] = { ...at(4), timeMs: Date.now() + DAY };
      const long = { message: 'l'.repeat(300_000) };
      events[6] = { ...at(6), data: long, dataJson: JSON.stringify(long), message: long.message };
      const meta: Record<string, unknown> = { message: 'meta' };
      for (let i = 0; i < 130; i++) meta[`m${i}`] = `v${i}`;
      events[8] = { ...at(8), data: meta, dataJson: JSON.stringify(meta), message: 'meta' };
      const outcome = await send(sink, events);
      assert.ok(outcome.kind === 'delivered');
      assert.equal(outcome.written, 5);
      const rejected = new Map(outcome.rejected?.map((r) => [r.position, r.error]));
      assert.deepEqual([...rejected.entries()].map(([p, e]) => [p, e.code]).sort((a, b) => Number(a[0]) - Number(b[0])), [
        [1, 'loki_entry_too_old'],
        [2, 'loki_entry_too_old'],
        [4, 'loki_entry_too_new'],
        [6, 'loki_line_too_long'],
        [8, 'loki_structured_metadata'],
      ]);
      assert.match(rejected.get(1)?.message ?? '', /^loki refused the entry: entry for stream '\{.*source=".*"\}' has timestamp too old: \S+, oldest acceptable timestamp is: \S+$/);
      assert.match(rejected.get(4)?.message ?? '', /has timestamp too new: /);
      assert.match(rejected.get(6)?.message ?? '', /Max entry size '262144' bytes exceeded for stream '.*' while adding an entry with length '3\d{5}' bytes/);
      assert.match(rejected.get(8)?.message ?? '', /has too many structured metadata labels: '130', limit: '128'/);
      const stored = await target.read({ source }, { startMs: Date.now() - 9 * DAY, endMs: Date.now() + 2 * DAY }, 5);
      assert.deepEqual([...entriesById(stored).keys()].sort(), [0, 3, 5, 7, 9].map((i) => at(i).id).sort());
      assert.equal(sink.counters.entriesRefused, 5);
    });

    test('entries Loki drops as too far behind while answering for another stream or problem are refused, not lost', T, async () => {
      // Loki 3.4.6 reports the ingester's refusals for the last stream of a push only (a push
      // whose last stream went in is answered 204), and its refusals hide the distributor's:
      // entries more than an hour behind their stream must go in pushes of their own, and the
      // rest of a 400 must be confirmed.
      const sink = await sinkFor(target, { maxLineBytes: 512 * 1024 });
      const run = uniqueName('behind');
      const [a, b, c] = [`${run}-a`, `${run}-b`, `${run}-c`];
      assert.equal((await send(sink, [...recentOn(a, 1, 60_000), ...recentOn(b, 1, 2 * HOUR)])).kind, 'delivered');
      const lateA = recentOn(a, 2, 100 * 60_000, 100);
      const [longA] = recentOn(a, 1, 100 * 60_000 - 5, 200).map((e) => {
        const data = { message: 'l'.repeat(300_000) };
        return { ...e, data, dataJson: JSON.stringify(data), message: data.message };
      });
      const freshB = recentOn(b, 1, 99 * 60_000, 100);
      const newC = recentOn(c, 1, 98 * 60_000, 100);
      assert.ok(longA !== undefined);
      const events = [...freshB, ...lateA, longA, ...newC];
      const outcome = await send(sink, events);
      assert.ok(outcome.kind === 'delivered');
      const refused = (outcome.rejected ?? []).map((r) => [events[r.position]?.id, r.error.code]);
      assert.deepEqual(refused.sort(), [...lateA.map((e) => [e.id, 'loki_entry_out_of_order']), [longA.id, 'loki_line_too_long']].sort());
      assert.equal(outcome.written, 2);
      const range = { startMs: Date.now() - 2 * HOUR - 60_000, endMs: Date.now() };
      assert.equal((await target.read({ source: a }, range, 1)).length, 1);
      assert.equal((await target.read({ source: b }, range, 2)).length, 2);
      assert.equal((await target.read({ source: c }, range, 1)).length, 1);
    });

    test('a push over Loki\'s ingestion burst gets a 429: retryable, nothing stored, no Retry-After', T, async () => {
      const sink = await sinkFor(target, { batchMaxBytes: 16 * 1024 * 1024, maxLineBytes: 256 * 1024 });
      const source = uniqueName('burst');
      const events = recentOn(source, 28, HOUR / 2).map((e, i) => {
        const data = { message: String(i).padEnd(250_000, 'r') };
        return { ...e, data, dataJson: JSON.stringify(data), message: data.message };
      });
      const outcome = await send(sink, events);
      assert.ok(outcome.kind === 'retryable');
      assert.equal(outcome.error.code, 'sink_rate_limited');
      assert.equal(outcome.retryAfterMs, undefined);
      assert.match(outcome.error.message, /^loki answered 429: Ingestion rate limit exceeded for user fake/);
      assert.deepEqual(await target.read({ source }, around(events)), []);
      assert.deepEqual(await send(sink, events.slice(0, 2)), { kind: 'delivered', written: 2, duplicates: 0 });
    });

    for (const encoding of ['protobuf', 'json'] as const) {
      test(`structured metadata is stored apart from the line (${encoding}); message lines`, T, async () => {
        const sink = await sinkFor(target, { encoding, structuredMetadata: ['trace_id', 'pid'] });
        const source = uniqueName(`metadata-${encoding}`);
        const data = { message: 'hello', trace_id: 'abc123', pid: 42 };
        const [event] = recentOn(source, 1, HOUR / 2);
        assert.ok(event !== undefined);
        assert.equal((await send(sink, [{ ...event, data, dataJson: JSON.stringify(data) }])).kind, 'delivered');
        const [entry] = await target.read({ source }, around([event]), 1);
        assert.deepEqual(entry?.metadata, { trace_id: 'abc123', pid: '42', detected_level: 'info' });
        assert.deepEqual(JSON.parse(entry?.line ?? '{}'), { message: 'hello', _id: event.id });
        const plain = await sinkFor(target, { encoding, lineFormat: 'message' });
        const more = recentOn(`${source}-m`, 2, HOUR / 2);
        assert.equal((await send(plain, more)).kind, 'delivered');
        assert.deepEqual((await target.read({ source: `${source}-m` }, around(more), 2)).map((e) => e.line), ['event 0', 'event 1']);
      });
    }
  });
}
