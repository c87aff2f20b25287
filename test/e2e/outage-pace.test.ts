/**
 * Promise 3 as a node feels it: while PostgreSQL is down, slow, or draining a backlog after an
 * outage, answers come as soon as the spool has the batch (`queued`), not after the write
 * timeout; and every acknowledged message lands exactly once when the database is back.
 * Several senders post at once, as a fleet does; PostgreSQL sits behind a TCP proxy that can
 * vanish or hold every packet.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tcpProxy, type TcpProxy } from '../helpers/database.js';
import { backlogEvents, e2eFixture, getJson, pgUrl, postIngest, waitUntil, withDb } from '../helpers/e2e.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

/** The configured ceiling of an answer's wait (TSDB_WRITE_TIMEOUT_MS): what every answer used to wait for a database known to be away. */
const WRITE_TIMEOUT_MS = 10_000;
/** An answer that waited for the database would take about the write timeout; one that did not, a spool append. */
const ANSWER_BOUND_MS = WRITE_TIMEOUT_MS / 4;
const SENDERS = 4;
const BATCH = 50;

interface Phase {
  readonly answers: number;
  readonly worstMs: number;
  readonly queued: number;
  readonly written: number;
}

describe('answers while PostgreSQL is down, slow or catching up', { timeout: 240_000 }, () => {
  const f = e2eFixture('e2e-pace-');
  let proxy: TcpProxy | null = null;
  let server: ServerProcess | null = null;
  let next = 0;
  const acknowledged = new Set<number>();

  f.beforeTeardown(async () => {
    await server?.stop();
    await proxy?.cut();
  });

  /** SENDERS senders posting BATCH-message batches back to back for `ms`. */
  async function load(url: string, ms: number): Promise<Phase> {
    const until = Date.now() + ms;
    let answers = 0;
    let worstMs = 0;
    let queued = 0;
    let written = 0;
    const sender = async (): Promise<void> => {
      while (Date.now() < until) {
        const seqs = Array.from({ length: BATCH }, () => next++);
        const started = performance.now();
        const res = await postIngest(url, { messages: seqs.map((n) => ({ message: `pace ${n}`, n, timestamp: new Date(Date.UTC(2026, 2, 1) + n).toISOString() })), source: 'pace-node' });
        worstMs = Math.max(worstMs, performance.now() - started);
        assert.equal(res.status, 200, res.text);
        for (const n of seqs) acknowledged.add(n);
        answers++;
        const tsdb = (res.body.sink_results as { tsdb: { written: number; queued?: number } }).tsdb;
        if (tsdb.queued === BATCH) queued++;
        if (tsdb.written === BATCH) written++;
      }
    };
    await Promise.all(Array.from({ length: SENDERS }, sender));
    return { answers, worstMs: Math.round(worstMs), queued, written };
  }

  const stored = () =>
    withDb(f.db.connection, async (c) => (await c.query(`SELECT count(*)::int AS n, count(DISTINCT n)::int AS d FROM (SELECT (data->>'n')::int AS n FROM ${f.schema}.events WHERE source = 'pace-node') x`)).rows[0] as { n: number; d: number });

  test('down: answers queued at once during the outage and while the backlog drains; every acknowledged message lands once', async () => {
    proxy = await tcpProxy({ host: f.db.connection.host, port: f.db.connection.port });
    const port = proxy.port;
    server = await startServer(f.env({ TSDB_URL: pgUrl({ ...f.db.connection, host: '127.0.0.1', port }), TSDB_WRITE_TIMEOUT_MS: String(WRITE_TIMEOUT_MS) }));
    const url = server.url;

    const before = await load(url, 1_000);
    assert.ok(before.written > 0, `answers say written while the database is well: ${JSON.stringify(before)}`);

    await proxy.cut();
    const during = await load(url, 3_000);
    assert.ok(during.worstMs < ANSWER_BOUND_MS, `during the outage the slowest answer took ${during.worstMs} ms (bound ${ANSWER_BOUND_MS}): ${JSON.stringify(during)}`);
    assert.ok(during.queued > 0);
    const health = await getJson(`${url}/health`);
    const tsdb = (health.body.sinks as Record<string, Record<string, unknown>>)['tsdb'];
    assert.equal(health.body.status, 'degraded');
    assert.ok((tsdb?.['backlog_events'] as number) > 0);
    assert.equal(tsdb?.['catch_up_seconds'], null, 'nothing drains while the database is away');

    proxy = await tcpProxy({ host: f.db.connection.host, port: f.db.connection.port }, port);
    const after = await load(url, 3_000);
    assert.ok(after.worstMs < ANSWER_BOUND_MS, `while the backlog drains the slowest answer took ${after.worstMs} ms: ${JSON.stringify(after)}`);

    await waitUntil(async () => (await backlogEvents(url)) === 0, 60_000, 'the backlog to drain');
    assert.deepEqual(await stored(), { n: acknowledged.size, d: acknowledged.size });
    const caughtUp = (await getJson(`${url}/health`)).body.sinks as Record<string, Record<string, unknown>>;
    assert.equal(caughtUp['tsdb']?.['catch_up_seconds'], 0);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /mothership_sink_drain_rate_events_per_second\{sink="tsdb"\} \d/);
    assert.match(metrics, /mothership_sink_catch_up_seconds\{sink="tsdb"\} 0/);
  });

  test('slow: a database holding every packet turns answers into queued instead of holding them', async () => {
    const url = (server as ServerProcess).url;
    await waitUntil(async () => (await backlogEvents(url)) === 0, 30_000, 'a calm start');
    await load(url, 500);
    (proxy as TcpProxy).setDelay(1_500);
    const slow = await load(url, 3_000);
    assert.ok(slow.worstMs < ANSWER_BOUND_MS, `with a slow database the slowest answer took ${slow.worstMs} ms: ${JSON.stringify(slow)}`);
    assert.ok(slow.queued > 0);
    (proxy as TcpProxy).setDelay(0);
    await waitUntil(async () => (await backlogEvents(url)) === 0, 60_000, 'the backlog to drain');
    assert.deepEqual(await stored(), { n: acknowledged.size, d: acknowledged.size });
    const fast = await load(url, 1_000);
    assert.ok(fast.written > 0, `written again once the database is fast: ${JSON.stringify(fast)}`);
  });
});
