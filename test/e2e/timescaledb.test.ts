/**
 * The real server process on a real TimescaleDB (TEST_TIMESCALEDB_URL) beside one on plain
 * PostgreSQL: the EdgeBot samples, a node replaying a week of spooled data into chunks that
 * compression has already packed, resends, and a SIGKILL. Both must answer alike and store the
 * same rows with the same ids.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { PgConnection } from '../../src/config/config.js';
import { databaseTargets, dropSchema, runTimescaleJob, timescaleConnection, uniqueSchema, type DatabaseTarget } from '../helpers/database.js';
import { backlogEvents, pgUrl, postIngest, waitUntil, withDb } from '../helpers/e2e.js';
import { tempDir } from '../helpers/events.js';
import { envelope, payloadSamples } from '../helpers/samples.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const timescale = await timescaleConnection();
const DAY = 86_400_000;

interface Side {
  readonly name: 'plain' | 'timescaledb';
  readonly connection: PgConnection;
  readonly schema: string;
  readonly dataDir: string;
  server: ServerProcess | null;
}

/** The part of an answer that must not depend on the database behind it. */
function comparable(body: Record<string, unknown>): unknown {
  const { status, received, sanitized, written, errors, sink_results } = body;
  return { status, received, sanitized, written, errors, sink_results };
}

describe('the server on TimescaleDB answers and stores like on plain PostgreSQL', { skip: timescale.skip ?? false, timeout: 180_000 }, () => {
  let plainTargets: DatabaseTarget[] = [];
  const sides: Side[] = [];
  const removals: Array<() => Promise<void>> = [];

  before(async () => {
    plainTargets = (await databaseTargets()).filter((t) => t.name !== 'timescaledb');
    const plain = await (plainTargets[0] as DatabaseTarget).connection();
    for (const [name, connection] of [['plain', plain], ['timescaledb', timescale.connection as PgConnection]] as const) {
      const dir = await tempDir(`e2e-ts-${name}-`);
      removals.push(dir.remove);
      sides.push({ name, connection, schema: uniqueSchema(), dataDir: dir.dir, server: null });
    }
  });

  after(async () => {
    try {
      for (const side of sides) await side.server?.stop();
      for (const side of sides) await dropSchema(side.connection, side.schema);
    } finally {
      for (const remove of removals) await remove();
      for (const t of plainTargets) await t.close();
    }
  });

  const env = (side: Side): Record<string, string> => ({
    DATA_DIR: side.dataDir, TSDB_URL: pgUrl(side.connection), TSDB_SCHEMA: side.schema, TSDB_COMPRESS_AFTER: '2 days',
  });

  /** Sends the same requests to both sides; returns each side's answers. */
  async function both(requests: ReadonlyArray<{ body: unknown; headers?: Record<string, string> }>): Promise<unknown[][]> {
    const answers: unknown[][] = [];
    for (const side of sides) {
      const url = (side.server as ServerProcess).url;
      const mine: unknown[] = [];
      for (const { body, headers } of requests) {
        const res = await postIngest(url, body, headers === undefined ? {} : { headers });
        assert.equal(res.status, 200, `${side.name}: ${res.text}`);
        mine.push(comparable(res.body));
      }
      answers.push(mine);
    }
    return answers;
  }

  async function rows(side: Side): Promise<string[]> {
    return withDb(side.connection, async (c) =>
      (await c.query<{ row: string }>(
        `SELECT concat_ws('|', id, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), source, type, service, host, severity, message, data::text) AS row
           FROM ${pg.escapeIdentifier(side.schema)}.events ORDER BY id, time`,
      )).rows.map((r) => r.row),
    );
  }

  test('samples, a week-old replay into compressed chunks, resends and a SIGKILL', async () => {
    for (const side of sides) side.server = await startServer(env(side));
    const [ts] = sides.filter((s) => s.name === 'timescaledb');
    assert.ok(ts);
    const health = (await (await fetch(`${(ts.server as ServerProcess).url}/health`)).json()) as { sinks: { tsdb: { details: Record<string, unknown> } } };
    assert.equal(health.sinks.tsdb.details['mode'], 'timescaledb');

    // Each sample as a node POSTs it: the JSON body, then the same batch gzip'd (all duplicates).
    const samples = payloadSamples().flatMap((s) => [{ body: s.body }, ...(s.gzip === null ? [] : [{ body: s.gzip, headers: { 'content-encoding': 'gzip' } }])]);
    const weekOld = Array.from({ length: 200 }, (_, i) => ({
      message: `spooled on the ship ${i}`, severity: i % 8, service: 'replay', timestamp: new Date(Date.now() - 6 * DAY + i * 60_000).toISOString(),
    }));
    const replay = envelope(weekOld, 'edge-ship-7');
    const first = await both([...samples, { body: replay }]);
    assert.deepEqual(first[1], first[0], 'the same answers on TimescaleDB and plain PostgreSQL');

    // Compression packs the replayed days; the node then replays them again (its answers were lost).
    await withDb(ts.connection, async (c) => {
      const { rows: jobs } = await c.query<{ job_id: number }>(
        `SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression' AND hypertable_schema = $1`, [ts.schema],
      );
      assert.equal(jobs.length, 1);
      await runTimescaleJob(c, jobs[0]?.job_id as number);
      const { rows: chunks } = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM timescaledb_information.chunks WHERE hypertable_schema = $1 AND is_compressed`, [ts.schema],
      );
      assert.ok((chunks[0]?.n ?? 0) >= 1, 'some chunks are compressed');
    });
    const again = await both([{ body: { ...replay, is_retry: true } }, ...payloadSamples().map((s) => ({ body: { ...s.body, is_retry: true } }))]);
    assert.deepEqual(again[1], again[0], 'resends answered alike');
    const resend = again[1]?.[0] as { sink_results: { tsdb: { written: number; duplicates: number } } };
    assert.deepEqual(resend.sink_results.tsdb, { written: 0, duplicates: weekOld.length, errors: 0 });

    // Acknowledged, then killed: the restarted server has lost nothing.
    const late = envelope([{ message: 'acknowledged just before the crash', timestamp: new Date().toISOString() }], 'edge-crash');
    await both([{ body: late }]);
    for (const side of sides) {
      assert.equal(await (side.server as ServerProcess).stop('SIGKILL'), null);
      side.server = await startServer(env(side));
    }
    for (const side of sides) await waitUntil(async () => (await backlogEvents((side.server as ServerProcess).url)) === 0, 20_000, `${side.name} to drain`);
    const [plainRows, tsRows] = [await rows(sides[0] as Side), await rows(ts)];
    assert.equal(tsRows.length, plainRows.length);
    assert.deepEqual(tsRows, plainRows, 'the same rows, ids and times');
    const expected = payloadSamples().reduce((n, s) => n + s.body.messages.length, 0) + weekOld.length + 1;
    assert.equal(plainRows.length, expected);
    await withDb(ts.connection, async (c) => {
      // As the scheduler does every minute: the refresh moves the watermark past every event, the 2025 samples included.
      const { rows: jobs } = await c.query<{ job_id: number }>(
        `SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_schema = $1`, [ts.schema],
      );
      await runTimescaleJob(c, jobs[0]?.job_id as number);
      const { rows: agg } = await c.query<{ n: number }>(`SELECT sum(count)::int AS n FROM ${pg.escapeIdentifier(ts.schema)}.events_per_minute`);
      assert.equal(agg[0]?.n, expected, 'the continuous aggregate counts every event');
    });
  });
});
