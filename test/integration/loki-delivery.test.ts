import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { LokiConfig } from '../../src/config/config.js';
import { DeadLetterStore } from '../../src/deadletter/store.js';
import { SinkWorker } from '../../src/delivery/sink-worker.js';
import type { IngestEvent } from '../../src/pipeline/event.js';
import { parseEnvelope } from '../../src/pipeline/envelope.js';
import { normalizeBatch } from '../../src/pipeline/normalize.js';
import { createLokiSink, type LokiSink } from '../../src/sinks/loki/sink.js';
import type { SendBatch, SendOutcome } from '../../src/sinks/sink.js';
import { Spool } from '../../src/spool/spool.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { makeEvent, tempDir } from '../helpers/events.js';
import { DAY, HOUR, idOf, LOKI_TEST, LokiStandin, lokiConfigFor, type StandinOptions } from '../helpers/loki-standin.js';
import { cleanupsAfterEach } from '../helpers/cleanups.js';
import { lokiTargets, realLoki, uniqueName, type SeenEntry } from '../helpers/loki-real.js';
import { envelope, jsonlMessages, payloadSamples, weatherMessages } from '../helpers/samples.js';

const T = LOKI_TEST;

const cleanups = cleanupsAfterEach();
const real = await realLoki();
const targets = lokiTargets(real);

interface Rig {
  standin: LokiStandin;
  sink: LokiSink;
  spool: Spool;
  worker: SinkWorker;
  deadLetters: DeadLetterStore;
  /** Every outcome the worker got from the sink. */
  outcomes: SendOutcome[];
}

/**
 * The real delivery path: Spool → SinkWorker (coalescing as recommended for Loki) → Loki sink →
 * stand-in. Real time throughout (the worker's circuit breaker and backoff run on it); nothing
 * here asserts on durations.
 */
async function rig(overrides: Partial<LokiConfig> = {}, standinOptions: StandinOptions = {}, sinkNow?: () => number): Promise<Rig> {
  const standin = await LokiStandin.start(standinOptions);
  cleanups.push(() => standin.close());
  return { ...(await rigAt(standin.url, overrides, sinkNow)), standin };
}

/** The delivery path of `rig`, towards the Loki at `url` (the stand-in, or a real one). */
async function rigAt(url: string, overrides: Partial<LokiConfig> = {}, sinkNow?: () => number): Promise<Omit<Rig, 'standin'>> {
  const { dir, remove } = await tempDir('loki-delivery-');
  cleanups.push(remove);
  const logger = silentLogger();
  const config = lokiConfigFor(url, { staticLabels: { job: 'edgebot' }, timeoutMs: 1000, batchTimeoutMs: 20, ...overrides });
  const loki = createLokiSink(config, logger, sinkNow === undefined ? {} : { now: sinkNow });
  cleanups.push(() => loki.shutdown());
  const outcomes: SendOutcome[] = [];
  const sink: LokiSink = Object.assign(Object.create(loki) as LokiSink, {
    async send(batch: SendBatch, signal: AbortSignal) {
      const outcome = await loki.send(batch, signal);
      outcomes.push(outcome);
      return outcome;
    },
  });
  const spool = await Spool.open({ dir: path.join(dir, 'spool'), maxBytes: 64 * 1024 * 1024, segmentBytes: 1024 * 1024, fsync: false, memoryBytes: 4 * 1024 * 1024, cacheEvents: true, sinks: ['loki'], logger, now: Date.now });
  // Spool.close can race its own timed cursor write (both rename cursor.<sink>.json.tmp; the
  // loser gets ENOENT): not this suite's subject, and harmless here, so that one error is ignored.
  cleanups.push(() => spool.close().catch((err: unknown) => {
    if (!((err as NodeJS.ErrnoException).code === 'ENOENT' && /cursor\.loki\.json\.tmp/.test(String((err as Error).message)))) throw err;
  }));
  const deadLetters = await DeadLetterStore.open(path.join(dir, 'deadletters'), 16 * 1024 * 1024, ['loki'], logger);
  const worker = new SinkWorker(sink, spool, deadLetters, logger, {
    window: 1,
    retryBudgetMs: 7 * DAY,
    backoff: { baseMs: 5, maxMs: 50 },
    circuit: { failureThreshold: 3, openMs: 20, maxOpenMs: 100 },
    now: Date.now,
    random: Math.random,
    coalesce: { maxEvents: config.batchSize, maxWaitMs: config.batchTimeoutMs },
  });
  cleanups.push(() => worker.drainAndStop(0));
  await loki.start(AbortSignal.timeout(5000));
  worker.start();
  return { sink: loki, spool, worker, deadLetters, outcomes };
}

async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function eventsOf(body: unknown, receivedAtMs = Date.now()): IngestEvent[] {
  return normalizeBatch(parseEnvelope(body, { maxMessagesPerBatch: 100_000 }), { receivedAtMs, idempotencyKey: null, maxJsonDepth: 64 }).events;
}

/** `count` events `ageMs` old on node `source`, with distinct ids from `from` on. */
function recent(from: number, count: number, ageMs = HOUR, source = 'edge-01'): IngestEvent[] {
  const now = Date.now();
  return Array.from({ length: count }, (_, i) => {
    const n = from + i;
    const data = { message: `event ${n}`, host: 'edge-01', seq: n };
    return makeEvent(n, { timeMs: now - ageMs + i, timeNanos: 123, receivedAtMs: now, source, data, dataJson: JSON.stringify(data), message: `event ${n}` });
  });
}

function countsById(r: Rig): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of r.standin.entries()) {
    const id = idOf(e);
    assert.ok(id !== null);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

function assertExactlyOnce(r: Rig, events: readonly IngestEvent[]): void {
  const counts = countsById(r);
  assert.equal(counts.size, events.length, 'as many stored events as sent');
  for (const e of events) assert.equal(counts.get(e.id), 1, `event ${e.id} stored exactly once`);
}

describe('Loki sink driven by the SinkWorker', () => {
  for (const encoding of ['protobuf', 'json'] as const) {
    test(`all samples go through the spool into Loki, each once, with their labels (${encoding})`, T, async () => {
      // The samples are from 2024 and 2025: no age limit here, on either side.
      const r = await rig({ encoding, maxAgeMs: 0 }, { maxAgeMs: null });
      const events = [
        ...payloadSamples().flatMap((s) => eventsOf(s.body)),
        ...eventsOf(envelope(jsonlMessages('syslog_events.jsonl'), 'edge-lab')),
        ...eventsOf(envelope(jsonlMessages('snmp_metrics.jsonl'), 'edge-lab')),
        ...eventsOf(envelope(weatherMessages(), 'edge-weather')),
      ];
      let last = 0;
      for (let i = 0; i < events.length; i += 250) last = await r.spool.append(events.slice(i, i + 250));
      await until(() => r.spool.ackedSeq('loki') === last, 'the spool drained');
      assertExactlyOnce(r, events);
      assert.equal(r.deadLetters.count('loki'), 0);
      const byId = new Map(r.standin.entries().map((e) => [idOf(e), e]));
      for (const event of events) {
        const entry = byId.get(event.id);
        assert.ok(entry !== undefined);
        assert.equal(entry.labels['source'], event.source ?? 'unknown');
        assert.equal(entry.labels['type'], event.type ?? undefined);
        assert.equal(entry.labels['host'], event.host ?? undefined);
        assert.equal(entry.labels['severity'], event.severity ?? undefined);
        assert.equal(entry.labels['job'], 'edgebot');
      }
      const sources = new Set(r.standin.streams().map((s) => s.labels['source']));
      assert.deepEqual([...sources].sort(), ['edge-lab', 'edge-weather', 'edgebot']);
    });
  }

  test('a 429 storm: everything is delivered once it passes, after the Retry-After asked for', T, async () => {
    const r = await rig();
    r.standin.faults.push(...Array.from({ length: 4 }, () => ({ kind: 'status' as const, status: 429, retryAfter: '0.2' })));
    const events = recent(0, 200);
    let last = 0;
    for (let i = 0; i < events.length; i += 20) last = await r.spool.append(events.slice(i, i + 20));
    await until(() => r.spool.ackedSeq('loki') === last, 'the storm passed and the spool drained');
    assertExactlyOnce(r, events);
    assert.equal(r.standin.pushes().filter((p) => p.status === 429).length, 4);
    assert.equal(r.sink.counters.rateLimited, 4);
    const limited = r.outcomes.filter((o) => o.kind === 'retryable');
    assert.equal(limited.length, 4);
    for (const o of limited) assert.ok(o.kind === 'retryable' && o.retryAfterMs === 200 && o.error.code === 'sink_rate_limited');
    assert.equal(r.deadLetters.count('loki'), 0);
  });

  test('an outage under load: after Loki is back every event is there exactly once', T, async () => {
    const r = await rig();
    const all: IngestEvent[] = [];
    const append = async (from: number, count: number): Promise<number> => {
      const events = recent(from, count);
      all.push(...events);
      return r.spool.append(events);
    };
    for (let i = 0; i < 10; i++) await append(i * 10, 10);
    await until(() => r.spool.ackedSeq('loki') === 10, 'delivered before the outage');

    await r.standin.down();
    const during: Array<Promise<number>> = [];
    for (let i = 10; i < 40; i++) during.push(append(i * 10, 10));
    await Promise.all(during);
    await until(() => r.sink.counters.retryableFailures >= 3, 'pushes failing during the outage');
    await until(() => !r.worker.status().healthy, 'the worker noticed');
    assert.ok(r.spool.backlogOf('loki').events > 0, 'events wait in the spool');

    // Loki comes back, and the first answer after it gets lost on the way (stored, connection cut).
    r.standin.faults.push({ kind: 'reset', store: true });
    await r.standin.up();
    let last = 0;
    for (let i = 40; i < 50; i++) last = await append(i * 10, 10);
    await until(() => r.spool.ackedSeq('loki') === last, 'the backlog drained');
    assertExactlyOnce(r, all);
    assert.equal(all.length, 500);
    assert.equal(r.deadLetters.count('loki'), 0);
    await until(() => r.worker.status().healthy, 'healthy again');
  });

  test('a mixed batch with one entry too far in the future: only that entry is dead-lettered', T, async () => {
    const r = await rig();
    const events = recent(0, 12);
    const future = events[5] as IngestEvent;
    events[5] = { ...future, timeMs: Date.now() + DAY };
    const seq = await r.spool.append(events);
    const outcome = await r.worker.waitFor(seq, 10_000);
    assert.ok(outcome !== null);
    assert.equal(outcome.written, 11);
    assert.deepEqual(outcome.poison.map((p) => p.position), [5]);
    await until(() => r.spool.ackedSeq('loki') === seq, 'acked');
    assert.equal(r.deadLetters.count('loki'), 1);
    const listed = await r.deadLetters.list('loki', 0, 10);
    assert.equal(listed.items[0]?.event.id, future.id);
    assert.equal(listed.items[0]?.code, 'loki_entry_too_new');
    assert.match(listed.items[0]?.reason ?? '', /too new/);
    const stored = countsById(r);
    assert.equal(stored.size, 11);
    assert.equal(stored.has(future.id), false);
  });

  test('a week-old backlog: too old is skipped and counted (not dead-lettered), six days old is stored', T, async () => {
    const r = await rig();
    const tooOld = recent(0, 30, 8 * DAY);
    const sixDays = recent(100, 30, 6 * DAY);
    await r.spool.append(tooOld);
    const last = await r.spool.append(sixDays);
    await until(() => r.spool.ackedSeq('loki') === last, 'the backlog drained');
    assert.equal(r.sink.counters.skippedTooOld, 30);
    assert.equal(r.deadLetters.count('loki'), 0);
    assertExactlyOnce(r, sixDays);
  });
});

// ---------------------------------------------------------------------------------------------
// The delivery path against the stand-in and a real Loki (TEST_LOKI_URL), on the real clock.

/**
 * Events moved so that the newest is at `newestMs`, their span squeezed into `maxSpanMs`. Sent
 * twice, a batch must stay within Loki's out-of-order window (1 h): a stored entry sent again
 * more than an hour behind the newest of its stream is refused as "too far behind" (and would
 * be dead-lettered although it is in Loki).
 */
function recentCopy(events: readonly IngestEvent[], newestMs: number, maxSpanMs = 50 * 60_000): IngestEvent[] {
  const newest = Math.max(...events.map((e) => e.timeMs));
  const span = newest - Math.min(...events.map((e) => e.timeMs));
  const scale = span > maxSpanMs ? maxSpanMs / span : 1;
  return events.map((e) => ({ ...e, timeMs: newestMs - Math.round((newest - e.timeMs) * scale) }));
}

function idsOf(entries: readonly SeenEntry[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of entries) {
    const id = (JSON.parse(e.line) as Record<string, unknown>)['_id'];
    assert.ok(typeof id === 'string');
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

for (const target of targets) {
  describe(`Loki sink driven by the SinkWorker, against ${target.name}`, { skip: target.skip }, () => {
    test('samples through the spool into Loki, each once; sent again (a node retrying), still once', T, async () => {
      const r = await rigAt(target.url(), { timeoutMs: 10_000 });
      const run = uniqueName('delivery');
      const now = Date.now();
      const bySource = [
        recentCopy(payloadSamples().flatMap((s) => eventsOf(envelope(s.body.messages, `${run}-payload`))), now - HOUR),
        recentCopy(eventsOf(envelope(jsonlMessages('syslog_events.jsonl'), `${run}-syslog`)), now - HOUR / 2),
        recentCopy(eventsOf(envelope(jsonlMessages('snmp_metrics.jsonl'), `${run}-snmp`)), now - 60_000), // 14 hours in 50 minutes
      ];
      const events = bySource.flat();
      let last = 0;
      for (let round = 0; round < 2; round++) {
        // the second round: equal events, new objects, as a retried batch becomes
        for (let i = 0; i < events.length; i += 250) last = await r.spool.append(events.slice(i, i + 250).map((e) => ({ ...e })));
        await until(() => r.spool.ackedSeq('loki') === last, 'the spool drained');
      }
      for (const group of bySource) {
        const range = { startMs: Math.min(...group.map((e) => e.timeMs)) - 1000, endMs: Math.max(...group.map((e) => e.timeMs)) + 1000 };
        const counts = idsOf(await target.read({ source: group[0]?.source ?? '' }, range, group.length));
        assert.equal(counts.size, group.length, `every ${group[0]?.source} event is in Loki`);
        for (const e of group) assert.equal(counts.get(e.id), 1, `event ${e.id} stored exactly once`);
      }
      assert.equal(r.deadLetters.count('loki'), 0);
    });

    test('Loki\'s refusals are dead-lettered with their codes, the entries it dropped silently included', T, async () => {
      const r = await rigAt(target.url(), { timeoutMs: 10_000 });
      const run = uniqueName('dead');
      const now = Date.now();
      const mk = (source: string, n: number, timeMs: number): IngestEvent => {
        const data = { message: `event ${n}`, seq: n };
        return makeEvent(n, { id: `${source}-${n}`, timeMs, receivedAtMs: now, source, data, dataJson: JSON.stringify(data), message: `event ${n}` });
      };
      const [a, b] = [`${run}-a`, `${run}-b`];
      let seq = await r.spool.append([mk(a, 0, now - 60_000), mk(b, 0, now - 2 * HOUR)]);
      await until(() => r.spool.ackedSeq('loki') === seq, 'the first batch delivered');
      // a: 100 minutes behind its stream (Loki drops them while answering for b); b: in order; one of b in the future
      const batch = [mk(b, 1, now - 99 * 60_000), mk(a, 1, now - 100 * 60_000), mk(a, 2, now - 100 * 60_000 + 1), mk(b, 2, now - 98 * 60_000)];
      seq = await r.spool.append(batch);
      const future = mk(b, 3, now + DAY);
      const seq2 = await r.spool.append([future, mk(b, 4, now - 30_000)]);
      await until(() => r.spool.ackedSeq('loki') === seq2 && r.deadLetters.count('loki') === 3, 'the refusals dead-lettered');
      const listed = await r.deadLetters.list('loki', 0, 10);
      assert.deepEqual(listed.items.map((d) => [d.event.id, d.code]).sort(), [[`${a}-1`, 'loki_entry_out_of_order'], [`${a}-2`, 'loki_entry_out_of_order'], [future.id, 'loki_entry_too_new']].sort());
      assert.match(listed.items.find((d) => d.code === 'loki_entry_too_new')?.reason ?? '', /has timestamp too new/);
      assert.match(listed.items.find((d) => d.code === 'loki_entry_out_of_order')?.reason ?? '', /entry too far behind/);
      const range = { startMs: now - 2 * HOUR - 60_000, endMs: now };
      assert.deepEqual([...idsOf(await target.read({ source: b }, range, 4)).keys()].sort(), [0, 1, 2, 4].map((n) => `${b}-${n}`).sort());
      assert.deepEqual([...idsOf(await target.read({ source: a }, range, 1)).keys()], [`${a}-0`]);
      assert.ok(seq < seq2);
    });
  });
}
