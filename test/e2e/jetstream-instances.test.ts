/**
 * Issue 16, first "done when": two mothership processes share one JetStream spool (SPOOL_URL) and
 * one PostgreSQL schema. Nodes send to both alternately; one instance is SIGKILLed under load and
 * the nodes go on with the survivor (a load balancer's retry). Every message answered 200 must be
 * stored exactly once: the batches the dead instance held unacknowledged are redelivered to the
 * survivor after SPOOL_NATS_ACK_WAIT_SECONDS. Also: a batch resent to the other instance within
 * the duplicate window is stored once.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { tcpProxy } from '../helpers/database.js';
import { e2eFixture, getJson, pgUrl, postIngest, waitUntil, withDb } from '../helpers/e2e.js';
import { deleteStream, NATS_URL, natsSkipReason, uniqueStream, type JetStreamSpoolHealth } from '../helpers/nats.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const natsSkip = await natsSkipReason();

const SENDERS = 4;
const BATCH = 100;
/** Batches acknowledged before the kill, and by the survivor after it. */
const BATCHES_BEFORE_KILL = 40;
const BATCHES_AFTER_KILL = 30;
/** A sender gives a batch up after this many refused or failed attempts (then the test fails). */
const MAX_ATTEMPTS = 60;

async function spoolView(url: string): Promise<JetStreamSpoolHealth> {
  return (await getJson(`${url}/health`)).body.spool as JetStreamSpoolHealth;
}

/** A counter of /metrics (0 when absent). */
async function metric(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function streamLastSeq(stream: string): Promise<number> {
  const nc = await connect({ servers: NATS_URL, timeout: 3_000 });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(stream)).state.last_seq;
  } finally {
    await nc.close();
  }
}

/** Samples the tsdb consumer's ack_pending and redelivered counts (JetStream clears the latter on ack, so /health's 1 s poll may miss it). */
function redeliverySampler(stream: string): { start(): void; stop(): Promise<void>; readonly maxRedelivered: number; readonly maxAckPending: number } {
  let maxRedelivered = 0;
  let maxAckPending = 0;
  let running: Promise<void> | null = null;
  let stopped = false;
  return {
    get maxRedelivered() {
      return maxRedelivered;
    },
    get maxAckPending() {
      return maxAckPending;
    },
    start() {
      running ??= (async () => {
        const nc = await connect({ servers: NATS_URL, timeout: 3_000 });
        try {
          const jsm = await jetstreamManager(nc);
          while (!stopped) {
            const c = await jsm.consumers.info(stream, 'tsdb');
            maxRedelivered = Math.max(maxRedelivered, c.num_redelivered);
            maxAckPending = Math.max(maxAckPending, c.num_ack_pending);
            await delay(20);
          }
        } finally {
          await nc.close();
        }
      })();
    },
    async stop() {
      stopped = true;
      await running;
    },
  };
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('two instances sharing one JetStream spool', { skip: natsSkip ?? false, timeout: 180_000 }, () => {
  const f = e2eFixture('e2e-jetstream-instances-');
  const stream = uniqueStream('E2E_INSTANCES');
  const servers: Array<ServerProcess | null> = [null, null];
  const cleanups: Array<() => Promise<void>> = [];

  f.beforeTeardown(async () => {
    for (const s of servers) await s?.stop('SIGTERM');
    for (const c of cleanups.splice(0)) await c();
    await deleteStream(NATS_URL, stream);
  });

  const instanceEnv = async (i: number, extra: Record<string, string>): Promise<Record<string, string>> => {
    const dataDir = path.join(f.dataDir, `instance-${i}`);
    await mkdir(dataDir, { recursive: true });
    return f.env({
      DATA_DIR: dataDir,
      LOKI_ENABLED: 'false',
      SPOOL_URL: NATS_URL,
      SPOOL_NATS_STREAM: stream,
      SPOOL_NATS_ACK_WAIT_SECONDS: '2',
      SPOOL_MAX_BYTES: String(64 * 1024 * 1024),
      SHUTDOWN_TIMEOUT_MS: '10000',
      ...extra,
    });
  };

  /** Instance i, started if it is not running. */
  const running = async (i: number, extra: Record<string, string> = {}): Promise<ServerProcess> => {
    const current = servers[i];
    if (current !== null && current !== undefined) return current;
    const started = await startServer(await instanceEnv(i, extra));
    servers[i] = started;
    return started;
  };

  const markerCounts = (source: string): Promise<Map<string, number>> =>
    withDb(f.db.connection, async (c) => {
      const r = await c.query(`SELECT data->>'marker' AS marker, count(*)::int AS n FROM ${f.schema}.events WHERE source = $1 GROUP BY 1`, [source]);
      return new Map(r.rows.map((row: { marker: string; n: number }) => [row.marker, row.n]));
    });

  const drained = async (url: string): Promise<boolean> => {
    const view = await spoolView(url);
    const c = view.consumers?.tsdb;
    return c !== undefined && (view.observed_seconds_ago ?? 99) <= 2 && c.pending + c.ack_pending === 0;
  };

  test('SIGKILL of one instance under load: every acknowledged message is stored exactly once', async (t: TestContext) => {
    // The victim reaches PostgreSQL through a proxy the test can cut; the survivor directly.
    const victimDb = await tcpProxy({ host: f.db.connection.host, port: f.db.connection.port });
    cleanups.push(() => victimDb.cut());
    const a = await running(0, { TSDB_URL: pgUrl({ ...f.db.connection, host: '127.0.0.1', port: victimDb.port }), TSDB_WRITE_TIMEOUT_MS: '1000' });
    const b = await running(1);
    const sampler = redeliverySampler(stream);
    cleanups.push(() => sampler.stop());
    const urls: [string, string] = [a.url, b.url];
    const source = `js-two-${stream.toLowerCase()}`;
    const VICTIM = 0 as const;
    const SURVIVOR = 1 as const;

    const acknowledged = new Set<string>();
    const stats = {
      batches: 0,
      acknowledgedBatches: [0, 0] as [number, number],
      acknowledgedAfterKill: 0,
      refusals: [0, 0] as [number, number],
      connectionErrors: [0, 0] as [number, number],
      retries: 0,
      givenUp: 0,
    };
    let killed = false;
    let stop = false;
    let nextBatch = 0;

    const sender = async (id: number): Promise<void> => {
      for (let round = 0; !stop; round++) {
        const batchNo = nextBatch++;
        stats.batches++;
        const markers = Array.from({ length: BATCH }, (_, i) => `b${batchNo}-m${i}`);
        const body = {
          source,
          messages: markers.map((marker, i) => ({
            message: `two instances ${marker}`,
            marker,
            sender: id,
            timestamp: new Date(Date.UTC(2026, 2, 1) + batchNo * BATCH + i).toISOString(),
          })),
        };
        // Each sender alternates between the instances; a refused or failed batch goes to the other one.
        let target: 0 | 1 = killed ? SURVIVOR : (id + round) % 2 === 0 ? 0 : 1;
        let done = false;
        for (let attempt = 1; attempt <= MAX_ATTEMPTS && !done; attempt++) {
          if (attempt > 1) stats.retries++;
          try {
            const res = await postIngest(urls[target], body, { gzip: true });
            if (res.status === 200) {
              assert.equal((res.body.sink_results as { tsdb?: { queued?: number } }).tsdb?.queued, BATCH, res.text);
              for (const m of markers) acknowledged.add(m);
              stats.acknowledgedBatches[target]++;
              if (killed) stats.acknowledgedAfterKill++;
              done = true;
              continue;
            }
            stats.refusals[target]++;
          } catch {
            stats.connectionErrors[target]++;
          }
          target = killed ? SURVIVOR : target === 0 ? 1 : 0;
          if (attempt > 2) await delay(100);
        }
        if (!done) stats.givenUp++;
      }
    };

    const senders = Array.from({ length: SENDERS }, (_, id) => sender(id));
    let victimHeld = 0;
    try {
      await waitUntil(() => stats.acknowledgedBatches[VICTIM] + stats.acknowledgedBatches[SURVIVOR] >= BATCHES_BEFORE_KILL, 60_000, 'load on both instances');
      // The victim loses its database path (it still answers 200: the batch is in JetStream), so
      // the batches it takes from now on stay unwritten and unacknowledged: at the kill it surely
      // holds some, which only a redelivery to the survivor can store.
      await victimDb.cut();
      await waitUntil(async () => {
        victimHeld = (await spoolView(urls[VICTIM])).consumers?.tsdb?.held_here ?? 0;
        return victimHeld > 0;
      }, 30_000, 'the victim to hold batches it cannot write');
      assert.equal(await a.stop('SIGKILL'), null, 'killed by the signal');
      killed = true;
      servers[VICTIM] = null;
      sampler.start();
      t.diagnostic(`killed instance ${VICTIM} (pid ${a.pid}) after ${acknowledged.size} acknowledged messages, holding ${victimHeld} batches it had taken and not acknowledged`);
      await waitUntil(() => stats.acknowledgedAfterKill >= BATCHES_AFTER_KILL, 60_000, 'load on the survivor');
    } finally {
      stop = true;
      await Promise.all(senders);
    }

    t.diagnostic(
      `senders: ${stats.batches} batches, ${acknowledged.size} messages acknowledged; per instance acknowledged batches ${stats.acknowledgedBatches.join('/')}, ` +
        `refusals ${stats.refusals.join('/')}, connection errors ${stats.connectionErrors.join('/')}, retries ${stats.retries}, given up ${stats.givenUp}`,
    );
    assert.equal(stats.givenUp, 0, 'the survivor took every batch the victim did not answer');
    assert.equal(acknowledged.size, stats.batches * BATCH, 'every batch sent was acknowledged by one instance or the other');
    assert.ok(stats.acknowledgedBatches[VICTIM] > 0 && stats.acknowledgedBatches[SURVIVOR] > 0, 'both instances took batches');

    // The survivor finishes the victim's unacknowledged batches once JetStream redelivers them.
    const survivor = b.url;
    let healthRedelivered = 0;
    await waitUntil(async () => {
      healthRedelivered = Math.max(healthRedelivered, (await spoolView(survivor)).consumers?.tsdb?.redelivered ?? 0);
      return (await markerCounts(source)).size >= acknowledged.size;
    }, 60_000, 'every acknowledged message in PostgreSQL');
    await waitUntil(async () => {
      healthRedelivered = Math.max(healthRedelivered, (await spoolView(survivor)).consumers?.tsdb?.redelivered ?? 0);
      return drained(survivor);
    }, 60_000, "the survivor's consumer to drain (pending + ack_pending = 0)");
    await sampler.stop();

    const view = await spoolView(survivor);
    assert.equal(view.backend, 'jetstream');
    assert.equal(view.stream, stream);
    const consumer = view.consumers?.tsdb;
    assert.ok(consumer !== undefined, JSON.stringify(view));
    assert.equal(consumer.pending + consumer.ack_pending, 0, JSON.stringify(view));

    const counts = await markerCounts(source);
    const missing = [...acknowledged].filter((m) => !counts.has(m));
    const duplicated = [...counts].filter(([, n]) => n !== 1);
    const total = [...counts.values()].reduce((sum, n) => sum + n, 0);
    const written = await metric(survivor, 'mothership_sink_events_total', 'result="written"');
    const duplicates = await metric(survivor, 'mothership_sink_events_total', 'result="duplicate"');
    t.diagnostic(
      `acknowledged ${acknowledged.size}, stored ${total} rows (${counts.size} markers); victim held ${victimHeld} batches at the kill; ` +
        `consumer after the kill: ack_pending up to ${sampler.maxAckPending}, redelivered up to ${sampler.maxRedelivered} (sampled every 20 ms; /health showed up to ${healthRedelivered}); ` +
        `survivor wrote ${written} events, skipped ${duplicates} duplicates`,
    );
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged messages missing`);
    assert.deepEqual(duplicated.slice(0, 10), [], `${duplicated.length} messages stored more than once`);
    assert.equal(total, acknowledged.size, 'nothing stored that was not acknowledged');
  });

  test('a restarted instance shows the shared stream and each consumer\'s lag in /admin/spool and /metrics', async () => {
    // Instance 0 (killed above), back with the admin API on.
    await servers[0]?.stop();
    servers[0] = null;
    const again = await running(0, { ADMIN_TOKEN: 'js-admin' });
    const res = await fetch(`${again.url}/admin/spool`, { headers: { authorization: 'Bearer js-admin' } });
    assert.equal(res.status, 200);
    const view = (await res.json()) as { backend: string; stream: string; servers: string[]; consumers: { tsdb?: { pending: number } }; sinks: { tsdb?: { backlog_records: number } } };
    assert.equal(view.backend, 'jetstream');
    assert.equal(view.stream, stream);
    assert.deepEqual(view.servers, [NATS_URL]);
    assert.equal(typeof view.consumers.tsdb?.pending, 'number');
    assert.equal(typeof view.sinks.tsdb?.backlog_records, 'number');
    const metrics = await (await fetch(`${again.url}/metrics`)).text();
    assert.match(metrics, /^mothership_sink_backlog_records\{sink="tsdb"\} \d+$/m);
    assert.match(metrics, /^mothership_spool_up 1$/m);
  });

  test('a batch resent to the other instance within the duplicate window is stored once', async (t: TestContext) => {
    const [a, b] = [await running(0), await running(1)];
    const source = `js-resend-${stream.toLowerCase()}`;
    const body = {
      source,
      messages: Array.from({ length: BATCH }, (_, i) => ({ message: `resend ${i}`, marker: `r-${i}`, timestamp: new Date(Date.UTC(2026, 3, 1) + i).toISOString() })),
    };
    await waitUntil(() => drained(b.url), 60_000, 'the consumer to be idle');
    const seqBefore = await streamLastSeq(stream);

    const first = await postIngest(a.url, body);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.body.sink_results, { tsdb: { written: 0, duplicates: 0, errors: 0, queued: BATCH } });
    // The node never saw that answer: it resends the same body through the load balancer, which picks the other instance.
    const again = await postIngest(b.url, body);
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.body.sink_results, { tsdb: { written: 0, duplicates: 0, errors: 0, queued: BATCH } });

    await waitUntil(async () => (await markerCounts(source)).size >= BATCH, 30_000, 'the batch in PostgreSQL');
    await waitUntil(async () => (await drained(a.url)) && (await drained(b.url)), 30_000, 'both instances to see the consumer drained');
    const seqAfter = await streamLastSeq(stream);
    const counts = await markerCounts(source);
    const rows = [...counts.values()].reduce((sum, n) => sum + n, 0);
    t.diagnostic(`stream last_seq ${seqBefore} -> ${seqAfter}; rows ${rows} for ${BATCH} messages sent twice`);
    assert.equal(seqAfter - seqBefore, 1, 'JetStream stored the batch once (de-duplicated by its id)');
    assert.equal(counts.size, BATCH);
    assert.equal(rows, BATCH, 'rows not doubled');
  });
});
