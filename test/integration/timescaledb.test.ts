/**
 * The PostgreSQL sink on a real TimescaleDB (TEST_TIMESCALEDB_URL): the hypertable, compression,
 * retention and the continuous aggregate doing their work when their jobs run, resends into
 * compressed chunks, the same ids and answers as plain PostgreSQL, and the states real servers
 * are in (a role that may not create the extension; a plain table found when TimescaleDB comes
 * later). The scheduler's own job runs fail on PostgreSQL 15.20 (see the peers' notes), so jobs
 * are run with `CALL run_job(id)`, which is also how a test makes them happen on demand.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { PgConnection, TsdbConfig } from '../../src/config/config.js';
import type { IngestEvent } from '../../src/pipeline/event.js';
import { batchOf, type SendOutcome } from '../../src/sinks/sink.js';
import { createTsdbSink, type TsdbSink } from '../../src/sinks/tsdb/sink.js';
import { createLogger, silentLogger, type Logger } from '../../src/telemetry/logger.js';
import { connect, databaseTargets, dropSchema, runTimescaleJob, timescaleConnection, uniqueSchema, type DatabaseTarget } from '../helpers/database.js';
import { makeEvent } from '../helpers/events.js';

const DAY = 86_400_000;
/** Batches at least this big take the COPY path (DEFAULT_COPY_THRESHOLD). */
const BIG = 300;
const signal = (): AbortSignal => new AbortController().signal;

const timescale = await timescaleConnection();
const skip = timescale.skip ?? false;

function config(connection: PgConnection, schema: string, overrides: Partial<TsdbConfig> = {}): TsdbConfig {
  return {
    enabled: true, mode: 'external', connection, schema, poolMax: 2, writeTimeoutMs: 60_000, chunkInterval: '1 day',
    compressAfter: '2 days', retentionDays: 0, embedded: { dataDir: '/nonexistent', port: 0 }, ...overrides,
  };
}

/** A logger whose lines a test can read. */
function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ log: { level: 'info', format: 'json' } }, destination), lines };
}

/** Whole minutes, so that events made by two calls with the same arguments are the same events. */
const NOW = Math.floor(Date.now() / 60_000) * 60_000;

/** Events `daysAgo` days old, one per minute, distinct by `seed`. */
function oldEvents(n: number, daysAgo: number, seed: number): IngestEvent[] {
  const base = NOW - daysAgo * DAY;
  return Array.from({ length: n }, (_, i) => makeEvent(seed + i, { timeMs: base + i * 60_000, source: i % 2 === 0 ? 'edge-a' : 'edge-b' }));
}

function delivered(outcome: SendOutcome): { written: number; duplicates: number } {
  assert.equal(outcome.kind, 'delivered', outcome.kind === 'delivered' ? '' : outcome.error.message);
  return outcome.kind === 'delivered' ? { written: outcome.written, duplicates: outcome.duplicates } : { written: -1, duplicates: -1 };
}

async function jobId(db: pg.Client, schema: string, proc: string, table = 'events'): Promise<number> {
  const { rows } = await db.query<{ job_id: number }>(
    `SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = $1 AND hypertable_schema = $2 AND hypertable_name = $3`,
    [proc, schema, table],
  );
  assert.equal(rows.length, 1, `one ${proc} job on ${schema}.${table}`);
  return rows[0]?.job_id as number;
}

describe('tsdb sink on a real TimescaleDB', { skip, timeout: 120_000 }, () => {
  let connection: PgConnection;
  let db: pg.Client;
  const sinks: TsdbSink[] = [];
  const schemas: string[] = [];

  before(async () => {
    connection = timescale.connection as PgConnection;
    db = await connect(connection);
  });

  after(async () => {
    for (const sink of sinks) await sink.shutdown();
    for (const schema of schemas) await dropSchema(connection, schema);
    await db?.end();
  });

  async function started(overrides: Partial<TsdbConfig> = {}, logger: Logger = silentLogger()): Promise<{ sink: TsdbSink; schema: string }> {
    const schema = uniqueSchema();
    schemas.push(schema);
    const sink = createTsdbSink(config(connection, schema, overrides), connection, logger);
    sinks.push(sink);
    await sink.start(signal());
    return { sink, schema };
  }

  it('makes the events table a hypertable with compression, retention and the continuous aggregate as policies', async () => {
    const { sink, schema } = await started({ retentionDays: 30 });
    const description = sink.describe();
    assert.equal(description.mode, 'timescaledb');
    assert.equal(description.retention, 'policy');
    assert.match(description.timescaledb ?? '', /^2\.\d+\.\d+/);
    const hyper = await db.query<{ compression_enabled: boolean }>(
      `SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_schema = $1 AND hypertable_name = 'events'`, [schema],
    );
    assert.equal(hyper.rows[0]?.compression_enabled, true);
    const jobs = await db.query<{ job: string }>(
      `SELECT proc_name || ' on ' || hypertable_name AS job FROM timescaledb_information.jobs WHERE hypertable_schema = $1 ORDER BY proc_name`, [schema],
    );
    assert.deepEqual(jobs.rows.map((r) => r.job), ['policy_compression on events', 'policy_refresh_continuous_aggregate on events_per_minute', 'policy_retention on events']);
    const aggregate = await db.query(
      `SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_schema = $1 AND view_name = 'events_per_minute' AND NOT materialized_only`, [schema],
    );
    assert.equal(aggregate.rowCount, 1, 'a real-time continuous aggregate');
  });

  it('compresses old chunks when the compression job runs, and answers resends into them as duplicates on both write paths', async () => {
    const { sink, schema } = await started();
    const small = oldEvents(20, 7, 1_000);
    const big = oldEvents(BIG + 50, 8, 5_000);
    assert.deepEqual(delivered(await sink.send(batchOf(small), signal())), { written: small.length, duplicates: 0 });
    assert.deepEqual(delivered(await sink.send(batchOf(big), signal())), { written: big.length, duplicates: 0 });

    await runTimescaleJob(db, await jobId(db, schema, 'policy_compression'));
    const chunks = await db.query<{ compressed: number; total: number }>(
      `SELECT count(*) FILTER (WHERE is_compressed)::int AS compressed, count(*)::int AS total
         FROM timescaledb_information.chunks WHERE hypertable_schema = $1 AND hypertable_name = 'events'`, [schema],
    );
    assert.ok((chunks.rows[0]?.compressed ?? 0) >= 2, `week-old chunks compressed: ${JSON.stringify(chunks.rows[0])}`);
    assert.equal(chunks.rows[0]?.compressed, chunks.rows[0]?.total);

    // A node replaying a week of spooled data: everything is already stored, in compressed chunks.
    assert.deepEqual(delivered(await sink.send(batchOf(small), signal())), { written: 0, duplicates: small.length });
    assert.deepEqual(delivered(await sink.send(batchOf(big), signal())), { written: 0, duplicates: big.length });
    // A mix of stored and new rows: only the new ones land.
    const mixed = [...big.slice(0, 100), ...oldEvents(BIG, 8, 90_000)];
    assert.deepEqual(delivered(await sink.send(batchOf(mixed), signal())), { written: BIG, duplicates: 100 });
    const count = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.events`);
    assert.equal(count.rows[0]?.n, small.length + big.length + BIG);
  });

  it('drops chunks past the retention period when the retention job runs', async () => {
    const { sink, schema } = await started({ retentionDays: 3, compressAfter: null });
    delivered(await sink.send(batchOf([...oldEvents(10, 10, 1), ...oldEvents(10, 1, 100)]), signal()));
    await runTimescaleJob(db, await jobId(db, schema, 'policy_retention'));
    const { rows } = await db.query<{ n: number; oldest: Date }>(`SELECT count(*)::int AS n, min(time) AS oldest FROM ${schema}.events`);
    assert.equal(rows[0]?.n, 10);
    assert.ok((rows[0]?.oldest.getTime() ?? 0) > Date.now() - 3 * DAY);
  });

  it('materializes events_per_minute when the aggregate job runs, old backfills included, with the same counts as the raw events', async () => {
    const { sink, schema } = await started();
    delivered(await sink.send(batchOf(oldEvents(120, 1, 1)), signal()));
    const { rows: [aggregate] } = await db.query<{ schema: string; table: string }>(
      `SELECT materialization_hypertable_schema AS schema, materialization_hypertable_name AS table
         FROM timescaledb_information.continuous_aggregates WHERE view_schema = $1 AND view_name = 'events_per_minute'`, [schema],
    );
    assert.ok(aggregate);
    const materialized = async (): Promise<number> =>
      (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(aggregate.schema)}.${pg.escapeIdentifier(aggregate.table)}`)).rows[0]?.n ?? -1;
    const total = async (): Promise<string | undefined> => (await db.query<{ n: string }>(`SELECT sum(count)::text AS n FROM ${schema}.events_per_minute`)).rows[0]?.n;
    const refresh = async (): Promise<void> => {
      await runTimescaleJob(db, await jobId(db, schema, 'policy_refresh_continuous_aggregate', 'events_per_minute'));
    };
    assert.equal(await materialized(), 0, 'nothing materialized before the job runs');
    await refresh();
    assert.ok((await materialized()) > 0, 'the refresh job materialized buckets');
    assert.equal(await total(), '120');

    // A ship back from two months at sea replays its spool: older than any bounded refresh window,
    // and behind the watermark the first refresh set. The next refresh must aggregate it.
    delivered(await sink.send(batchOf(oldEvents(30, 60, 10_000)), signal()));
    await refresh();
    assert.equal(await total(), '150');
  });

  it('replaces a bounded refresh window (earlier versions) by the open one at start-up', async () => {
    const { sink, schema } = await started();
    await sink.shutdown();
    await db.query(`SELECT remove_continuous_aggregate_policy($1::regclass)`, [`${schema}.events_per_minute`]);
    await db.query(`SELECT add_continuous_aggregate_policy($1::regclass, start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute')`, [`${schema}.events_per_minute`]);
    const again = createTsdbSink(config(connection, schema), connection, silentLogger());
    sinks.push(again);
    await again.start(signal());
    const { rows } = await db.query<{ config: Record<string, unknown> }>(
      `SELECT config FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_schema = $1`, [schema],
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.config['start_offset'], null);
  });
});

/** The same batches through a plain PostgreSQL sink and a TimescaleDB sink: same answers, same rows. */
describe('TimescaleDB and plain PostgreSQL store the same', { skip, timeout: 120_000 }, () => {
  let plainTargets: DatabaseTarget[] = [];
  after(async () => {
    for (const t of plainTargets) await t.close();
  });

  it('gives identical answers, ids and counts', async () => {
    plainTargets = (await databaseTargets()).filter((t) => t.name !== 'timescaledb');
    const plain = await (plainTargets[0] as DatabaseTarget).connection();
    const ts = timescale.connection as PgConnection;
    const batches = [oldEvents(40, 2, 1), oldEvents(BIG, 1, 1_000), [...oldEvents(40, 2, 1).slice(0, 10), ...oldEvents(5, 0, 9_000)]];
    const results: Array<{ answers: Array<{ written: number; duplicates: number }>; rows: string[] }> = [];
    for (const connection of [plain, ts]) {
      const schema = uniqueSchema();
      const sink = createTsdbSink(config(connection, schema), connection, silentLogger());
      try {
        await sink.start(signal());
        const answers = [];
        for (const batch of batches) answers.push(delivered(await sink.send(batchOf(batch), signal())));
        const db = await connect(connection);
        try {
          const { rows } = await db.query<{ row: string }>(
            `SELECT concat_ws('|', id, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), source, message, data::text) AS row FROM ${schema}.events ORDER BY id, time`,
          );
          results.push({ answers, rows: rows.map((r) => r.row) });
        } finally {
          await db.end();
        }
      } finally {
        await sink.shutdown();
        await dropSchema(connection, schema);
      }
    }
    assert.equal(results.length, 2);
    assert.deepEqual(results[1], results[0]);
    assert.equal(results[0]?.rows.length, 40 + BIG + 5);
  });
});

/**
 * A database of its own on the TimescaleDB server where our role owns only its schema, as a
 * shared server hands out. TimescaleDB is a trusted extension (a database owner may create it),
 * so a role without CREATE on the database is the one that may not.
 */
describe('TimescaleDB states of real servers', { skip, timeout: 120_000 }, () => {
  const suffix = randomBytes(4).toString('hex');
  const role = `t_owner_${suffix}`;
  const database = `t_db_${suffix}`;
  let admin: pg.Client;
  let asRole: PgConnection;
  let asAdmin: PgConnection;

  before(async () => {
    const server = timescale.connection as PgConnection;
    admin = await connect(server);
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    await admin.query(`CREATE DATABASE ${database}`);
    asRole = { ...server, database, user: role };
    asAdmin = { ...server, database };
    const inDatabase = await connect(asAdmin);
    try {
      await inDatabase.query(`CREATE SCHEMA telemetry AUTHORIZATION ${role}`);
    } finally {
      await inDatabase.end();
    }
  });

  after(async () => {
    if (admin === undefined) return;
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  it('a role that may not create the extension stores in plain mode and says how to enable it; once a superuser has, the table becomes a hypertable', async () => {
    const schema = 'telemetry';
    const { logger, lines } = capturingLogger();
    const first = createTsdbSink(config(asRole, schema), asRole, logger);
    await first.start(signal());
    const events = oldEvents(50, 1, 1);
    delivered(await first.send(batchOf(events), signal()));
    const description = first.describe();
    assert.equal(description.mode, 'postgresql');
    assert.match(description.timescaledb ?? '', /not used: not permitted/);
    assert.match(description.timescaledb_fix ?? '', new RegExp(`role "${role}" may not create.*CREATE EXTENSION IF NOT EXISTS timescaledb.*"${database}"`));
    assert.ok(lines.some((l) => l['level'] === 40 && l['reason'] === 'not_permitted' && typeof l['fix'] === 'string'), 'a warning with the fix');
    await first.shutdown();

    // The operator follows the fix.
    const superuser = await connect(asAdmin);
    try {
      await superuser.query('CREATE EXTENSION IF NOT EXISTS timescaledb');
    } finally {
      await superuser.end();
    }
    const second = createTsdbSink(config(asRole, schema), asRole, silentLogger());
    try {
      await second.start(signal());
      assert.equal(second.describe().mode, 'timescaledb');
      assert.equal(second.describe().timescaledb_fix, undefined);
      // What was stored before is still there, and a resend of it is all duplicates.
      assert.deepEqual(delivered(await second.send(batchOf(events), signal())), { written: 0, duplicates: events.length });
      const db = await connect(asRole);
      try {
        const hyper = await db.query(`SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_schema = $1 AND hypertable_name = 'events'`, [schema]);
        assert.equal(hyper.rowCount, 1);
        const aggregate = await db.query(`SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_schema = $1 AND view_name = 'events_per_minute'`, [schema]);
        assert.equal(aggregate.rowCount, 1, 'the plain view became the continuous aggregate');
        const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.events`);
        assert.equal(rows[0]?.n, events.length);
        const { rows: views } = await db.query<{ n: number }>(`SELECT sum(count)::int AS n FROM ${schema}.events_per_minute`);
        assert.equal(views[0]?.n, events.length);
      } finally {
        await db.end();
      }
    } finally {
      await second.shutdown();
    }
  });
});
