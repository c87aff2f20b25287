/**
 * End to end: the built server as a child process, real node payloads over HTTP, rows checked
 * field by field in PostgreSQL.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { backlogEvents, e2eFixture, getJson, postIngest, waitUntil, withDb } from '../helpers/e2e.js';
import { envelope, jsonlMessages, payloadSamples, weatherMessages } from '../helpers/samples.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const SEVERITY_NAMES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'];

describe('end to end against a real server process', () => {
  const f = e2eFixture('e2e-ingest-');
  let server: ServerProcess;

  before(async () => {
    server = await startServer(f.env({ MAX_MESSAGES_PER_BATCH: '100000' }));
  });

  f.beforeTeardown(async () => {
    const code = await server?.stop();
    assert.equal(code, 0, `server exit code; output:\n${server?.output.slice(-20).join('\n')}`);
  });

  const rows = (where: string, params: unknown[] = []) =>
    withDb(f.db.connection, async (c) => (await c.query(`SELECT * FROM ${f.schema}.events WHERE ${where} ORDER BY time, id`, params)).rows as Array<Record<string, unknown>>);

  test('the payloads nodes send, plain and gzip, land once with every field', async () => {
    for (const sample of payloadSamples()) {
      const plain = await postIngest(server.url, sample.json);
      assert.equal(plain.status, 200, plain.text);
      assert.equal((plain.body.sink_results as { tsdb: { written: number } }).tsdb.written, 1);
      assert.ok(sample.gzip !== null);
      const gz = await postIngest(server.url, sample.gzip, { headers: { 'content-encoding': 'gzip' } });
      assert.equal(gz.status, 200, gz.text);
      assert.deepEqual(gz.body.sink_results, { tsdb: { written: 0, duplicates: 1, errors: 0 } });
    }
    const stored = await rows(`source = 'edgebot'`);
    assert.equal(stored.length, 2);
    const [first, second] = payloadSamples().map((s) => s.body.messages[0] as Record<string, unknown>);
    const byMessage = new Map(stored.map((r) => [r.message, r]));
    const su = byMessage.get(second?.message);
    assert.ok(su !== undefined);
    assert.equal((su.time as Date).toISOString(), '2025-08-22T17:14:57.923Z');
    assert.equal(su.type, 'syslog');
    assert.equal(su.service, 'su');
    assert.equal(su.host, 'testserver');
    assert.equal(su.severity, 'crit');
    assert.deepEqual(su.data, second);
    assert.match(String(su.id), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const unparsed = byMessage.get(first?.message);
    assert.equal(unparsed?.severity, 'unknown');
    assert.equal(unparsed?.host, 'unknown');
    // Microseconds survive: compare in SQL, where timestamptz keeps them.
    const micros = await withDb(f.db.connection, async (c) => (await c.query(`SELECT to_char(time, 'US') AS us FROM ${f.schema}.events WHERE message = $1`, [second?.message])).rows[0]);
    assert.equal(micros?.us, '923308');
  });

  test('syslog, SNMP and weather samples land field by field; a resend adds nothing', async () => {
    const syslog = jsonlMessages('syslog_events.jsonl');
    const snmp = jsonlMessages('snmp_metrics.jsonl');
    const weather = weatherMessages();
    for (const [source, messages] of [['node-syslog', syslog], ['node-snmp', snmp], ['node-weather', weather]] as const) {
      const body = envelope(messages, source);
      const first = await postIngest(server.url, body, { gzip: true });
      assert.equal(first.status, 200, first.text);
      assert.equal(first.body.written, messages.length);
      const again = await postIngest(server.url, { ...body, is_retry: true }, { gzip: true });
      assert.equal(again.status, 200);
      assert.deepEqual(again.body.sink_results, { tsdb: { written: 0, duplicates: messages.length, errors: 0 } });
    }
    const syslogRows = await rows(`source = 'node-syslog'`);
    assert.equal(syslogRows.length, syslog.length);
    for (const m of syslog) {
      const row = syslogRows.find((r) => isDeepStrictEqual(r.data, m));
      assert.ok(row !== undefined, `row for ${String(m.message)}`);
      assert.equal((row.time as Date).toISOString(), new Date(String(m.timestamp)).toISOString());
      assert.equal(row.host, m.host);
      assert.equal(row.service, m.program);
      assert.equal(row.severity, SEVERITY_NAMES[Number(m.severity)]);
      assert.equal(row.message, m.message);
      assert.equal(row.source, 'node-syslog');
    }
    const snmpCount = await withDb(f.db.connection, async (c) => (await c.query(`SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM ${f.schema}.events WHERE source = 'node-snmp'`)).rows[0]);
    // Identical readings in the sample are distinct events (occurrence index), so all of them land.
    assert.deepEqual(snmpCount, { n: snmp.length, d: snmp.length });
    const metric = await withDb(f.db.connection, async (c) =>
      (await c.query(`SELECT host, metric_name, value, unit FROM ${f.schema}.metrics WHERE source = 'node-snmp' AND metric_name = $1 ORDER BY time LIMIT 1`, [snmp[0]?.metric_name])).rows[0],
    );
    assert.equal(metric?.host, snmp.find((m) => m.metric_name === snmp[0]?.metric_name)?.host);
    assert.equal(Number(metric?.value), snmp.find((m) => m.metric_name === snmp[0]?.metric_name)?.value);
    const weatherRows = await rows(`source = 'node-weather'`);
    assert.equal(weatherRows.length, weather.length);
    assert.equal((weatherRows[0]?.data as Record<string, unknown>).temperature_celsius, weather[0]?.temperature_celsius);
  });

  test('hostile and broken input gets the documented answers, never a 500, and the server stays up', async () => {
    const cases: Array<{ name: string; body: unknown; status: number; error?: string; check?: (b: Record<string, unknown>) => void }> = [
      { name: 'invalid JSON', body: '{"messages": [1,', status: 400, error: 'invalid_json' },
      { name: 'not an object', body: '[{"messages": []}]', status: 400, error: 'invalid_envelope' },
      { name: 'messages is a string', body: { messages: 'nope' }, status: 400, error: 'invalid_envelope' },
      { name: 'deep nesting in the envelope', body: `{"messages":[${'['.repeat(100_000)}${']'.repeat(100_000)}]}`, status: 200, check: (b) => assert.equal(b.errors, 1) },
      {
        name: 'NUL bytes and lone surrogates',
        body: `{"messages":[{"message":"a\\u0000b","k\\u0000":"\\ud800x","host":"\\udfff"}],"source":"hostile"}`,
        status: 200,
        check: (b) => assert.equal(b.written, 1),
      },
      {
        name: 'wrong types everywhere',
        body: { messages: [{ timestamp: { a: 1 }, severity: [7], host: 42, service: true, message: { nested: 1 }, type: null }, 12, null, true, 'plain string'], source: 99, timestamp: 'garbage', is_retry: 'yes', batch_size: -1 },
        status: 200,
        check: (b) => {
          assert.equal(b.written, 2);
          assert.equal(b.errors, 3);
        },
      },
      { name: 'absurd times', body: { messages: [{ message: 't1', timestamp: '9999-12-31T23:59:59Z' }, { message: 't2', timestamp: 1e22 }, { message: 't3', timestamp: 'yesterday' }], source: 'times' }, status: 200, check: (b) => assert.equal(b.written, 3) },
      { name: 'a 5 MB string', body: { messages: [{ message: 'x'.repeat(5 * 1024 * 1024) }], source: 'big' }, status: 200, check: (b) => assert.equal(b.written, 1) },
      { name: '100k tiny messages', body: { messages: Array.from({ length: 100_000 }, (_, i) => ({ m: i })), source: 'many' }, status: 200, check: (b) => assert.equal(b.written, 100_000) },
    ];
    for (const c of cases) {
      const res = await postIngest(server.url, c.body);
      assert.equal(res.status, c.status, `${c.name}: ${res.text.slice(0, 300)}`);
      if (c.error !== undefined) {
        assert.equal(res.body.status, 'error', c.name);
        assert.equal(res.body.error, c.error, c.name);
        assert.equal(typeof res.body.message, 'string', c.name);
      }
      c.check?.(res.body);
    }
    // A batch far bigger than usual may be answered `queued` (its write outlasts the answer's wait): count once delivered.
    await waitUntil(async () => (await backlogEvents(server.url)) === 0, 60_000, 'the backlog to drain');
    const hostile = await rows(`source = 'hostile'`);
    assert.equal(hostile.length, 1);
    assert.equal(hostile[0]?.message, 'a\uFFFDb');
    assert.deepEqual(hostile[0]?.data, { message: 'a\uFFFDb', 'k\uFFFD': '\uFFFDx', host: '\uFFFD' });
    const times = await rows(`source = 'times'`);
    assert.equal(times.length, 3);
    const many = await withDb(f.db.connection, async (c) => (await c.query(`SELECT count(*)::int AS n FROM ${f.schema}.events WHERE source = 'many'`)).rows[0]);
    assert.equal(many?.n, 100_000);
    const health = await getJson(`${server.url}/health`);
    assert.equal(health.status, 200);
    assert.ok(!server.output.some((l) => l.includes('"level":50') && l.includes('internal_error')), 'no internal errors logged');
  });
});
