/**
 * A server with the TimescaleDB package installed but not in shared_preload_libraries: every
 * `apt install` of TimescaleDB before `timescaledb-tune` or a restart, and the machine's 5432
 * server once the TimescaleDB peer's files are installed. `CREATE EXTENSION` there ends the
 * session with FATAL; the sink must work in plain mode and say exactly how to fix it, and no
 * error of that kind may ever read as "unreachable".
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { PgConnection, TsdbConfig } from '../../src/config/config.js';
import { batchOf } from '../../src/sinks/sink.js';
import { classifyTsdbError, createTsdbSink } from '../../src/sinks/tsdb/sink.js';
import { detectTimescale } from '../../src/sinks/tsdb/timescale.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { connect, connectionFromUrl, DEFAULT_TEST_DATABASE_URL, dropSchema, probe, uniqueSchema } from '../helpers/database.js';
import { backlogEvents, getJson, pgUrl, waitUntil } from '../helpers/e2e.js';
import { makeEvents, tempDir } from '../helpers/events.js';
import { startServer } from '../helpers/server-process.js';

const connection = connectionFromUrl(process.env['TEST_DATABASE_URL'] ?? DEFAULT_TEST_DATABASE_URL);

/** Why this server is not in the state under test, or false when it is. */
async function notThisState(): Promise<string | false> {
  const problem = await probe(connection);
  if (problem !== null) return `no PostgreSQL at ${connection.host}:${connection.port} (${problem})`;
  const db = await connect(connection);
  try {
    const info = await detectTimescale(db);
    if (!info.available) return 'the TimescaleDB package is not installed on this server (.ci/run installs it with the TimescaleDB peer)';
    if (info.preloaded) return 'TimescaleDB is preloaded on this server';
    if (info.installed) return 'the extension is already installed in this database';
    return false;
  } finally {
    await db.end();
  }
}

const skip = await notThisState();
if (skip !== false) console.log(`TimescaleDB installed-but-not-preloaded tests skipped: ${skip}`);

describe('TimescaleDB installed but not preloaded', { skip, timeout: 120_000 }, () => {
  const schemas: string[] = [];
  after(async () => {
    for (const schema of schemas) await dropSchema(connection, schema);
  });

  it('the server itself ends the session with FATAL, and the sink reports it as a configuration error with its code and hint', async () => {
    const db = await connect(connection);
    let failure: unknown = null;
    try {
      await db.query('CREATE EXTENSION timescaledb');
    } catch (err) {
      failure = err;
    } finally {
      await db.end().catch(() => undefined);
    }
    assert.ok(failure instanceof pg.DatabaseError, `a DatabaseError, got ${String(failure)}`);
    assert.equal(failure.severity, 'FATAL');
    const outcome = classifyTsdbError(failure, { target: 'db:5432/test', timeoutMs: 1_000 });
    assert.equal(outcome.kind, 'retryable');
    assert.equal(outcome.error.code, 'sink_misconfigured');
    assert.match(outcome.error.message, /refused: FATAL XX000: extension .* must be preloaded/);
    assert.match(outcome.error.message, /hint: .*shared_preload_libraries/);
    assert.doesNotMatch(outcome.error.message, /unreachable/);
  });

  it('the sink stores in plain mode, logs the exact fix once, and shows it in its description', async () => {
    const schema = uniqueSchema();
    schemas.push(schema);
    const lines: Array<Record<string, unknown>> = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const config: TsdbConfig = {
      enabled: true, mode: 'external', connection, schema, poolMax: 2, writeTimeoutMs: 30_000, chunkInterval: '1 day',
      compressAfter: '7 days', retentionDays: 0, embedded: { dataDir: '/nonexistent', port: 0 },
    };
    const sink = createTsdbSink(config, connection as PgConnection, createLogger({ log: { level: 'info', format: 'json' } }, destination));
    try {
      await sink.start(new AbortController().signal);
      const outcome = await sink.send(batchOf(makeEvents(1, 20)), new AbortController().signal);
      assert.deepEqual(outcome.kind === 'delivered' ? [outcome.written, outcome.duplicates] : outcome.error.message, [20, 0]);
      const description = sink.describe();
      assert.equal(description.mode, 'postgresql');
      assert.match(description.timescaledb ?? '', /not used: not preloaded/);
      assert.match(description.timescaledb_fix ?? '', /shared_preload_libraries = 'timescaledb'.*restart PostgreSQL/);
      assert.match(description.timescaledb_fix ?? '', /postgresql\.conf/);
      const warnings = lines.filter((l) => l['level'] === 40);
      assert.equal(warnings.length, 1, JSON.stringify(warnings));
      assert.equal(warnings[0]?.['reason'], 'not_preloaded');
      assert.ok(!lines.some((l) => /unreachable|terminated unexpectedly/i.test(JSON.stringify(l))), 'nothing reads as a network failure');
    } finally {
      await sink.shutdown();
    }
  });

  it('the real server answers "written", /health is healthy and names the fix', async () => {
    const schema = uniqueSchema();
    schemas.push(schema);
    const dir = await tempDir('not-preloaded-');
    const server = await startServer({ DATA_DIR: dir.dir, TSDB_URL: pgUrl(connection), TSDB_SCHEMA: schema });
    try {
      const res = await fetch(`${server.url}/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ message: 'hello', timestamp: '2025-08-22T17:11:27Z' }], source: 'edge-np', timestamp: '2025-08-22T17:11:27Z', batch_size: 1, is_retry: false }),
      });
      const answer = (await res.json()) as { written?: number };
      assert.equal(res.status, 200);
      assert.equal(answer.written, 1);
      await waitUntil(async () => (await backlogEvents(server.url)) === 0, 10_000, 'the backlog to drain');
      const { status, body } = await getJson(`${server.url}/health`);
      assert.equal(status, 200);
      assert.equal(body['status'], 'healthy');
      const tsdb = (body['sinks'] as Record<string, { details?: Record<string, unknown> }>)['tsdb'];
      assert.equal(tsdb?.details?.['mode'], 'postgresql');
      assert.match(String(tsdb?.details?.['timescaledb_fix']), /shared_preload_libraries/);
    } finally {
      await server.stop();
      await dir.remove();
    }
  });
});
