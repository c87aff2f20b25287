/**
 * Both sinks from the real server process: the samples reach PostgreSQL and the Loki stand-in;
 * a Loki outage blocks neither ingestion nor PostgreSQL; afterwards Loki gets every event
 * exactly once, including after a restart of the mothership mid-outage. Then the same against a
 * real Grafana Loki (TEST_LOKI_URL; skipped without it): the samples, sent and sent again.
 */
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { before, describe, test } from 'node:test';
import { e2eFixture, getJson, postIngest, waitUntil, withDb } from '../helpers/e2e.js';
import { LokiStandin } from '../helpers/loki-standin.js';
import { queryRange, realLoki, uniqueName, waitForEntries } from '../helpers/loki-real.js';
import { envelope, jsonlMessages, payloadSamples } from '../helpers/samples.js';
import { deleteStream, NATS_URL, natsSkipReason, uniqueStream } from '../helpers/nats.js';
import { startServer } from '../helpers/server-process.js';

const HOUR = 3_600_000;

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

  const natsSkip = natsSkipReason();
  const spools = [
    { name: 'disk', env: (): Record<string, string> => ({}), skip: Promise.resolve<string | null>(null) },
    { name: 'JetStream', env: (): Record<string, string> => ({ SPOOL_URL: NATS_URL, SPOOL_NATS_STREAM: stream }), skip: natsSkip },
  ];
  const stream = uniqueStream('TWO_SINKS');
  f.beforeTeardown(async () => {
    if ((await natsSkip) === null) await deleteStream(NATS_URL, stream);
  });

  for (const spool of spools) test(`a Loki outage never blocks ingestion or PostgreSQL; afterwards every event is in Loki exactly once (spool on ${spool.name})`, async (t) => {
    const skip = await spool.skip;
    if (skip !== null) return t.skip(skip);
    const tenant = `fleet-${spool.name.toLowerCase()}`;
    const node = `node-loki-${spool.name.toLowerCase()}`;
    const shared = spool.name === 'JetStream';
    const env = f.env({
      ...spool.env(),
      LOKI_ENABLED: 'true',
      LOKI_URL: loki.url,
      LOKI_TENANT_ID: tenant,
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
    // On a shared spool the answer never waits for PostgreSQL: another instance may write it.
    const tsdbFirst = shared ? { written: 0, duplicates: 0, errors: 0, queued: 1 } : { written: 1, duplicates: 0, errors: 0 };
    assert.deepEqual(first.body.sink_results, { tsdb: tsdbFirst, loki: { written: 0, duplicates: 0, errors: 0, queued: 1 } });
    await waitUntil(() => loki.entries(tenant).length === 1, 10_000, 'the payload in Loki');
    const [entry] = loki.entries(tenant);
    assert.equal(entry?.labels.source, 'edgebot');
    assert.equal(entry?.labels.service, 'su');
    assert.equal(entry?.labels.severity, 'crit');
    assert.equal(entry?.labels.job, 'edgebot');
    assert.equal(entry?.tsNs, 1_755_882_897_923_308_000n);

    await loki.down();
    const syslog = jsonlMessages('syslog_events.jsonl');
    const during = await postIngest(server.url, envelope(syslog, node), { gzip: true });
    assert.equal(during.status, 200, during.text);
    const tsdbDuring = shared ? { written: 0, duplicates: 0, errors: 0, queued: syslog.length } : { written: syslog.length, duplicates: 0, errors: 0 };
    assert.deepEqual((during.body.sink_results as Record<string, unknown>).tsdb, tsdbDuring);
    await waitUntil(async () => (await getJson(`${server.url}/health`)).body.status === 'degraded', 15_000, 'health to say degraded');

    // The mothership restarts in the middle of the outage: Loki's backlog survives in the spool.
    assert.equal(await server.stop('SIGTERM'), 0);
    server = await startServer(env);
    const more = await postIngest(server.url, envelope(syslog.map((m) => ({ ...m, message: `${String(m.message)} (2)` })), node));
    assert.equal(more.status, 200);

    await loki.up();
    await waitUntil(() => loki.entries(tenant).filter((e) => e.labels.source === node).length >= syslog.length * 2, 30_000, 'the backlog in Loki');
    await waitUntil(async () => {
      const sinks = (await getJson(`${server.url}/health`)).body.sinks as Record<string, { backlog_events: number }>;
      return sinks.loki?.backlog_events === 0;
    }, 15_000, 'the Loki backlog to drain');
    const lines = loki.entries(tenant).filter((e) => e.labels.source === node).map((e) => `${e.stream}|${e.tsNs}|${e.line}`);
    assert.equal(lines.length, syslog.length * 2);
    assert.equal(new Set(lines).size, lines.length, 'no entry twice');
    const rows = (): Promise<unknown> => withDb(f.db.connection, async (c) => (await c.query(`SELECT count(*)::int AS n FROM ${f.schema}.events WHERE source = $1`, [node])).rows[0]?.n);
    await waitUntil(async () => (await rows()) === syslog.length * 2, 15_000, 'every row in PostgreSQL');
    assert.equal(await server.stop('SIGTERM'), 0);
  });
});

const real = await realLoki();

/**
 * Messages moved to the recent past (a real Loki refuses week-old entries, and reads its
 * ingesters back for the last 3 hours only), their span squeezed into `spanMs`, the newest at
 * `newestMs`. Whole seconds move; the fraction of a second each message had stays as it was.
 */
function recentMessages(messages: ReadonlyArray<Record<string, unknown>>, newestMs: number, spanMs: number): Array<Record<string, unknown>> {
  const seconds = messages.map((m) => Math.floor(Date.parse(String(m['timestamp'])) / 1000));
  const newest = Math.max(...seconds);
  const span = newest - Math.min(...seconds);
  const scale = span * 1000 > spanMs ? spanMs / (span * 1000) : 1;
  return messages.map((m, i) => {
    const original = String(m['timestamp']);
    const fraction = /\.\d+/.exec(original)?.[0] ?? '';
    const moved = Math.floor(newestMs / 1000) - Math.round((newest - (seconds[i] as number)) * scale);
    return { ...m, timestamp: `${new Date(moved * 1000).toISOString().slice(0, 19)}${fraction}+00:00` };
  });
}

describe('PostgreSQL and a real Loki', { skip: real.skip }, () => {
  const f = e2eFixture('e2e-two-sinks-real-');

  test('real samples, sent and sent again (is_retry): every event once in Loki and once in PostgreSQL', { timeout: 90_000 }, async () => {
    const run = uniqueName('e2e');
    const server = await startServer(f.env({
      LOKI_ENABLED: 'true',
      LOKI_URL: real.url,
      LOKI_BATCH_TIMEOUT_SECONDS: '0.05',
      LOKI_STATIC_LABELS: 'job=edgebot',
      SHUTDOWN_TIMEOUT_MS: '5000',
    }));
    const now = Date.now();
    const [p1, p2] = payloadSamples();
    assert.ok(p1 !== undefined && p2 !== undefined);
    // What nodes send: the two payloads as they are (moved in time), the syslog events, and the
    // SNMP readings (14 hours of them in 50 minutes: sent again, a batch must stay within Loki's
    // one-hour out-of-order window, or Loki refuses the repeat as "too far behind").
    const batches = [
      { ...p1.body, messages: recentMessages(p1.body.messages, now - 40 * 60_000, HOUR), source: `${run}-edgebot`, timestamp: new Date(now).toISOString() },
      { ...p2.body, messages: recentMessages(p2.body.messages, now - 30 * 60_000, HOUR), source: `${run}-edgebot`, timestamp: new Date(now).toISOString() },
      envelope(recentMessages(jsonlMessages('syslog_events.jsonl'), now - 20 * 60_000, HOUR), `${run}-syslog`),
      envelope(recentMessages(jsonlMessages('snmp_metrics.jsonl'), now - 60_000, 50 * 60_000), `${run}-snmp`),
    ];
    const expected = new Map<string, number>();
    for (const b of batches) expected.set(String(b.source), (expected.get(String(b.source)) ?? 0) + (b.messages as unknown[]).length);
    for (const isRetry of [false, true]) {
      for (const [i, batch] of batches.entries()) {
        const answer = await postIngest(server.url, { ...batch, is_retry: isRetry }, { gzip: i % 2 === 1 });
        assert.equal(answer.status, 200, answer.text);
        const tsdb = (answer.body.sink_results as Record<string, { written: number; duplicates: number; queued?: number }>).tsdb;
        const n = (batch.messages as unknown[]).length;
        // The answer waits for PostgreSQL only while that pays (README, promise 3): on a busy
        // machine it may say `queued`, and the rows below show what was stored.
        const stored = isRetry ? { written: 0, duplicates: n, errors: 0 } : { written: n, duplicates: 0, errors: 0 };
        assert.deepEqual(tsdb, tsdb?.queued === undefined ? stored : { written: 0, duplicates: 0, errors: 0, queued: n }, `tsdb answer for batch ${i} (retry: ${String(isRetry)})`);
      }
    }
    await waitUntil(async () => {
      const sinks = (await getJson(`${server.url}/health`)).body.sinks as Record<string, { backlog_events: number }>;
      return sinks.loki?.backlog_events === 0;
    }, 30_000, 'the Loki backlog to drain');

    const range = { startMs: now - 2 * HOUR, endMs: now + 60_000 };
    for (const [source, count] of expected) {
      const entries = await waitForEntries(real.url, `{source=${JSON.stringify(source)}}`, range, count);
      assert.equal(entries.length, count, `${source}: one entry per message`);
      assert.equal(new Set(entries.map((e) => `${JSON.stringify(e.labels)}|${e.tsNs}|${e.line}`)).size, count, `${source}: no entry twice`);
      assert.equal(new Set(entries.map((e) => (JSON.parse(e.line) as Record<string, unknown>)['_id'])).size, count, `${source}: every event id once`);
    }
    // the second payload, as Loki shows it: its labels, Loki's additions, the exact time
    const [su] = await queryRange(real.url, `{source="${run}-edgebot", service="su"}`, range);
    assert.deepEqual(su?.labels, { source: `${run}-edgebot`, job: 'edgebot', type: 'syslog', service: 'su', severity: 'crit', host: 'testserver', service_name: 'su' });
    assert.equal(su?.metadata['detected_level'], 'crit');
    const suTime = String((batches[1]?.messages as Array<Record<string, unknown>>)[0]?.['timestamp']);
    assert.equal(su?.tsNs, BigInt(Date.parse(suTime)) * 1_000_000n + BigInt(Number(/\.\d{3}(\d{3})/.exec(suTime)?.[1] ?? '0') * 1000));

    const health = (await getJson(`${server.url}/health`)).body.sinks as Record<string, { dead_letters?: number }>;
    assert.equal(health.loki?.dead_letters, 0, 'nothing dead-lettered');
    const stored = async (): Promise<Record<string, number[]>> => {
      const rows = await withDb(f.db.connection, async (c) =>
        (await c.query(`SELECT source, count(*)::int AS n, count(DISTINCT id)::int AS ids FROM ${f.schema}.events WHERE source LIKE $1 GROUP BY source`, [`${run}-%`])).rows as Array<{ source: string; n: number; ids: number }>,
      );
      return Object.fromEntries(rows.map((r) => [r.source, [r.n, r.ids]]));
    };
    const once = Object.fromEntries([...expected].map(([source, n]) => [source, [n, n]]));
    await waitUntil(async () => isDeepStrictEqual(await stored(), once), 15_000, 'every row in PostgreSQL').catch(() => undefined);
    assert.deepEqual(await stored(), once);
    assert.equal(await server.stop('SIGTERM'), 0);
  });
});
