/**
 * The README's promise: with no TSDB_* set, the mothership runs its own PostgreSQL under
 * DATA_DIR, stores data there, and keeps it across restarts.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, test } from 'node:test';
import pg from 'pg';
import { tempDataParent } from '../helpers/database.js';
import { getJson, postIngest } from '../helpers/e2e.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const SEED_EXAMPLE = { messages: [{ message: 'Test log', service: 'test', severity: 'info' }], batch_size: 1, source: 'test' };

/** The psql command the server logs at start-up, parsed back into connection settings. */
function psqlTarget(server: ServerProcess): { host: string; port: number; user: string; database: string } {
  for (const line of server.output) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { psql?: string };
    const m = entry.psql === undefined ? null : /^psql -h (\S+) -p (\d+) -U (\S+) (\S+)$/.exec(entry.psql);
    if (m !== null) return { host: m[1] as string, port: Number(m[2]), user: m[3] as string, database: m[4] as string };
  }
  throw new Error(`no psql line in the start-up log:\n${server.output.join('\n')}`);
}

async function storedMessages(server: ServerProcess): Promise<string[]> {
  const target = psqlTarget(server);
  assert.equal(target.host, '127.0.0.1');
  assert.notEqual(target.port, 5432, 'never the port another PostgreSQL may hold');
  const client = new pg.Client({ ...target, password: 'edgebot' });
  await client.connect();
  try {
    return (await client.query('SELECT message FROM events ORDER BY time')).rows.map((r: { message: string }) => r.message);
  } finally {
    await client.end();
  }
}

describe('embedded PostgreSQL by default', () => {
  test('the seed example is stored, survives a restart, and the server stops cleanly', async () => {
    const parent = await tempDataParent();
    try {
      const first = await startServer({ DATA_DIR: parent }, 120_000);
      const answer = await postIngest(first.url, SEED_EXAMPLE);
      assert.equal(answer.status, 200, answer.text);
      assert.deepEqual(answer.body, { status: 'success', received: 1, sanitized: 1, written: 1, errors: 0, sink_results: { tsdb: { written: 1, duplicates: 0, errors: 0 } } });
      const health = await getJson(`${first.url}/health`);
      assert.equal(health.body.status, 'healthy');
      assert.deepEqual(await storedMessages(first), ['Test log']);
      assert.equal(await first.stop('SIGTERM'), 0);

      const second = await startServer({ DATA_DIR: parent }, 120_000);
      assert.deepEqual(await storedMessages(second), ['Test log']);
      const again = await postIngest(second.url, SEED_EXAMPLE);
      assert.equal(again.status, 200);
      assert.equal(await second.stop('SIGTERM'), 0);
      assert.ok(!second.output.some((l) => l.includes('"level":50') || l.includes('"level":60')), `no errors logged:\n${second.output.join('\n')}`);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
