import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import type pg from 'pg';
import type { PgConnection, TsdbConfig } from '../../src/config/config.js';
import { isMothershipError } from '../../src/lib/errors.js';
import { copyText } from '../../src/pipeline/copy-text.js';
import type { IngestEvent } from '../../src/pipeline/event.js';
import { batchOf, type SendOutcome } from '../../src/sinks/sink.js';
import { detectTimescale } from '../../src/sinks/tsdb/timescale.js';
import { createPool } from '../../src/sinks/tsdb/pool.js';
import { classifyTsdbError, createTsdbSink, describeTsdb, RETENTION_INTERVAL_MS, type TsdbSink, type TsdbSinkDeps } from '../../src/sinks/tsdb/sink.js';
import { TsdbWriter } from '../../src/sinks/tsdb/writer.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { closedPort, connect, databaseTargets, dropSchema, tcpProxy, uniqueSchema } from '../helpers/database.js';

const T0 = Date.UTC(2025, 7, 22, 17, 11, 27, 880);
/** Batches at least this big take the COPY path, smaller ones unnest (DEFAULT_COPY_THRESHOLD). */
const BIG = 300;

function event(overrides: Partial<IngestEvent> = {}): IngestEvent {
  const data = (overrides.data as Record<string, unknown> | undefined) ?? { host: 'switch01', metric_name: 'ifInOctets', value: 1397151 };
  return {
    id: randomUUID(), timeMs: T0, timeNanos: 579_123, receivedAtMs: T0 + 2_000,
    source: 'edge-1', type: 'snmp', service: 'snmp', host: 'switch01', severity: null, message: null,
    data, dataJson: JSON.stringify(data), ...overrides,
  };
}

function events(n: number, make: (i: number) => Partial<IngestEvent> = () => ({})): IngestEvent[] {
  return Array.from({ length: n }, (_, i) => event({ timeMs: T0 + i, ...make(i) }));
}

const signal = (): AbortSignal => new AbortController().signal;

function assertDelivered(outcome: SendOutcome, written: number, duplicates: number, duplicatePositions?: readonly number[]): void {
  assert.equal(outcome.kind, 'delivered', outcome.kind === 'delivered' ? '' : outcome.error.message);
  assert.ok(outcome.kind === 'delivered');
  assert.deepEqual({ written: outcome.written, duplicates: outcome.duplicates }, { written, duplicates });
  // The sink always says which events were the duplicates.
  assert.equal(outcome.duplicatePositions?.length, duplicates);
  if (duplicatePositions !== undefined) assert.deepEqual(outcome.duplicatePositions, duplicatePositions);
}

function assertRetryable(outcome: SendOutcome, code: 'sink_unavailable' | 'sink_timeout'): string {
  assert.equal(outcome.kind, 'retryable', `expected retryable, got ${JSON.stringify(outcome)}`);
  assert.ok(outcome.kind === 'retryable');
  assert.equal(outcome.error.code, code, outcome.error.message);
  return outcome.error.message;
}

function assertRejected(outcome: SendOutcome, sqlstateClass: string): string {
  assert.equal(outcome.kind, 'rejected', `expected rejected, got ${JSON.stringify(outcome)}`);
  assert.ok(outcome.kind === 'rejected');
  assert.equal(outcome.error.code, 'sink_rejected');
  assert.match(outcome.error.message, new RegExp(`SQLSTATE ${sqlstateClass}`));
  return outcome.error.message;
}

const targets = await databaseTargets();
after(async () => {
  for (const target of targets) await target.close();
});

for (const target of targets) {
  describe(`tsdb sink on the ${target.name} PostgreSQL`, () => {
    let connection: PgConnection;
    let db: pg.Client;
    const schemas: string[] = [];
    const sinks: TsdbSink[] = [];

    before(async () => {
      connection = await target.connection();
      db = await connect(connection);
    });
    afterEach(async () => {
      for (const sink of sinks.splice(0)) await sink.shutdown();
    });
    after(async () => {
      for (const schema of schemas) await dropSchema(connection, schema);
      await db.end();
    });

    function config(schema: string, overrides: Partial<TsdbConfig> = {}): TsdbConfig {
      return {
        enabled: true, mode: 'external', connection, schema, poolMax: 2, writeTimeoutMs: 30_000, chunkInterval: '1 day',
        compressAfter: null, retentionDays: 0, embedded: { dataDir: '/nonexistent', port: 0 }, ...overrides,
      };
    }

    function sinkFor(schema: string, overrides: Partial<TsdbConfig> = {}, deps: TsdbSinkDeps = {}, conn: PgConnection = connection): TsdbSink {
      const sink = createTsdbSink(config(schema, overrides), conn, silentLogger(), deps);
      sinks.push(sink);
      return sink;
    }

    async function started(overrides: Partial<TsdbConfig> = {}, deps: TsdbSinkDeps = {}): Promise<{ sink: TsdbSink; schema: string }> {
      const schema = uniqueSchema();
      schemas.push(schema);
      const sink = sinkFor(schema, overrides, deps);
      await sink.start(signal());
      return { sink, schema };
    }

    async function count(schema: string): Promise<number> {
      return Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.events`)).rows[0]?.n);
    }

    it('migrates once, whether started again or by two instances at once', async () => {
      const schema = uniqueSchema();
      schemas.push(schema);
      await Promise.all([sinkFor(schema).start(signal()), sinkFor(schema).start(signal())]);
      const first = await db.query(`SELECT version, name, applied_at FROM ${schema}.mothership_migrations`);
      const again = sinkFor(schema);
      await again.start(signal());
      const second = await db.query(`SELECT version, name, applied_at FROM ${schema}.mothership_migrations`);
      assert.equal(first.rows.length, 1);
      assert.deepEqual(second.rows, first.rows);
      const mode = target.name === 'timescaledb' ? 'timescaledb' : 'postgresql';
      assert.match(String(first.rows[0]?.name), new RegExp(`\\(${mode}\\)$`));

      const timescale = await detectTimescale(db);
      assert.equal(timescale.installed, mode === 'timescaledb');
      const description = describeTsdb(config(schema), connection, again);
      assert.equal(description.mode, mode);
      assert.equal(description.target, `${connection.host}:${connection.port}/${connection.database}`);
      if (connection.password !== '') assert.ok(!JSON.stringify(description).includes(connection.password));

      const indexes = (await db.query<{ indexname: string; indexdef: string }>(
        'SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname', [schema],
      )).rows;
      assert.match(indexes[0]?.indexdef ?? '', /UNIQUE INDEX .* \(id, "?time"?\)/);
      if (mode === 'timescaledb') {
        // The hypertable's own (time DESC) index instead of the plain table's BRIN.
        assert.deepEqual(indexes.map((i) => i.indexname), ['events_id_time_key', 'events_service_time_idx', 'events_time_idx', 'mothership_migrations_pkey']);
      } else {
        assert.deepEqual(indexes.map((i) => i.indexname), ['events_id_time_key', 'events_service_time_idx', 'events_time_brin', 'mothership_migrations_pkey']);
        assert.match(indexes[2]?.indexdef ?? '', /USING brin/);
      }
      const views = (await db.query<{ table_name: string }>(
        'SELECT table_name FROM information_schema.views WHERE table_schema = $1 ORDER BY 1', [schema],
      )).rows.map((r) => r.table_name);
      assert.deepEqual(views, ['events_per_minute', 'logs', 'metrics']);
    });

    it('stores every field as sent, on both write paths (unnest and COPY)', async () => {
      const { sink, schema } = await started();
      const tricky = 'tab\there\nnew line\r\\N back\\slash "quoted" \'single\' ünïcødé 🚀 \\. end';
      const special = event({
        timeMs: T0, timeNanos: 579_999, message: tricky, host: null, severity: 'warning', service: 'nginx', type: null,
        data: { message: tricky, nested: { a: [1, 2.5, true, null], 'key\twith\ttabs': '\\' }, big: 1e21, neg: -0.001 },
      });
      const fixed = special;
      const small = [fixed, event({ timeMs: T0 + 1, timeNanos: 1_000 })];
      const big = events(BIG, (i) => ({ timeMs: T0 + 10_000 + i, message: i === 7 ? tricky : `line ${i}` }));
      assertDelivered(await sink.send(batchOf(small), signal()), 2, 0);
      assertDelivered(await sink.send(batchOf(big), signal()), BIG, 0);

      interface Row {
        time: string; received_at: string; source: string | null; type: string | null; service: string | null; host: string | null;
        severity: string | null; message: string | null; data: unknown; id: string;
      }
      const { rows } = await db.query<Row>(
        `SELECT to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time,
                to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS received_at,
                source, type, service, host, severity, message, data, id::text AS id
           FROM ${schema}.events`,
      );
      assert.equal(rows.length, 2 + BIG);
      const byId = new Map(rows.map((r) => [r.id, r]));
      assert.deepEqual(byId.get(fixed.id), {
        time: '2025-08-22T17:11:27.880579Z', received_at: '2025-08-22T17:11:29.880000Z', source: 'edge-1', type: null,
        service: 'nginx', host: null, severity: 'warning', message: tricky, data: fixed.data, id: fixed.id,
      });
      assert.equal(byId.get(small[1]!.id)?.time, '2025-08-22T17:11:27.881001Z');
      for (const e of big) {
        const row = byId.get(e.id);
        assert.ok(row, `event ${e.id} missing`);
        assert.equal(row.message, e.message);
        assert.deepEqual(row.data, e.data);
        assert.equal(row.time, new Date(e.timeMs).toISOString().replace('Z', '579Z'));
      }
    });

    it('works for a role that owns only its schema, with no CREATE or TEMPORARY on the database', async () => {
      const name = uniqueSchema();
      const password = `pw-${randomUUID()}`;
      await db.query(`CREATE DATABASE ${name}`);
      await db.query(`CREATE ROLE ${name} LOGIN PASSWORD '${password}'`);
      const owner = await connect({ ...connection, database: name });
      try {
        await owner.query(`REVOKE ALL ON DATABASE ${name} FROM PUBLIC; GRANT CONNECT ON DATABASE ${name} TO ${name}`);
        await owner.query(`CREATE SCHEMA ${name} AUTHORIZATION ${name}`);
        await owner.end();
        const limited: PgConnection = { ...connection, database: name, user: name, password };
        const sink = sinkFor(name, {}, {}, limited);
        await sink.start(signal());
        assertDelivered(await sink.send(batchOf(events(3)), signal()), 3, 0);
        // No TEMPORARY privilege: the big batch goes through unnest instead of COPY + staging.
        assertDelivered(await sink.send(batchOf(events(BIG, (i) => ({ timeMs: T0 + 100 + i }))), signal()), BIG, 0);
        assertDelivered(await sink.send(batchOf([]), signal()), 0, 0);
        await sink.shutdown();
      } finally {
        await owner.end().catch(() => undefined);
        await db.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await db.query(`DROP ROLE IF EXISTS ${name}`);
      }
    });

    it('stores a retried batch once: the same batch again is all duplicates', async () => {
      const { sink, schema } = await started();
      const small = events(5);
      const big = events(BIG, (i) => ({ timeMs: T0 + 1_000 + i }));
      assertDelivered(await sink.send(batchOf(small), signal()), 5, 0);
      assertDelivered(await sink.send(batchOf(big), signal()), BIG, 0);
      assertDelivered(await sink.send(batchOf(small), signal()), 0, 5);
      assertDelivered(await sink.send(batchOf(big), signal()), 0, BIG);
      assertDelivered(await sink.send(batchOf([...small.slice(0, 2), event({ timeMs: T0 + 99_999 })]), signal()), 1, 2);
      assert.equal(await count(schema), 5 + BIG + 1);
    });

    it('writes new rows with a plain COPY; a batch holding a stored row is redone skipping it, then plain COPY resumes', async () => {
      const { sink, schema } = await started();
      const first = events(3);
      assertDelivered(await sink.send(batchOf(first), signal()), 3, 0);
      assert.deepEqual(sink.writePaths(), { copy: 1, conflicts: 0, skipDuplicates: 0 });
      // One resent row among new ones: the plain COPY fails as a whole and nothing of it stays.
      assertDelivered(await sink.send(batchOf([event({ timeMs: T0 + 50 }), first[1]!, event({ timeMs: T0 + 51 })]), signal()), 2, 1, [1]);
      assert.deepEqual(sink.writePaths(), { copy: 1, conflicts: 1, skipDuplicates: 1 });
      // Duplicates came last time: the next write skips the plain COPY; finding none, the one after takes it again.
      assertDelivered(await sink.send(batchOf(events(2, (i) => ({ timeMs: T0 + 60 + i }))), signal()), 2, 0);
      assert.deepEqual(sink.writePaths(), { copy: 1, conflicts: 1, skipDuplicates: 2 });
      const big = events(BIG, (i) => ({ timeMs: T0 + 5_000 + i }));
      assertDelivered(await sink.send(batchOf(big), signal()), BIG, 0);
      assert.deepEqual(sink.writePaths(), { copy: 2, conflicts: 1, skipDuplicates: 2 });
      // With the spool's own rows (three records' worth, the middle one resent): COPY, conflict, COPY-staging.
      const more = events(BIG, (i) => ({ timeMs: T0 + 9_000 + i }));
      const rows = [Buffer.from(copyText(big.slice(BIG / 2)))];
      assertDelivered(await sink.send(batchOf([...more.slice(0, 10), ...big.slice(BIG / 2), ...more.slice(10)], [
        Buffer.from(copyText(more.slice(0, 10))), rows[0]!, Buffer.from(copyText(more.slice(10))),
      ]), signal()), BIG, BIG / 2, Array.from({ length: BIG / 2 }, (_, i) => 10 + i));
      assert.deepEqual(sink.writePaths(), { copy: 2, conflicts: 2, skipDuplicates: 3 });
      assert.equal(await count(schema), 3 + 2 + 2 + 2 * BIG);
      const stored = await db.query<{ message: string | null; data: unknown }>(`SELECT message, data FROM ${schema}.events WHERE id = $1`, [more[7]!.id]);
      assert.deepEqual(stored.rows, [{ message: null, data: more[7]!.data }]);
    });

    it('counts repeats inside one batch as duplicates', async () => {
      const { sink, schema } = await started();
      const [a, b] = events(2);
      assertDelivered(await sink.send(batchOf([a!, b!, a!, a!]), signal()), 2, 2, [2, 3]);
      const half = events(BIG / 2, (i) => ({ timeMs: T0 + 1_000 + i }));
      assertDelivered(await sink.send(batchOf([...half, ...half]), signal()), BIG / 2, BIG / 2);
      // Same id at another time is another row: idempotency is on (id, time).
      assertDelivered(await sink.send(batchOf([{ ...a!, timeMs: a!.timeMs + 1 }]), signal()), 1, 0);
      assert.equal(await count(schema), 2 + BIG / 2 + 1);
    });

    it('lands a batch of 100,000 tiny events', async () => {
      const { sink, schema } = await started({ writeTimeoutMs: 120_000 });
      const batch = events(100_000, (i) => ({ timeMs: T0 + i * 10, data: { v: i }, dataJson: `{"v":${i}}`, source: null, host: null }));
      assertDelivered(await sink.send(batchOf(batch), signal()), 100_000, 0);
      assert.equal(await count(schema), 100_000);
    });

    it('rejects data PostgreSQL refuses, with the SQLSTATE and without the values, and keeps working', async () => {
      const { sink, schema } = await started();
      const broken = event({ dataJson: '{"secret-ish value": ' });
      for (const batch of [[broken], [broken, ...events(BIG)], [...events(BIG), broken]]) {
        const message = assertRejected(await sink.send(batchOf(batch), signal()), '22P02');
        assert.ok(!message.includes('secret-ish'), message);
        if (connection.password !== '') assert.ok(!message.includes(connection.password));
      }
      // Text PostgreSQL cannot store (NUL) is a data error too, never a crash.
      assertRejected(await sink.send(batchOf([event({ message: 'a\u0000b' })]), signal()), '22');
      assertRejected(await sink.send(batchOf(events(BIG, (i) => ({ message: i === 3 ? 'a\u0000b' : 'ok' }))), signal()), '22');
      assert.equal(await count(schema), 0);
      assertDelivered(await sink.send(batchOf(events(3)), signal()), 3, 0);
      assertDelivered(await sink.send(batchOf(events(BIG, (i) => ({ timeMs: T0 + 500 + i }))), signal()), BIG, 0);
      assert.equal(await count(schema), 3 + BIG);
    });

    it('classifies an unreachable server as retryable, at start and on a write', async () => {
      const port = await closedPort();
      const schema = uniqueSchema();
      const sink = sinkFor(schema, {}, {}, { ...connection, port });
      await assert.rejects(sink.start(signal()), (err) => isMothershipError(err) && err.code === 'sink_unavailable');
      assertRetryable(await sink.send(batchOf(events(1)), signal()), 'sink_unavailable');
      assert.deepEqual(await sink.healthcheck(signal()), { healthy: false, reason: 'not started' });

      const pool = createPool({ ...connection, port }, { max: 1, connectionTimeoutMs: 2_000 }, silentLogger());
      try {
        const writer = new TsdbWriter(pool, { schema, timeoutMs: 5_000 });
        const err = await writer.write(batchOf(events(1))).then(() => null, (e: unknown) => e);
        const message = assertRetryable(classifyTsdbError(err, { target: 'x', timeoutMs: 5_000 }), 'sink_unavailable');
        assert.match(message, /ECONNREFUSED/);
      } finally {
        await pool.end();
      }
    });

    it('answers retryable and unhealthy when the server vanishes, then recovers', async () => {
      const proxy = await tcpProxy(connection);
      const schema = uniqueSchema();
      schemas.push(schema);
      const sink = sinkFor(schema, { writeTimeoutMs: 3_000 }, {}, { ...connection, host: '127.0.0.1', port: proxy.port });
      await sink.start(signal());
      assert.deepEqual(await sink.healthcheck(signal()), { healthy: true });
      assertDelivered(await sink.send(batchOf(events(2)), signal()), 2, 0);
      await proxy.cut();
      assertRetryable(await sink.send(batchOf(events(2, (i) => ({ timeMs: T0 + 10 + i }))), signal()), 'sink_unavailable');
      const health = await sink.healthcheck(signal());
      assert.equal(health.healthy, false);
      assert.match(health.reason ?? '', /unreachable|ECONNREFUSED/);
      await sink.shutdown();
      await sink.shutdown();
      assertRetryable(await sink.send(batchOf(events(1)), signal()), 'sink_unavailable');
      assert.equal(await count(schema), 2);
    });

    it('gives up at the deadline or on abort, retryable, and leaves no connection mid-transaction', async () => {
      const { sink, schema } = await started({ writeTimeoutMs: 400 });
      const locker = await connect(connection);
      try {
        await locker.query('BEGIN');
        await locker.query(`LOCK TABLE ${schema}.events IN ACCESS EXCLUSIVE MODE`);
        for (const batch of [events(3), events(BIG, (i) => ({ timeMs: T0 + 1_000 + i }))]) {
          const t0 = performance.now();
          assertRetryable(await sink.send(batchOf(batch), signal()), 'sink_timeout');
          assert.ok(performance.now() - t0 < 5_000);
        }
        const aborting = new AbortController();
        setTimeout(() => aborting.abort(), 50);
        assertRetryable(await sink.send(batchOf(events(2, (i) => ({ timeMs: T0 + 5_000 + i }))), aborting.signal), 'sink_timeout');
      } finally {
        await locker.query('ROLLBACK');
        await locker.end();
      }
      // Abandoned statements may still finish server-side; retries are idempotent either way.
      const retry = await sink.send(batchOf(events(4, (i) => ({ timeMs: T0 + 9_000 + i }))), signal());
      assertDelivered(retry, 4, 0);
      const stuck = await db.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE application_name = 'edgebot-mothership' AND datname = current_database() AND state LIKE 'idle in transaction%'`,
      );
      assert.equal(stuck.rows[0]?.n, 0);
      assert.deepEqual(await sink.healthcheck(signal()), { healthy: true });
    });

    it('serves Grafana views (metrics, logs, events_per_minute) for SNMP-like and syslog events', async () => {
      const { sink, schema } = await started();
      const snmp = (i: number, value: unknown, extra: Record<string, unknown> = {}): IngestEvent => {
        const data = { timestamp: '2024-01-15T08:00:00+00:00', host: 'switch01', oid: `1.3.6.1.2.1.2.2.1.${i}`, metric_name: 'ifInOctets', value, unit: 'bytes', community: 'public', ...extra };
        return event({ timeMs: Date.UTC(2024, 0, 15, 8, 0, i * 20), timeNanos: 0, data, dataJson: JSON.stringify(data) });
      };
      const syslogData = { host: 'web01', severity: 6, program: 'nginx', message: 'GET /api/status 200' };
      const batch = [
        snmp(0, 1397151, { interface: 'eth0' }),
        snmp(1, 31.5, { instance: 'cpu0', metric_name: undefined, name: 'hrProcessorLoad', unit: '%' }),
        snmp(2, ' 42 '),
        snmp(3, 'up'),
        snmp(4, '1e999999'),
        event({ timeMs: Date.UTC(2024, 0, 15, 8, 1, 5), type: 'syslog', service: 'nginx', host: 'web01', severity: 'info', message: 'GET /api/status 200', data: syslogData, dataJson: JSON.stringify(syslogData) }),
      ];
      assertDelivered(await sink.send(batchOf(batch), signal()), batch.length, 0);

      const metrics = await db.query(`SELECT metric_name, value::text AS value, unit, instance, interface, host FROM ${schema}.metrics ORDER BY time`);
      assert.deepEqual(metrics.rows, [
        { metric_name: 'ifInOctets', value: '1397151', unit: 'bytes', instance: null, interface: 'eth0', host: 'switch01' },
        { metric_name: 'hrProcessorLoad', value: '31.5', unit: '%', instance: 'cpu0', interface: null, host: 'switch01' },
        { metric_name: 'ifInOctets', value: '42', unit: 'bytes', instance: null, interface: null, host: 'switch01' },
      ]);
      const filtered = await db.query(`SELECT count(*)::int AS n FROM ${schema}.metrics WHERE value > 40`);
      assert.equal(filtered.rows[0]?.n, 2);
      const logs = await db.query(`SELECT host, service, severity, message FROM ${schema}.logs`);
      assert.deepEqual(logs.rows, [{ host: 'web01', service: 'nginx', severity: 'info', message: 'GET /api/status 200' }]);
      const perMinute = await db.query(
        `SELECT to_char(time AT TIME ZONE 'UTC', 'HH24:MI:SS') AS minute, service, count::int AS count FROM ${schema}.events_per_minute ORDER BY time, service`,
      );
      assert.deepEqual(perMinute.rows, [
        { minute: '08:00:00', service: 'snmp', count: 3 },
        { minute: '08:01:00', service: 'nginx', count: 1 },
        { minute: '08:01:00', service: 'snmp', count: 2 },
      ]);
    });

    const retentionIsAPolicy = target.name === 'timescaledb' ? 'TimescaleDB deletes old chunks by its retention policy (test/integration/timescaledb.test.ts)' : false;
    it('deletes events past the retention period from its periodic job (plain PostgreSQL)', { skip: retentionIsAPolicy }, async () => {
      const scheduled: Array<{ task: () => Promise<void>; intervalMs: number; cancelled: boolean }> = [];
      const setTimer: TsdbSinkDeps['setTimer'] = (task, intervalMs) => {
        const entry = { task, intervalMs, cancelled: false };
        scheduled.push(entry);
        return { cancel: () => { entry.cancelled = true; } };
      };
      const { sink, schema } = await started({ retentionDays: 2 }, { setTimer });
      assert.equal(scheduled.length, 1);
      assert.equal(scheduled[0]?.intervalMs, RETENTION_INTERVAL_MS);
      const now = Date.now();
      const day = 86_400_000;
      assertDelivered(await sink.send(batchOf([event({ timeMs: now - 3 * day }), event({ timeMs: now - 1 * day }), event({ timeMs: now })]), signal()), 3, 0);
      await scheduled[0]!.task();
      assert.equal(await count(schema), 2);
      await scheduled[0]!.task(); // nothing left to delete: harmless
      assert.equal(await count(schema), 2);
      await sink.shutdown();
      assert.equal(scheduled[0]?.cancelled, true);

      await started({ retentionDays: 0 }, { setTimer });
      assert.equal(scheduled.length, 1, 'no retention job when retention is off');
    });
  });
}
