/**
 * Promise 3 (sinks are independent; an outage never blocks ingestion while the spool has room)
 * and graceful shutdown: PostgreSQL vanishes mid-ingest behind a TCP proxy, the node keeps
 * sending, then the database comes back.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tcpProxy, type TcpProxy } from '../helpers/database.js';
import { backlogEvents, e2eFixture, getJson, pgUrl, postIngest, waitUntil, withDb } from '../helpers/e2e.js';
import { startServer } from '../helpers/server-process.js';

describe('a PostgreSQL outage during ingest', () => {
  const f = e2eFixture('e2e-outage-');
  let proxy: TcpProxy | null = null;

  f.beforeTeardown(async () => {
    await proxy?.cut();
  });

  const count = (source: string) =>
    withDb(f.db.connection, async (c) => (await c.query(`SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM ${f.schema}.events WHERE source = $1`, [source])).rows[0] as { n: number; d: number });

  test('ingestion goes on (queued), /health says degraded, and after recovery all lands exactly once', async () => {
    proxy = await tcpProxy({ host: f.db.connection.host, port: f.db.connection.port });
    const port = proxy.port;
    const viaProxy = pgUrl({ ...f.db.connection, host: '127.0.0.1', port });
    const server = await startServer(f.env({ TSDB_URL: viaProxy, TSDB_WRITE_TIMEOUT_MS: '1000', SHUTDOWN_TIMEOUT_MS: '20000' }));
    let sent = 0;
    const send = async (n: number): Promise<Record<string, unknown>> => {
      const messages = Array.from({ length: n }, () => ({ message: `outage ${sent}`, seq: sent++, timestamp: new Date(Date.UTC(2026, 1, 1) + sent).toISOString() }));
      const res = await postIngest(server.url, { messages, source: 'outage-node' });
      assert.equal(res.status, 200, res.text);
      return res.body;
    };

    const before = await send(20);
    assert.deepEqual(before.sink_results, { tsdb: { written: 20, duplicates: 0, errors: 0 } });

    await proxy.cut();
    const during = [];
    for (let i = 0; i < 10; i++) during.push(await send(20));
    assert.ok(
      during.some((b) => (b.sink_results as { tsdb: { queued?: number } }).tsdb.queued === 20),
      'batches are answered queued while the database is away',
    );
    await waitUntil(async () => (await getJson(`${server.url}/health`)).body.status === 'degraded', 10_000, 'health to say degraded');
    const health = await getJson(`${server.url}/health`);
    assert.equal(health.status, 200);
    assert.ok(((health.body.sinks as Record<string, { backlog_events: number }>).tsdb?.backlog_events ?? 0) > 0);

    proxy = await tcpProxy({ host: f.db.connection.host, port: f.db.connection.port }, port);
    await waitUntil(async () => (await backlogEvents(server.url)) === 0, 60_000, 'the backlog to drain after recovery');
    const after1 = await send(20);
    assert.deepEqual(after1.sink_results, { tsdb: { written: 20, duplicates: 0, errors: 0 } });
    assert.deepEqual(await count('outage-node'), { n: sent, d: sent });
    await waitUntil(async () => (await getJson(`${server.url}/health`)).body.status === 'healthy', 15_000, 'health to recover');

    // Graceful stop with a backlog: SIGTERM drains it before exiting.
    await proxy.cut();
    for (let i = 0; i < 5; i++) await send(10);
    proxy = await tcpProxy({ host: f.db.connection.host, port: f.db.connection.port }, port);
    assert.equal(await server.stop('SIGTERM'), 0);
    assert.deepEqual(await count('outage-node'), { n: sent, d: sent });
  });
});
