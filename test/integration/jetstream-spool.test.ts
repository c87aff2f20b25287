import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager, RetentionPolicy } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsSpoolConfig } from '../../src/config/config.js';
import { runCli } from '../../src/cli/commands.js';
import { MothershipError } from '../../src/lib/errors.js';
import type { SinkName } from '../../src/sinks/sink.js';
import type { JetStreamFeed } from '../../src/spool/jetstream/feed.js';
import { JetStreamSpool, type JetStreamSpoolOptions } from '../../src/spool/jetstream/spool.js';
import { SINK_BITS } from '../../src/spool/spool.js';
import type { SpoolRecord } from '../../src/spool/spool-reader.js';
import type { SinkFeed } from '../../src/spool/store.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { waitUntil } from '../helpers/e2e.js';
import { makeEvents } from '../helpers/events.js';
import { tcpProxy } from '../helpers/database.js';
import { deleteStream, NATS_URL, type ConsumerLag, natsServerBinary, natsSkipReason, startNats, startNatsCluster, uniqueStream } from '../helpers/nats.js';

const skip = await natsSkipReason();
const binary = natsServerBinary();
const T = { timeout: 60_000 };

function natsConfig(servers: string, stream: string, overrides: Partial<NatsSpoolConfig> = {}): NatsSpoolConfig {
  return {
    servers: servers.split(','),
    user: null,
    password: null,
    stream,
    subject: `${stream.toLowerCase()}.batches`,
    replicas: 1,
    maxAgeMs: 0,
    ackWaitMs: 30_000,
    duplicateWindowMs: 120_000,
    publishTimeoutMs: 2_000,
    token: null,
    credsFile: null,
    tls: null,
    ...overrides,
  };
}

const opened: JetStreamSpool[] = [];
const streams: Array<{ url: string; name: string }> = [];

async function openSpool(stream: string, options: Partial<Omit<JetStreamSpoolOptions, 'nats'>> & { nats?: Partial<NatsSpoolConfig>; url?: string } = {}): Promise<JetStreamSpool> {
  const url = options.url ?? NATS_URL;
  if (!streams.some((s) => s.name === stream)) streams.push({ url, name: stream });
  const spool = await JetStreamSpool.open({
    maxBytes: 64 * 1024 * 1024,
    sinks: ['tsdb'] as SinkName[],
    logger: silentLogger(),
    now: Date.now,
    pollMs: 200,
    ...options,
    nats: natsConfig(url, stream, options.nats),
  });
  opened.push(spool);
  return spool;
}

async function readAll(feed: SinkFeed, count: number, timeoutMs = 10_000): Promise<SpoolRecord[]> {
  const reader = feed.reader();
  const out: SpoolRecord[] = [];
  const signal = AbortSignal.timeout(timeoutMs);
  while (out.length < count) {
    const r = await reader.read(signal);
    if (r === null) break;
    out.push(r);
  }
  return out;
}

/** Batches the feed holds (fetched, not acknowledged). */
const holding = (feed: SinkFeed): number => (feed as JetStreamFeed).holding;

/**
 * Six one-event batches in a fresh stream, all fetched by spool `a` (prefetch 8), the first of
 * them read by its worker.
 */
async function sixFetchedOneRead(stream: string, firstEvent: number): Promise<{ a: JetStreamSpool; feed: SinkFeed; read: SpoolRecord }> {
  const a = await openSpool(stream, { prefetch: 8 });
  for (let i = 0; i < 6; i++) await a.append(makeEvents(firstEvent + i, 1));
  const feed = a.feed('tsdb');
  const [read] = await readAll(feed, 1);
  assert.ok(read !== undefined);
  await waitUntil(() => holding(feed) === 6, 5_000, 'all six fetched');
  return { a, feed, read };
}

/** Records readable within `ms` (none expected: waits the whole time). */
async function readFor(feed: SinkFeed, ms: number): Promise<SpoolRecord[]> {
  return readAll(feed, Number.MAX_SAFE_INTEGER, ms);
}

describe('the spool on JetStream', { skip: skip ?? false, timeout: 120_000 }, () => {
  after(async () => {
    for (const s of opened.splice(0)) await s.close();
    for (const s of streams.splice(0)) await deleteStream(s.url, s.name).catch(() => undefined);
  });

  test('a batch appended is read back whole by the sink, and gone from the stream once acknowledged (interest retention)', T, async () => {
    const stream = uniqueStream();
    const spool = await openSpool(stream);
    const events = makeEvents(0, 25);
    await spool.append(events);
    const feed = spool.feed('tsdb');
    const [record] = await readAll(feed, 1);
    assert.ok(record !== undefined);
    assert.equal(record.seq, 1);
    assert.equal(record.targets, SINK_BITS.tsdb);
    assert.deepEqual(record.events().map((e) => e.id), events.map((e) => e.id));
    assert.ok(record.copyText !== null, 'the tsdb sink gets the COPY rows as stored');
    await waitUntil(() => spool.backlogOf('tsdb').records === 1, 5_000, 'the consumer shows the batch taken, not acknowledged');
    feed.ack(1, 25, record.bytes);
    await waitUntil(() => spool.backlogOf('tsdb').records === 0 && spool.totalBytes === 0, 5_000, 'the stream emptied');
    assert.equal(spool.refusal(), null);
    assert.equal(spool.healthView().backend, 'jetstream');
  });

  test('a resend of the same batch within the duplicate window is stored once; a dead-letter replay is stored again', T, async () => {
    const stream = uniqueStream();
    const spool = await openSpool(stream);
    const events = makeEvents(100, 10);
    const first = await spool.append(events);
    const again = await spool.append(makeEvents(100, 10));
    assert.equal(again, first, 'the resend is the same stream message');
    const replay = await spool.append(events, { dedupe: false });
    assert.ok(replay > first);
    const records = await readAll(spool.feed('tsdb'), 2);
    assert.equal(records.length, 2);
    assert.deepEqual(await readFor(spool.feed('tsdb'), 500), [], 'nothing else');
  });

  test('two instances share each sink\'s consumer: every batch goes to exactly one of them', T, async () => {
    const stream = uniqueStream();
    const a = await openSpool(stream);
    const b = await openSpool(stream);
    const total = 60;
    for (let i = 0; i < total; i++) await (i % 2 === 0 ? a : b).append(makeEvents(1000 + i * 3, 3));
    const seen: string[] = [];
    const take = async (spool: JetStreamSpool): Promise<void> => {
      const feed = spool.feed('tsdb');
      for (const r of await readFor(feed, 1_500)) {
        seen.push(r.events()[0]?.id ?? '');
        feed.ack(r.seq, r.eventCount, r.bytes);
      }
    };
    await Promise.all([take(a), take(b)]);
    assert.equal(seen.length, total);
    assert.equal(new Set(seen).size, total, 'no batch went to both');
    await waitUntil(() => a.backlogOf('tsdb').records === 0, 5_000, 'all acknowledged');
  });

  test('an instance that stops hands back what it took and did not finish: another gets it at once, not after the ack wait', T, async () => {
    const stream = uniqueStream();
    const a = await openSpool(stream, { prefetch: 8 });
    for (let i = 0; i < 5; i++) await a.append(makeEvents(2000 + i * 2, 2));
    const taken = await readAll(a.feed('tsdb'), 5);
    assert.equal(taken.length, 5);
    a.feed('tsdb').ack(2, 4, 0);
    await a.close();
    const b = await openSpool(stream);
    const started = Date.now();
    const rest = await readAll(b.feed('tsdb'), 3, 10_000);
    assert.deepEqual(rest.map((r) => r.events()[0]?.id), taken.slice(2).map((r) => r.events()[0]?.id));
    assert.ok(Date.now() - started < 25_000, 'well before the 30 s ack wait');
  });

  test('a batch taken by an instance that dies is redelivered to another after the ack wait', T, async () => {
    const stream = uniqueStream();
    const ackWait = { ackWaitMs: 1_000 };
    const a = await openSpool(stream, { nats: ackWait });
    await a.append(makeEvents(3000, 4));
    const [held] = await readAll(a.feed('tsdb'), 1);
    assert.ok(held !== undefined);
    // The instance freezes (no heartbeat, no ack, no nak): as if killed.
    await (a as unknown as { nc: { close(): Promise<void> } }).nc.close();
    const b = await openSpool(stream, { nats: ackWait });
    const [again] = await readAll(b.feed('tsdb'), 1, 15_000);
    assert.deepEqual(again?.events().map((e) => e.id), held.events().map((e) => e.id));
  });

  test('a live instance keeps a batch however long its sink retries: no redelivery while it works on it', T, async () => {
    const stream = uniqueStream();
    const ackWait = { ackWaitMs: 1_000 };
    const a = await openSpool(stream, { nats: ackWait });
    const b = await openSpool(stream, { nats: ackWait });
    await a.append(makeEvents(4000, 4));
    const aGot = readFor(a.feed('tsdb'), 4_000);
    const bGot = readFor(b.feed('tsdb'), 4_000);
    const [fromA, fromB] = await Promise.all([aGot, bGot]);
    assert.equal(fromA.length + fromB.length, 1, `taken once in 4 ack waits (a: ${fromA.length}, b: ${fromB.length})`);
  });

  test('an instance that just started reports the shared backlog in events too, not 0', T, async () => {
    const stream = uniqueStream();
    const a = await openSpool(stream);
    for (let i = 0; i < 3; i++) await a.append(makeEvents(9000 + i * 4, 4));
    const b = await openSpool(stream);
    assert.deepEqual({ records: b.backlogOf('tsdb').records, events: b.backlogOf('tsdb').events }, { records: 3, events: 12 });
  });

  test('an instance fetches no more than its prefetch ahead of its worker: the rest stays for the others', T, async () => {
    const stream = uniqueStream();
    const a = await openSpool(stream, { prefetch: 4 });
    for (let i = 0; i < 20; i++) await a.append(makeEvents(5000 + i, 1));
    const [first] = await readAll(a.feed('tsdb'), 1);
    assert.ok(first !== undefined);
    await new Promise((r) => setTimeout(r, 1_500));
    const lag = a.healthView().consumers as Record<'tsdb', ConsumerLag>;
    assert.ok(lag.tsdb.ack_pending <= 5, `taken by this instance: ${lag.tsdb.ack_pending} (prefetch 4 + the one read)`);
    assert.equal(lag.tsdb.ack_pending, lag.tsdb.held_here, 'every batch taken is one this instance holds and keeps alive');
    const b = await openSpool(stream);
    const rest = await readAll(b.feed('tsdb'), 15, 10_000);
    assert.equal(rest.length, 15, 'the others go to another instance at once');
  });

  test('what an instance fetches ahead stays within its memory share; a batch larger than the share still comes, alone, in order', T, async () => {
    const stream = uniqueStream();
    const a = await openSpool(stream, { memoryBytes: 300 * 1024 });
    const counts = Array.from({ length: 40 }, (_, i) => (i % 10 === 9 ? 3000 : i % 3 === 0 ? 5 : 200));
    for (let i = 0; i < counts.length; i++) await a.append(makeEvents(50_000 + i * 5000, counts[i] as number));
    const feed = a.feed('tsdb');
    const reader = feed.reader();
    const got: number[] = [];
    let most = 0;
    const signal = AbortSignal.timeout(20_000);
    while (got.length < counts.length) {
      const r = await reader.read(signal);
      if (r === null) break;
      got.push(r.eventCount);
      await new Promise((resolve) => setTimeout(resolve, 20));
      most = Math.max(most, holding(feed));
      feed.ack(r.seq, r.eventCount, r.bytes);
    }
    assert.deepEqual(got, counts);
    // 200-event batches take ~41 kB: a 300 kB share holds about 7 ahead, far from the 128 of the count bound.
    assert.ok(most <= 12, `held at most ${most}`);
  });

  test('an instance whose sink fails hands back what it fetched and takes nothing new until its sink works again', T, async () => {
    const stream = uniqueStream();
    const { a, feed: aFeed, read: inSend } = await sixFetchedOneRead(stream, 6000);
    const b = await openSpool(stream, { prefetch: 8 });
    aFeed.setDelivering?.(false);
    const handedOn = await readAll(b.feed('tsdb'), 5, 10_000);
    assert.equal(handedOn.length, 5, 'b delivers the five a had not started');
    assert.equal(holding(aFeed), 1, 'a keeps only the batch in its send');
    for (let i = 0; i < 3; i++) await a.append(makeEvents(7000 + i, 1));
    assert.equal((await readAll(b.feed('tsdb'), 3, 10_000)).length, 3, 'new batches go to b while a\'s sink fails');
    aFeed.setDelivering?.(true);
    aFeed.ack(inSend.seq, 1, inSend.bytes);
    await a.append(makeEvents(8000, 1));
    const [next] = await readFor(aFeed, 1_500);
    const [orB] = await readFor(b.feed('tsdb'), 100);
    assert.equal([next, orB].filter((r) => r !== undefined).length, 1, 'a takes batches again (or b does): exactly one gets the new batch');
    if (next !== undefined) assert.equal(next.seq, inSend.seq + 1, 'a\'s numbering stays gapless for its worker');
  });

  test('stopping: the batches fetched ahead go back at once, the worker finishes only what it read', T, async () => {
    const stream = uniqueStream();
    const { feed, read } = await sixFetchedOneRead(stream, 11_000);
    assert.equal(feed.stopTaking?.(), read.seq, 'the worker has only the batch it read to finish');
    const b = await openSpool(stream);
    assert.equal((await readAll(b.feed('tsdb'), 5, 10_000)).length, 5, 'another instance gets the five others at once');
    assert.deepEqual(await readFor(feed, 300), [], 'nothing more for the stopping one');
  });

  test('a sink consumer someone deleted is recreated; the spool goes on delivering', T, async () => {
    const stream = uniqueStream();
    const spool = await openSpool(stream);
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.delete(stream, 'tsdb');
      // The spool's next look at the stream (every pollMs) finds it missing and recreates it.
      // Batches stored in between are kept only for the consumers there are: none here.
      await waitUntil(async () => (await jsm.consumers.info(stream, 'tsdb').catch(() => null)) !== null, 5_000, 'the consumer recreated');
    } finally {
      await nc.close();
    }
    await spool.append(makeEvents(12_000, 3));
    const [record] = await readAll(spool.feed('tsdb'), 1);
    assert.equal(record?.eventCount, 3, 'the batch stored after the consumer came back is delivered');
  });

  test('acknowledgements made while the connection is down are sent when it is back, not lost to the ack wait', T, async () => {
    const stream = uniqueStream();
    const target = new URL(NATS_URL);
    let proxy = await tcpProxy({ host: target.hostname, port: Number(target.port || 4222) });
    const port = proxy.port;
    try {
      const spool = await openSpool(stream, { url: `nats://127.0.0.1:${port}` });
      streams[streams.length - 1] = { url: NATS_URL, name: stream };
      for (let i = 0; i < 3; i++) await spool.append(makeEvents(13_000 + i, 1));
      const feed = spool.feed('tsdb');
      const records = await readAll(feed, 3);
      await proxy.cut();
      await waitUntil(() => spool.healthView().connected === false, 15_000, 'the spool notices');
      const last = records.at(-1);
      assert.ok(last !== undefined);
      feed.ack(last.seq, 3, 0);
      proxy = await tcpProxy({ host: target.hostname, port: Number(target.port || 4222) }, port);
      await waitUntil(() => spool.healthView().connected === true, 20_000, 'the spool reconnects');
      // The ack wait is 30 s: only the acks sent on reconnect empty the stream this soon.
      await waitUntil(() => spool.totalBytes === 0 && spool.backlogOf('tsdb').records === 0, 10_000, 'the three acknowledged');
    } finally {
      await proxy.cut();
    }
  });

  test('a full stream refuses batches with spool_full and a Retry-After; /health calls it full', T, async () => {
    const stream = uniqueStream();
    const spool = await openSpool(stream, { maxBytes: 256 * 1024 });
    let refused: unknown = null;
    for (let i = 0; i < 200 && refused === null; i++) {
      try {
        await spool.append(makeEvents(10_000 + i * 50, 50));
      } catch (err) {
        refused = err;
      }
    }
    assert.ok(refused instanceof MothershipError, String(refused));
    assert.equal(refused.code, 'spool_full');
    assert.equal(refused.status, 503);
    assert.ok((refused.retryAfterSeconds ?? 0) >= 1);
    assert.match(spool.refusal() ?? '', /full/);
  });

  test('an existing stream the spool cannot use (limits retention) is a configuration error naming the variable', T, async () => {
    const stream = uniqueStream();
    streams.push({ url: NATS_URL, name: stream });
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${stream.toLowerCase()}.batches`], retention: RetentionPolicy.Limits });
    } finally {
      await nc.close();
    }
    await assert.rejects(openSpool(stream), (err: unknown) => err instanceof MothershipError && err.code === 'config_invalid' && /SPOOL_NATS_STREAM/.test(err.message) && /limits/.test(err.message));
  });

  test('`mothership spool inspect --nats` shows the stream and each sink\'s consumer lag, taking nothing', T, async () => {
    const stream = uniqueStream();
    const spool = await openSpool(stream);
    for (let i = 0; i < 3; i++) await spool.append(makeEvents(20_000 + i * 4, 4));
    await readAll(spool.feed('tsdb'), 1);
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t), env: {}, interactive: false, columns: () => undefined, now: Date.now };
    assert.equal(await runCli(['spool', 'inspect', '--nats', NATS_URL, '--stream', stream], io), 0, err.join(''));
    const report = JSON.parse(out.join('')) as { backend: string; stream: { name: string; messages: number; retention: string }; consumers: Record<string, { pending: number; ack_pending: number }> };
    assert.equal(report.backend, 'jetstream');
    assert.equal(report.stream.name, stream);
    assert.equal(report.stream.retention, 'interest');
    assert.equal(report.stream.messages, 3);
    const tsdb = report.consumers.tsdb;
    assert.ok(tsdb !== undefined);
    assert.equal(tsdb.pending + tsdb.ack_pending, 3, JSON.stringify(tsdb));
    assert.ok(tsdb.ack_pending >= 1, 'the batch this instance holds shows as taken');
    out.length = 0;
    assert.equal(await runCli(['spool', 'inspect', '--nats', NATS_URL, '--stream', `${stream}_NONE`], io), 1);
    assert.match(err.join(''), /no stream/);
  });

  test('a second instance with other settings brings the stream to them (size, windows)', T, async () => {
    const stream = uniqueStream();
    await openSpool(stream);
    const b = await openSpool(stream, { maxBytes: 32 * 1024 * 1024, nats: { duplicateWindowMs: 60_000 } });
    const view = b.adminView();
    assert.equal(view.max_bytes, 32 * 1024 * 1024);
    assert.equal(view.duplicate_window_seconds, 60);
  });
});

describe('the spool on a NATS server that goes away or refuses us', { skip: binary === null ? 'nats-server is not installed (set NATS_SERVER_BIN)' : false, timeout: 120_000 }, () => {
  let server: Awaited<ReturnType<typeof startNats>> | null = null;
  let guarded: Awaited<ReturnType<typeof startNats>> | null = null;
  before(async () => {
    server = await startNats(binary as string);
    guarded = await startNats(binary as string, { token: 'right-token' });
  });
  after(async () => {
    for (const s of opened.splice(0)) await s.close().catch(() => undefined);
    await server?.stop();
    await guarded?.stop();
  });

  test('NATS down: appends fail at once with storage_unavailable + Retry-After, /health says why; back: appends work again', T, async () => {
    const node = server as NonNullable<typeof server>;
    const spool = await openSpool(uniqueStream(), { url: node.url });
    await spool.append(makeEvents(0, 2));
    await node.kill();
    await waitUntil(() => spool.refusal() !== null, 15_000, 'the spool notices');
    assert.match(spool.refusal() ?? '', /JetStream unreachable/);
    assert.equal(spool.healthView().connected, false);
    const started = Date.now();
    await assert.rejects(spool.append(makeEvents(10, 2)), (err: unknown) => err instanceof MothershipError && err.code === 'storage_unavailable' && err.status === 503 && (err.retryAfterSeconds ?? 0) >= 1);
    assert.ok(Date.now() - started < 1_000, 'refused without waiting for the publish timeout');
    await node.start();
    await waitUntil(() => spool.healthView().connected === true, 20_000, 'the spool reconnects');
    assert.equal(spool.refusal(), null, 'batches refused while NATS was known down do not keep /health unhealthy once it is back');
    await spool.append(makeEvents(20, 2));
    const records = await readAll(spool.feed('tsdb'), 2);
    assert.deepEqual(records.map((r) => r.events()[0]?.id), [makeEvents(0, 1)[0]?.id, makeEvents(20, 1)[0]?.id], 'what was stored before the outage survived it (file store)');
  });

  test('start-up waits for a cluster that has no JetStream leader yet, then works', T, async () => {
    const cluster = await startNatsCluster(binary as string);
    try {
      const [n1, n2, n3] = cluster.nodes;
      assert.ok(n1 !== undefined && n2 !== undefined && n3 !== undefined);
      await n2.kill();
      await n3.kill();
      // One node of three: it answers, but JetStream has no quorum to elect a leader with.
      const opening = openSpool(uniqueStream(), { url: n1.url });
      let settled = false;
      void opening.then(() => (settled = true), () => (settled = true));
      await new Promise((r) => setTimeout(r, 3_000));
      assert.equal(settled, false, 'still waiting for JetStream, not failed as a configuration error');
      await n2.start();
      const spool = await opening;
      await spool.append(makeEvents(0, 1));
    } finally {
      for (const s of opened.splice(0)) await s.close().catch(() => undefined);
      await cluster.stop();
    }
  });

  test('refused credentials are a configuration error, never "unreachable"', T, async () => {
    const node = guarded as NonNullable<typeof guarded>;
    await assert.rejects(openSpool(uniqueStream(), { url: node.url, nats: { token: 'wrong-token' } }), (err: unknown) => err instanceof MothershipError && err.code === 'config_invalid' && /refused/.test(err.message));
    const ok = await openSpool(uniqueStream(), { url: node.url, nats: { token: 'right-token' } });
    await ok.append(makeEvents(0, 1));
  });
});
