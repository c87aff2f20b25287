/**
 * Both sinks from the real server process: the samples reach PostgreSQL and the Loki stand-in;
 * a Loki outage blocks neither ingestion nor PostgreSQL; afterwards Loki gets every event
 * exactly once, including after a restart of the mothership mid-outage.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { e2eFixture, getJson, postIngest, waitUntil, withDb } from '../helpers/e2e.js';
import { LokiStandin } from '../helpers/loki-standin.js';
import { envelope, jsonlMessages, payloadSamples } from '../helpers/samples.js';
import { startServer } from '../helpers/server-process.js';

describe('PostgreSQL and Loki together', () => {
  const f = e2eFixture('e2e-two-sinks-');
  let loki: LokiStandin;

  before(async () => {
    // The samples date from 2024-2025: the stand-in accepts any age, as the mothership's own filter is off here.
    loki = await LokiStandin.start({ maxAgeMs: null });
  });

  f.beforeTeardown(async () => {
    await loki.close();
  });

  test('a Loki outage never blocks ingestion or PostgreSQL; afterwards every event is in Loki exactly once', async () => {
    const env = f.env({
      LOKI_ENABLED: 'true',
      LOKI_URL: loki.url,
      LOKI_TENANT_ID: 'fleet-a',
      LOKI_BATCH_TIMEOUT_SECONDS: '0.05',
      LOKI_MAX_AGE_HOURS: '0',
      LOKI_STATIC_LABELS: 'job=edgebot',
      SHUTDOWN_TIMEOUT_MS: '5000',
    });
    let server = await startServer(env);
    const payload = payloadSamples()[1];
    assert.ok(payload !== undefined);
    const first = await postIngest(server.url, payload.json);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.body.sink_results, { tsdb: { written: 1, duplicates: 0, errors: 0 }, loki: { written: 0, duplicates: 0, errors: 0, queued: 1 } });
    await waitUntil(() => loki.entries('fleet-a').length === 1, 10_000, 'the payload in Loki');
    const [entry] = loki.entries('fleet-a');
    assert.equal(entry?.labels.source, 'edgebot');
    assert.equal(entry?.labels.service, 'su');
    assert.equal(entry?.labels.severity, 'crit');
    assert.equal(entry?.labels.job, 'edgebot');
    assert.equal(entry?.tsNs, 1_755_882_897_923_308_000n);

    await loki.down();
    const syslog = jsonlMessages('syslog_events.jsonl');
    const during = await postIngest(server.url, envelope(syslog, 'node-loki'), { gzip: true });
    assert.equal(during.status, 200, during.text);
    assert.deepEqual((during.body.sink_results as Record<string, unknown>).tsdb, { written: syslog.length, duplicates: 0, errors: 0 });
    await waitUntil(async () => (await getJson(`${server.url}/health`)).body.status === 'degraded', 15_000, 'health to say degraded');

    // The mothership restarts in the middle of the outage: Loki's backlog survives in the spool.
    assert.equal(await server.stop('SIGTERM'), 0);
    server = await startServer(env);
    const more = await postIngest(server.url, envelope(syslog.map((m) => ({ ...m, message: `${String(m.message)} (2)` })), 'node-loki'));
    assert.equal(more.status, 200);

    await loki.up();
    await waitUntil(() => loki.entries('fleet-a').filter((e) => e.labels.source === 'node-loki').length >= syslog.length * 2, 30_000, 'the backlog in Loki');
    await waitUntil(async () => {
      const sinks = (await getJson(`${server.url}/health`)).body.sinks as Record<string, { backlog_events: number }>;
      return sinks.loki?.backlog_events === 0;
    }, 15_000, 'the Loki backlog to drain');
    const lines = loki.entries('fleet-a').filter((e) => e.labels.source === 'node-loki').map((e) => `${e.stream}|${e.tsNs}|${e.line}`);
    assert.equal(lines.length, syslog.length * 2);
    assert.equal(new Set(lines).size, lines.length, 'no entry twice');
    const rows = await withDb(f.db.connection, async (c) => (await c.query(`SELECT count(*)::int AS n FROM ${f.schema}.events WHERE source = 'node-loki'`)).rows[0]?.n);
    assert.equal(rows, syslog.length * 2);
    assert.equal(await server.stop('SIGTERM'), 0);
  });
});
