import assert from 'node:assert/strict';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { DeadLetterStore } from '../../src/deadletter/store.js';
import { SinkWorker, type WorkerOptions } from '../../src/delivery/sink-worker.js';
import { CursorStore } from '../../src/spool/cursor-store.js';
import { SegmentLog } from '../../src/spool/segment-log.js';
import { Spool } from '../../src/spool/spool.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { makeEvent, makeEvents, tempDir } from '../helpers/events.js';
import { MemorySink } from '../helpers/memory-sink.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Rig {
  spool: Spool;
  sink: MemorySink;
  worker: SinkWorker;
  deadLetters: DeadLetterStore;
  clock: { ms: number };
  dir: string;
}

/**
 * `told`: the worker's spool is a shared one in this respect, recording what the worker says of
 * its sink through SinkFeed.setDelivering.
 */
async function rig(options: Partial<WorkerOptions> = {}, dir?: string, sink = new MemorySink(), told?: boolean[]): Promise<Rig> {
  let base = dir;
  if (base === undefined) {
    const t = await tempDir('worker-test-');
    cleanups.push(t.remove);
    base = t.dir;
  }
  const clock = { ms: 1_755_882_690_000 };
  const logger = silentLogger();
  const spool = await Spool.open({
    dir: path.join(base, 'spool'),
    maxBytes: 64 * 1024 * 1024,
    segmentBytes: 1024 * 1024,
    fsync: false,
    cacheEvents: false,
    memoryBytes: 1024 * 1024,
    sinks: ['tsdb'],
    logger,
    now: () => clock.ms,
  });
  const deadLetters = await DeadLetterStore.open(path.join(base, 'deadletters'), 1024 * 1024, ['tsdb'], logger);
  const feeds = told === undefined ? spool : { feed: (name: 'tsdb' | 'loki') => ({ ...spool.feed(name), setDelivering: (d: boolean) => void told.push(d) }) };
  const worker = new SinkWorker(sink, feeds, deadLetters, logger, {
    window: 4,
    retryBudgetMs: 7 * 24 * 3600 * 1000,
    backoff: { baseMs: 1, maxMs: 5 },
    circuit: { failureThreshold: 3, openMs: 5, maxOpenMs: 20 },
    now: () => clock.ms,
    random: () => 0.5,
    ...options,
  });
  cleanups.push(async () => {
    await worker.drainAndStop(0);
    await spool.close();
  });
  return { spool, sink, worker, deadLetters, clock, dir: base };
}

/** Polls `condition`, advancing the fake clock a little each time (circuit breaker periods pass). */
async function until(condition: () => boolean, clock?: { ms: number }, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    if (clock !== undefined) clock.ms += 5;
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('SinkWorker', () => {
  test('delivers each record once and reports the outcome to a waiting request', async () => {
    const r = await rig();
    r.worker.start();
    const seq = await r.spool.append(makeEvents(0, 10));
    const outcome = await r.worker.waitFor(seq, 5000);
    assert.deepEqual(outcome, { written: 10, duplicates: 0, poison: [] });
    await until(() => r.spool.ackedSeq('tsdb') === seq);
    assert.equal(r.spool.backlogOf('tsdb').events, 0);
    await r.worker.drainAndStop(1000);
    await r.spool.close();
  });

  test('a sink outage keeps events in the spool; after recovery each lands exactly once', async () => {
    const r = await rig();
    r.sink.down = true;
    r.worker.start();
    const seqs = [];
    for (let i = 0; i < 20; i++) seqs.push(await r.spool.append(makeEvents(i * 5, 5)));
    assert.equal(await r.worker.waitFor(seqs[0] as number, 50), null, 'queued while down');
    await until(() => r.worker.status().circuit !== 'closed');
    assert.equal(r.worker.status().healthy, false);
    assert.equal(r.spool.backlogOf('tsdb').events, 100);
    r.sink.down = false;
    await until(() => r.spool.ackedSeq('tsdb') === 20, r.clock);
    assert.equal(r.sink.stored.size, 100);
    assert.equal(r.worker.status().circuit, 'closed');
    await r.worker.drainAndStop(1000);
    await r.spool.close();
  });

  test('the worker tells a shared spool when its sink stops and starts delivering (circuit open, then a write)', async () => {
    const told: boolean[] = [];
    const r = await rig({}, undefined, undefined, told);
    const worker = r.worker;
    r.sink.down = true;
    worker.start();
    const seq = await r.spool.append(makeEvents(0, 5));
    await until(() => worker.status().circuit === 'open');
    assert.equal(told.includes(false), true, 'told when the circuit opened');
    assert.equal(told.includes(true), false);
    r.sink.down = false;
    await until(() => r.spool.ackedSeq('tsdb') === seq, r.clock);
    assert.equal(told.at(-1), true, 'told when a write went in');
    await worker.drainAndStop(1000);
  });

  test('when its last send goes to the dead letters with the circuit open, the worker asks a shared spool for batches again (else it would never probe the sink)', async () => {
    const told: boolean[] = [];
    const r = await rig({ retryBudgetMs: 1_000 }, undefined, undefined, told);
    const worker = r.worker;
    r.sink.down = true;
    worker.start();
    await r.spool.append(makeEvents(0, 5));
    await until(() => worker.status().circuit === 'open');
    assert.ok(told.length > 0 && told.every((d) => !d), 'told to stop taking batches');
    r.clock.ms += 2_000;
    await until(() => r.deadLetters.count('tsdb') === 5, r.clock);
    await until(() => told.at(-1) === true);
    assert.equal(worker.status().circuit === 'closed', false, 'the sink is still failing: this is a probe, not a recovery');
    await worker.drainAndStop(1000);
  });

  test('a poison event goes to the dead letters; the rest of its record lands; the cursor moves on', async () => {
    const r = await rig();
    r.sink.poison = /poison/;
    r.worker.start();
    const events = makeEvents(0, 7);
    events[3] = makeEvent(3, { message: 'poison pill' });
    const seq = await r.spool.append(events);
    const next = await r.spool.append(makeEvents(100, 2));
    const outcome = await r.worker.waitFor(seq, 5000);
    assert.ok(outcome !== null);
    assert.equal(outcome.written, 6);
    assert.deepEqual(outcome.poison.map((p) => p.position), [3]);
    await until(() => r.spool.ackedSeq('tsdb') === next);
    assert.equal(r.deadLetters.count('tsdb'), 1);
    // The records' own rows go with whole sends only; the halves of the bisection are re-encoded by the sink.
    assert.ok(r.sink.sendsWithRows >= 2 && r.sink.sendsWithRows < r.sink.sends, `${r.sink.sendsWithRows} of ${r.sink.sends} sends with rows`);
    const listed = await r.deadLetters.list('tsdb', 0, 10);
    assert.equal(listed.items[0]?.event.id, events[3]?.id);
    assert.equal(listed.items[0]?.code, 'sink_rejected');
    await r.worker.drainAndStop(1000);
    await r.spool.close();
  });

  test('events past the retry budget are dead-lettered, never dropped silently', async () => {
    const r = await rig({ retryBudgetMs: 60_000 });
    r.sink.down = true;
    r.worker.start();
    const seq = await r.spool.append(makeEvents(0, 3));
    await until(() => r.sink.sends >= 2, r.clock);
    r.clock.ms += 61_000;
    await until(() => r.spool.ackedSeq('tsdb') === seq, r.clock);
    assert.equal(r.deadLetters.count('tsdb'), 3);
    const listed = await r.deadLetters.list('tsdb', 0, 10);
    assert.match(listed.items[0]?.reason ?? '', /retry budget exhausted/);
    await r.worker.drainAndStop(1000);
    await r.spool.close();
  });

  test('stop leaves undelivered records in the spool; the next start delivers them', async () => {
    const first = await rig();
    first.sink.down = true;
    first.worker.start();
    for (let i = 0; i < 5; i++) await first.spool.append(makeEvents(i * 2, 2));
    await until(() => first.sink.sends >= 1);
    await first.worker.drainAndStop(50);
    assert.equal(first.spool.ackedSeq('tsdb'), 0);
    await first.spool.close();

    const second = await rig({}, first.dir);
    assert.equal(second.spool.backlogOf('tsdb').events, 10);
    second.worker.start();
    await until(() => second.spool.ackedSeq('tsdb') === 5);
    assert.equal(second.sink.stored.size, 10);
    await second.worker.drainAndStop(1000);
    await second.spool.close();
  });

  test('a merged send answers each batch exactly: a resent batch gets its duplicates, the new ones beside it none', async () => {
    const r = await rig({ coalesce: { maxEvents: 100, maxWaitMs: 0 }, window: 1 });
    const first = makeEvents(0, 5);
    r.worker.start();
    assert.deepEqual(await r.worker.waitFor(await r.spool.append(first), 5000), { written: 5, duplicates: 0, poison: [] });
    r.sink.delayMs = 50;
    // Held up behind this send, the next three records go out as one: new, resent, new.
    const blocker = await r.spool.append(makeEvents(100, 1));
    await until(() => r.sink.sends === 2);
    const seqs = [await r.spool.append(makeEvents(10, 4)), await r.spool.append(first), await r.spool.append(makeEvents(20, 3))];
    const outcomes = await Promise.all(seqs.map((seq) => r.worker.waitFor(seq, 5000)));
    assert.equal(r.sink.sends, 3, 'the three records were merged into one send');
    assert.deepEqual(outcomes, [
      { written: 4, duplicates: 0, poison: [] },
      { written: 0, duplicates: 5, poison: [] },
      { written: 3, duplicates: 0, poison: [] },
    ]);
    assert.ok((await r.worker.waitFor(blocker, 5000)) !== null);
  });

  test('records an earlier release left in the spool (JSON payloads) are delivered after an upgrade', async () => {
    const t = await tempDir('worker-test-');
    cleanups.push(t.remove);
    const dir = path.join(t.dir, 'spool');
    const logger = silentLogger();
    const { log } = await SegmentLog.open({ dir, segmentBytes: 1024 * 1024, fsync: false, logger, minNextSeq: 1 });
    const old = makeEvents(0, 3);
    const v1 = (events: typeof old): Buffer => Buffer.from(JSON.stringify([1, events.map((e) => [e.id, e.timeMs, e.timeNanos, e.receivedAtMs, e.source, e.type, e.service, e.host, e.severity, e.message, e.data])]));
    await log.append([{ targets: 1, eventCount: 3, payload: v1(old) }]);
    await log.close();
    await new CursorStore(dir, logger).write('tsdb', 0);

    const r = await rig({ coalesce: { maxEvents: 100, maxWaitMs: 0 } }, t.dir);
    await r.spool.append(makeEvents(10, 2));
    r.worker.start();
    await until(() => r.spool.ackedSeq('tsdb') === 2);
    assert.deepEqual([...r.sink.stored.values()].map((e) => e.id).sort(), [...old, ...makeEvents(10, 2)].map((e) => e.id).sort());
    assert.equal(r.sink.stored.get(`${old[1]!.id}@${old[1]!.timeMs}.${old[1]!.timeNanos}`)?.message, old[1]!.message);
    // The old record holds no COPY rows, so a send that includes it comes without rows.
    assert.ok(r.sink.sendsWithRows < r.sink.sends);
  });

  test('drainAndStop delivers what is spooled before returning', async () => {
    const r = await rig();
    r.worker.start();
    for (let i = 0; i < 10; i++) void r.spool.append(makeEvents(i * 3, 3));
    await until(() => r.spool.durableSeq === 10);
    await r.worker.drainAndStop(5000);
    assert.equal(r.sink.stored.size, 30);
    assert.equal(r.spool.ackedSeq('tsdb'), 10);
    await r.spool.close();
  });

  test('coalescing merges small records into sends of up to maxEvents, and waits at most maxWaitMs', async () => {
    const r = await rig({ coalesce: { maxEvents: 10, maxWaitMs: 30 }, window: 1 });
    r.worker.start();
    for (let i = 0; i < 12; i++) void r.spool.append(makeEvents(i * 2, 2));
    await until(() => r.spool.ackedSeq('tsdb') === 12);
    assert.equal(r.sink.stored.size, 24);
    assert.ok(r.sink.sends <= 6, `expected coalesced sends, got ${r.sink.sends}`);
    // Merged sends carry the rows of every record merged, in order (MemorySink checks them).
    assert.equal(r.sink.sendsWithRows, r.sink.sends);
    const before = r.sink.sends;
    const started = Date.now();
    const seq = await r.spool.append(makeEvents(500, 1));
    const outcome = await r.worker.waitFor(seq, 2000);
    assert.ok(outcome !== null, 'a lone record is still sent once the wait is over');
    assert.ok(Date.now() - started >= 25);
    assert.equal(r.sink.sends, before + 1);
  });
});

describe('SinkWorker: when an answer waits', () => {
  test('a healthy, caught-up sink lets the answer wait; a failing sink answers at once', async () => {
    const r = await rig();
    r.worker.start();
    const first = await r.spool.append(makeEvents(0, 5));
    assert.ok(r.worker.answerWaitMs(first, 5, 10_000) > 0, 'healthy and caught up');
    assert.deepEqual(await r.worker.waitFor(first, r.worker.answerWaitMs(first, 5, 10_000)), { written: 5, duplicates: 0, poison: [] });

    r.sink.down = true;
    const failing = await r.spool.append(makeEvents(100, 5));
    await until(() => r.worker.status().lastError !== null);
    assert.equal(r.worker.answerWaitMs(failing + 1, 5, 10_000), 0, 'a failing sink: answer queued at once');
    r.sink.down = false;
    await until(() => r.spool.ackedSeq('tsdb') === failing, r.clock);
    assert.ok(r.worker.answerWaitMs(failing + 1, 5, 10_000) > 0, 'recovered and caught up');
  });

  test('a batch behind more than one window of waiting records answers at once', async () => {
    const r = await rig({ window: 1 });
    r.sink.delayMs = 300;
    r.worker.start();
    const seqs: number[] = [];
    for (let i = 0; i < 10; i++) seqs.push(await r.spool.append(makeEvents(i * 5, 5)));
    await until(() => r.sink.sends > 0 || r.worker.status().inFlight > 0);
    assert.equal(r.worker.answerWaitMs(seqs[9] as number, 5, 10_000), 0, 'eight records wait ahead of it');
    assert.ok(r.worker.answerWaitMs(seqs[1] as number, 5, 10_000) > 0, 'the next one in line may wait');
    r.sink.delayMs = 0;
    await until(() => r.spool.ackedSeq('tsdb') === seqs[9], r.clock);
    assert.ok(r.worker.status().drainRatePerSecond >= 0);
  });
});
