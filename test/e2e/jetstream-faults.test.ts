/**
 * The JetStream spool (SPOOL_URL) when NATS fails: a clustered stream (R3) loses a node, the
 * stream's leader preferably, under concurrent load from two motherships; and a single NATS
 * server dies and comes back. In both, a 200 must mean the batch is stored, and every batch
 * answered 200 must reach PostgreSQL exactly once; a 503 carries Retry-After and the node resends.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { e2eFixture, getJson, postIngest, waitUntil, withDb } from '../helpers/e2e.js';
import { natsServerBinary, startNats, startNatsCluster, uniqueStream, type JetStreamSpoolHealth, type NatsNode } from '../helpers/nats.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const binary = natsServerBinary();
const SKIP = binary === null ? 'no nats-server binary (install nats-server or set NATS_SERVER_BIN): the JetStream fault tests need their own NATS servers' : false;

const SENDERS = 4;
const BATCH = 20;
const LOAD_BEFORE_KILL_MS = 3_000;
/**
 * After the kill the load goes on until ingestion has visibly resumed (this many batches sent
 * after the kill acknowledged) and at least MIN_LOAD_AFTER_KILL_MS, at most MAX_LOAD_AFTER_KILL_MS.
 * A stream leader's loss costs a Raft election (seconds on nats-server 2.9) plus the publishes
 * that were waiting on the dead leader (SPOOL_NATS_PUBLISH_TIMEOUT_MS).
 */
const RESUMED_BATCHES = 20;
const MIN_LOAD_AFTER_KILL_MS = 5_000;
const MAX_LOAD_AFTER_KILL_MS = 45_000;
/** A test node waits what Retry-After says, but at most this (the product says 2 s). */
const MAX_RETRY_WAIT_MS = 1_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One /ingest attempt as a sender saw it; status 0: no HTTP answer (the error is in `code`). */
interface Attempt {
  readonly startedAt: number;
  readonly at: number;
  readonly status: number;
  readonly code: string | null;
  readonly retryAfter: string | null;
  readonly latencyMs: number;
}

async function health(url: string): Promise<{ status: number; state: unknown; reason: unknown; spool: JetStreamSpoolHealth }> {
  const { status, body } = await getJson(`${url}/health`);
  return { status, state: body.status, reason: body.reason, spool: (body.spool ?? {}) as JetStreamSpoolHealth };
}

/** t.diagnostic lines stamped with the seconds since the test began. */
function timedNotes(t: TestContext): (line: string) => void {
  const t0 = Date.now();
  return (line) => t.diagnostic(`[+${((Date.now() - t0) / 1000).toFixed(1)} s] ${line}`);
}

type Health = Awaited<ReturnType<typeof health>>;

/** Polls /health until `ok`; a timeout says what it last saw. */
async function healthWhen(url: string, ok: (h: Health) => boolean, timeoutMs: number, what: string): Promise<Health> {
  let last = await health(url);
  await waitUntil(
    async () => {
      last = await health(url);
      return ok(last);
    },
    timeoutMs,
    what,
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; last seen ${JSON.stringify(last)}`);
  });
  return last;
}

/** The tsdb consumer has nothing left to deliver (as this mothership last observed it). */
async function consumerDrained(url: string): Promise<boolean> {
  const c = (await health(url)).spool.consumers?.['tsdb'];
  return c !== undefined && c.pending === 0 && c.ack_pending === 0;
}

function batchOf(source: string, keys: readonly string[], base: number): Record<string, unknown> {
  return {
    source,
    messages: keys.map((k, i) => ({ message: `jetstream fault ${k}`, key: k, timestamp: new Date(base + i).toISOString() })),
  };
}

/**
 * Polls the stream's info on the surviving nodes until a leader other than `dead` answers; a
 * direct view, independent of the mothership's 1 s poll.
 */
function watchLeader(nodes: readonly NatsNode[], stream: string, dead: string, since: number): { readonly leader: string | null; readonly electedAfterMs: number | null; readonly lastError: string | null; stop(): Promise<void> } {
  let lastError: string | null = null;
  let leader: string | null = null;
  let electedAfterMs: number | null = null;
  let stopped = false;
  const loop = (async () => {
    let nc: NatsConnection | null = null;
    try {
      nc = await connect({ servers: nodes.map((n) => n.url), timeout: 2_000, maxReconnectAttempts: -1 });
      // No API check: the JetStream meta leader may be the node just killed.
      const jsm = await jetstreamManager(nc, { timeout: 1_000, checkAPI: false });
      while (!stopped) {
        try {
          const current = (await jsm.streams.info(stream)).cluster?.leader;
          if (current !== undefined && current !== '' && current !== dead) {
            leader = current;
            electedAfterMs = Date.now() - since;
            return;
          }
        } catch (err) {
          // no leader to answer yet
          lastError = `${Date.now() - since} ms: ${(err as Error).message}`;
        }
        await sleep(100);
      }
    } catch (err) {
      // the watch is diagnostics only
      lastError = `${Date.now() - since} ms: ${(err as Error).message}`;
    } finally {
      await nc?.close().catch(() => undefined);
    }
  })();
  return {
    get leader() {
      return leader;
    },
    get electedAfterMs() {
      return electedAfterMs;
    },
    get lastError() {
      return lastError;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** Runs the stops (last registered first), each once; errors are reported, not thrown over each other. */
function stopList(): { add(fn: () => Promise<unknown>): void; run(): Promise<void> } {
  const stops: Array<() => Promise<unknown>> = [];
  return {
    add(fn) {
      stops.push(fn);
    },
    async run() {
      for (const fn of stops.splice(0).reverse()) {
        try {
          await fn();
        } catch (err) {
          console.error(`teardown: ${(err as Error).message}`);
        }
      }
    },
  };
}

describe('the JetStream spool when NATS fails', { timeout: 400_000 }, () => {
  const f = e2eFixture('e2e-jetstream-faults-');
  // What a test started, stopped again at the end of the file should the test not get there (a timeout).
  const leftovers = stopList();
  f.beforeTeardown(() => leftovers.run());
  const tracked = (): { add(fn: () => Promise<unknown>): void; run(): Promise<void> } => {
    const local = stopList();
    return {
      add(fn) {
        local.add(fn);
        leftovers.add(fn);
      },
      run: () => local.run(),
    };
  };

  const storedCounts = (source: string): Promise<Map<string, number>> =>
    withDb(f.db.connection, async (c) => {
      const r = await c.query(`SELECT data->>'key' AS key, count(*)::int AS n FROM ${f.schema}.events WHERE source = $1 GROUP BY 1`, [source]);
      return new Map(r.rows.map((row: { key: string; n: number }) => [row.key, row.n]));
    });

  const serverEnv = (name: string, extra: Record<string, string>): Record<string, string> =>
    f.env({ DATA_DIR: path.join(f.dataDir, name), LOKI_ENABLED: 'false', SHUTDOWN_TIMEOUT_MS: '10000', ...extra });

  test('a three-node NATS cluster loses a node under load', { skip: SKIP, timeout: 240_000 }, async (t: TestContext) => {
    const note = timedNotes(t);
    const local = tracked();
    try {
      const cluster = await startNatsCluster(binary as string);
      local.add(() => cluster.stop());
      const stream = uniqueStream('FAULTS');
      const env = { SPOOL_URL: cluster.urls, SPOOL_NATS_STREAM: stream, SPOOL_NATS_REPLICAS: '3' };
      const servers: ServerProcess[] = [];
      for (const name of ['m1', 'm2']) {
        const server = await startServer(serverEnv(name, env));
        local.add(() => server.stop('SIGTERM', 20_000));
        servers.push(server);
      }
      const [m1, m2] = servers as [ServerProcess, ServerProcess];
      const h0 = await health(m1.url);
      assert.equal(h0.spool.backend, 'jetstream');
      assert.equal(h0.status, 200, JSON.stringify(h0));

      const SOURCE = 'cluster-faults';
      const acknowledged = new Set<string>();
      const abandoned: string[] = [];
      const attempts: Attempt[] = [];
      const unexpected: string[] = [];
      let next = 0;
      let stopping = false;
      let stopDeadline = Infinity;

      const sender = async (id: number): Promise<void> => {
        const url = (servers[id % servers.length] as ServerProcess).url;
        while (!stopping) {
          const first = next;
          const keys = Array.from({ length: BATCH }, () => `c-${next++}`);
          const body = batchOf(SOURCE, keys, Date.UTC(2026, 2, 1) + first);
          for (;;) {
            const started = Date.now();
            let status = 0;
            let code: string | null = null;
            let retryAfter: string | null = null;
            let text = '';
            try {
              const res = await postIngest(url, body, { signal: AbortSignal.timeout(30_000) });
              status = res.status;
              code = typeof res.body.error === 'string' ? res.body.error : null;
              retryAfter = res.headers.get('retry-after');
              text = res.text;
            } catch (err) {
              code = (err as Error).message;
            }
            const at = Date.now();
            attempts.push({ startedAt: started, at, status, code, retryAfter, latencyMs: at - started });
            if (status === 200) {
              for (const k of keys) acknowledged.add(k);
              break;
            }
            if (status !== 503 && status !== 0) {
              unexpected.push(`${status} ${text}`);
              abandoned.push(...keys);
              break;
            }
            if (stopping && Date.now() > stopDeadline) {
              abandoned.push(...keys);
              break;
            }
            const seconds = Number(retryAfter ?? '1');
            await sleep(Math.min(MAX_RETRY_WAIT_MS, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : MAX_RETRY_WAIT_MS));
          }
        }
      };

      const senders = Array.from({ length: SENDERS }, (_, i) => sender(i));
      await sleep(LOAD_BEFORE_KILL_MS);

      const before = await health(m1.url);
      const leaderBefore = before.spool.cluster?.leader ?? null;
      const victim: NatsNode = cluster.nodes.find((n) => n.name === leaderBefore) ?? (cluster.nodes[0] as NatsNode);
      const ackedAtKill = acknowledged.size;
      const killAt = Date.now();
      await victim.kill();
      const election = watchLeader(cluster.nodes.filter((n) => n !== victim), stream, victim.name, killAt);
      local.add(() => election.stop());
      const resumed = (): number => attempts.filter((a) => a.status === 200 && a.startedAt >= killAt).length;
      await waitUntil(() => Date.now() - killAt >= MIN_LOAD_AFTER_KILL_MS && resumed() >= RESUMED_BATCHES, MAX_LOAD_AFTER_KILL_MS, 'ingestion to resume after the kill').catch(() => undefined);
      const loadEnd = Date.now();
      stopping = true;
      stopDeadline = loadEnd + 60_000;
      await Promise.all(senders);
      const sendersDone = Date.now();

      // Who leads the stream now, as the mothership sees it.
      let leaderAfter: string | null = null;
      await waitUntil(
        async () => {
          leaderAfter = (await health(m1.url)).spool.cluster?.leader ?? null;
          return leaderAfter !== null && leaderAfter !== victim.name;
        },
        30_000,
        'a stream leader other than the killed node',
      ).catch(() => undefined);
      await waitUntil(() => election.leader !== null, 5_000, 'the watch to see the new leader').catch(() => undefined);
      await election.stop();

      const afterKill = attempts.filter((a) => a.at >= killAt && a.at <= loadEnd);
      const okAfter = afterKill.filter((a) => a.status === 200);
      const refusedAfter = afterKill.filter((a) => a.status === 503);
      const codes = new Map<string, number>();
      for (const a of refusedAfter) codes.set(a.code ?? '(none)', (codes.get(a.code ?? '(none)') ?? 0) + 1);
      const okTimes = okAfter.map((a) => a.at).sort((a, b) => a - b);
      let longestGap = 0;
      let prev = killAt;
      for (const at of [...okTimes, loadEnd]) {
        longestGap = Math.max(longestGap, at - prev);
        prev = at;
      }
      const firstOkAfterKill = okTimes[0] === undefined ? null : okTimes[0] - killAt;
      const sentAfterKill = okAfter.filter((a) => a.startedAt >= killAt).map((a) => a.at - killAt);
      const resumedAfter = sentAfterKill.length === 0 ? null : Math.min(...sentAfterKill);
      const noAnswer = attempts.filter((a) => a.status === 0);
      const refusedWithoutRetryAfter = attempts.filter((a) => a.status === 503 && a.retryAfter === null);
      const refusedBeforeKill = attempts.filter((a) => a.at < killAt && a.status === 503).length;

      note(`killed ${victim.name} (leader before: ${String(leaderBefore)}, after: ${String(leaderAfter)})`);
      note(`acknowledged: ${ackedAtKill} messages before the kill, ${acknowledged.size} in all (${acknowledged.size / BATCH} batches); abandoned at the end: ${abandoned.length}`);
      note(`503 before the kill: ${refusedBeforeKill}; motherships that lost their NATS connection: ${servers.map((s, i) => `m${i + 1}=${String(s.output.some((l) => l.includes('NATS connection lost')))}`).join(' ')}`);
      note(`after the kill (${loadEnd - killAt} ms of load): ${okAfter.length} × 200 (${sentAfterKill.length} of batches sent after the kill), ${refusedAfter.length} × 503 ${JSON.stringify(Object.fromEntries(codes))}, ${noAnswer.length} without an HTTP answer in the whole run`);
      note(`a new stream leader (${String(election.leader)}) answered ${String(election.electedAfterMs)} ms after the kill (watched directly on the surviving nodes; last error: ${String(election.lastError)})`);
      note(`first 200 after the kill: ${String(firstOkAfterKill)} ms; first 200 of a batch sent after the kill: ${String(resumedAfter)} ms; longest gap without a 200 after the kill: ${longestGap} ms; slowest answer after the kill: ${Math.max(0, ...afterKill.map((a) => a.latencyMs))} ms; senders finished ${sendersDone - loadEnd} ms after the load stopped`);

      assert.ok(leaderAfter !== null && leaderAfter !== victim.name, `the stream elects a leader among the survivors (/health says ${String(leaderAfter)})`);
      assert.deepEqual(unexpected.slice(0, 5), [], `${unexpected.length} answers neither 200 nor 503`);
      assert.equal(refusedWithoutRetryAfter.length, 0, '503 answers without Retry-After');
      assert.ok(ackedAtKill > 0, 'the load reached the servers before the kill');
      assert.ok(sentAfterKill.length > 0, 'ingestion goes on after a node of three is lost (batches sent after the kill acknowledged)');
      assert.deepEqual(abandoned.slice(0, 5), [], `${abandoned.length} messages never acknowledged after the load stopped`);

      // Everything acknowledged reaches PostgreSQL, exactly once.
      let counts = new Map<string, number>();
      await waitUntil(
        async () => {
          counts = await storedCounts(SOURCE);
          return [...acknowledged].every((k) => counts.has(k));
        },
        90_000,
        'every acknowledged message in PostgreSQL',
      );
      const inPgAfter = Date.now() - sendersDone;
      const consumerView = async (): Promise<string> =>
        (await Promise.all(servers.map(async (s, i) => `m${i + 1} ${JSON.stringify((await health(s.url)).spool.consumers?.['tsdb'] ?? null)}`))).join(', ');
      const consumerAtPg = await consumerView();
      let maxRedelivered = 0;
      await waitUntil(
        async () => {
          const views = await Promise.all(servers.map(async (s) => (await health(s.url)).spool.consumers?.['tsdb']));
          for (const v of views) maxRedelivered = Math.max(maxRedelivered, v?.redelivered ?? 0);
          return views.every((v) => v !== undefined && v.pending === 0 && v.ack_pending === 0);
        },
        60_000,
        'the tsdb consumer to drain',
      );
      counts = await storedCounts(SOURCE);
      const missing = [...acknowledged].filter((k) => !counts.has(k));
      const duplicated = [...counts].filter(([, n]) => n !== 1);
      const extra = [...counts.keys()].filter((k) => !acknowledged.has(k));
      note(`after the senders finished: every acknowledged message in PostgreSQL after ${inPgAfter} ms (tsdb consumer then ${consumerAtPg}); consumer drained after ${Date.now() - sendersDone} ms (most redelivered seen while draining: ${maxRedelivered}): ${await consumerView()}`);
      note(`in PostgreSQL: ${counts.size} messages (${extra.length} not acknowledged, i.e. stored but answered otherwise)`);
      assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged messages missing`);
      assert.deepEqual(duplicated.slice(0, 10), [], `${duplicated.length} messages stored more than once`);

      // The lost node comes back and catches up: every replica current again.
      const restartAt = Date.now();
      await victim.start();
      let lastCluster = '';
      await waitUntil(
        async () => {
          const h = await health(m1.url);
          const c = h.spool.cluster;
          lastCluster = JSON.stringify(c);
          return h.status === 200 && c != null && c.leader !== null && c.replicas.length === 2 && c.replicas.every((r) => r.current && !r.offline);
        },
        60_000,
        'every replica current after the node restarted',
      ).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; last seen ${lastCluster}`);
      });
      note(`${victim.name} restarted; all replicas current after ${Date.now() - restartAt} ms: ${lastCluster}`);
    } finally {
      await local.run();
    }
  });

  test('NATS unreachable: 503 + Retry-After, nothing acknowledged that was not stored', { skip: SKIP, timeout: 180_000 }, async (t: TestContext) => {
    const note = timedNotes(t);
    const local = tracked();
    try {
      const nats = await startNats(binary as string);
      local.add(() => nats.stop());
      const stream = uniqueStream('SOLO');
      const startAt = Date.now();
      const server = await startServer(serverEnv('solo', { SPOOL_URL: nats.url, SPOOL_NATS_STREAM: stream, SPOOL_NATS_REPLICAS: '1' }));
      local.add(() => server.stop('SIGTERM', 20_000));
      const url = server.url;
      note(`NATS and the mothership started in ${Date.now() - startAt} ms`);

      const SOURCE = 'solo-faults';
      const acknowledged = new Set<string>();
      const refused = new Set<string>();
      let next = 0;
      const send = async (): Promise<{ status: number; code: unknown; retryAfter: string | null; latencyMs: number; keys: string[]; text: string; body: Record<string, unknown> }> => {
        const first = next;
        const keys = Array.from({ length: BATCH }, () => `s-${next++}`);
        const started = Date.now();
        const res = await postIngest(url, batchOf(SOURCE, keys, Date.UTC(2026, 3, 1) + first), { signal: AbortSignal.timeout(60_000) });
        const latencyMs = Date.now() - started;
        if (res.status === 200) for (const k of keys) acknowledged.add(k);
        else for (const k of keys) refused.add(k);
        return { status: res.status, code: res.body.error, retryAfter: res.headers.get('retry-after'), latencyMs, keys, text: res.text, body: res.body };
      };

      for (let i = 0; i < 5; i++) {
        const r = await send();
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.body.sink_results, { tsdb: { written: 0, duplicates: 0, errors: 0, queued: BATCH } }, 'JetStream answers say queued');
      }

      await nats.kill();
      const killAt = Date.now();
      const downAnswers: Array<{ status: number; code: unknown; retryAfter: string | null; latencyMs: number; atMs: number }> = [];
      for (let i = 0; i < 6; i++) {
        const r = await send();
        downAnswers.push({ status: r.status, code: r.code, retryAfter: r.retryAfter, latencyMs: r.latencyMs, atMs: Date.now() - killAt });
        assert.equal(r.status, 503, r.text);
        assert.ok(r.retryAfter !== null && Number(r.retryAfter) > 0, `Retry-After on a 503 (got ${String(r.retryAfter)})`);
        assert.equal(r.body.status, 'error', r.text);
        assert.equal(r.code, 'storage_unavailable', r.text);
        assert.equal(typeof r.body.message, 'string', r.text);
      }
      note(`503 answers after the kill (latency ms @ ms after the kill): ${downAnswers.map((a) => `${a.latencyMs}@${a.atMs} retry-after=${String(a.retryAfter)}`).join(', ')}`);

      const down = await healthWhen(url, (h) => h.status === 503 && h.state === 'unhealthy' && h.spool.connected === false, 15_000, '/health to say unhealthy, not connected');
      assert.equal(typeof down.reason, 'string');
      note(`/health while NATS is down: ${down.status} ${String(down.state)}: ${String(down.reason)}`);

      // A batch sent once /health says unreachable: answered at once, not after the publish timeout.
      const known = await send();
      assert.equal(known.status, 503, known.text);
      assert.equal(known.code, 'storage_unavailable', known.text);
      note(`503 once the connection is known down: ${known.latencyMs} ms (SPOOL_NATS_PUBLISH_TIMEOUT_MS default 5000)`);

      const restartAt = Date.now();
      await nats.start();
      await waitUntil(() => server.output.some((line) => line.includes('NATS connection back')), 60_000, 'the mothership to reconnect to NATS');
      const reconnectedMs = Date.now() - restartAt;
      await healthWhen(url, (h) => h.status === 200 && h.state === 'healthy' && h.spool.connected === true, 60_000, '/health to be healthy again after NATS restarted');
      note(`NATS restarted: the mothership reconnected after ${reconnectedMs} ms, /health healthy after ${Date.now() - restartAt} ms`);

      for (let i = 0; i < 5; i++) {
        const r = await send();
        assert.equal(r.status, 200, r.text);
      }
      const resentAt = Date.now();

      let counts = new Map<string, number>();
      await waitUntil(
        async () => {
          counts = await storedCounts(SOURCE);
          return [...acknowledged].every((k) => counts.has(k));
        },
        90_000,
        'every acknowledged message in PostgreSQL',
      );
      note(`the batches acknowledged after the restart were all in PostgreSQL ${Date.now() - resentAt} ms after the last of them; tsdb consumer then ${JSON.stringify((await health(url)).spool.consumers?.['tsdb'] ?? null)}`);
      // A batch whose ack the dead server never stored waits SPOOL_NATS_ACK_WAIT_SECONDS (30 s) to be redelivered (a no-op write).
      await waitUntil(() => consumerDrained(url), 60_000, 'the tsdb consumer to drain');
      note(`tsdb consumer drained ${Date.now() - restartAt} ms after NATS restarted`);
      counts = await storedCounts(SOURCE);
      const missing = [...acknowledged].filter((k) => !counts.has(k));
      const duplicated = [...counts].filter(([, n]) => n !== 1);
      const refusedStored = [...refused].filter((k) => counts.has(k));
      note(`acknowledged ${acknowledged.size} messages, refused ${refused.size}; in PostgreSQL ${counts.size} (${refusedStored.length} of the refused)`);
      assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged messages missing`);
      assert.deepEqual(duplicated.slice(0, 10), [], `${duplicated.length} messages stored more than once`);
      const stopAt = Date.now();
      assert.equal(await server.stop('SIGTERM'), 0);
      note(`SIGTERM to exit: ${Date.now() - stopAt} ms`);
    } finally {
      await local.run();
    }
  });
});
