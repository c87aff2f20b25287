/**
 * Promise 1 (200 means durable) and promise 2 (retries are harmless) under the worst a process
 * meets: SIGKILL at random moments during concurrent ingest, restarts, and resends of batches
 * whose answers were lost.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { describe, test } from 'node:test';
import { backlogEvents, e2eFixture, postIngest, waitUntil, withDb } from '../helpers/e2e.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const CLIENTS = 8;
const BATCH = 50;
const ROUNDS = 3;

describe('durability', () => {
  const f = e2eFixture('e2e-durability-');

  test('every message answered 2xx survives repeated SIGKILLs, stored exactly once', async () => {
    const env = f.env({ SPOOL_FSYNC: 'always' });
    const acknowledged = new Set<string>();
    const unanswered: Array<Record<string, unknown>> = [];
    let next = 0;
    let server: ServerProcess | null = null;

    for (let round = 0; round < ROUNDS; round++) {
      server = await startServer(env);
      const url = server.url;
      let stop = false;
      const client = async (): Promise<void> => {
        while (!stop) {
          const keys = Array.from({ length: BATCH }, () => `m-${next++}`);
          const body = { messages: keys.map((k) => ({ message: `crash test ${k}`, key: k, timestamp: new Date(Date.UTC(2026, 0, 1) + Number(k.slice(2))).toISOString() })), source: 'crash-node' };
          try {
            const res = await postIngest(url, body, { gzip: true });
            if (res.status === 200) for (const k of keys) acknowledged.add(k);
            else unanswered.push(body);
          } catch {
            unanswered.push(body);
          }
        }
      };
      const clients = Array.from({ length: CLIENTS }, () => client());
      await new Promise((r) => setTimeout(r, 300 + randomInt(700)));
      const code = await server.stop('SIGKILL');
      assert.equal(code, null, 'killed by the signal');
      stop = true;
      await Promise.all(clients);
    }

    // The node resends what never got an answer: the lost answers must not become duplicates.
    server = await startServer(env);
    const url = server.url;
    for (const body of unanswered) {
      const res = await postIngest(url, { ...body, is_retry: true }, { gzip: true });
      assert.equal(res.status, 200, res.text);
      for (const m of body.messages as Array<{ key: string }>) acknowledged.add(m.key);
    }
    await waitUntil(async () => (await backlogEvents(url)) === 0, 60_000, 'the spool backlog to drain');
    assert.equal(await server.stop('SIGTERM'), 0);

    const counts = await withDb(f.db.connection, async (c) => {
      const r = await c.query(`SELECT data->>'key' AS key, count(*)::int AS n FROM ${f.schema}.events WHERE source = 'crash-node' GROUP BY 1`);
      return new Map(r.rows.map((row: { key: string; n: number }) => [row.key, row.n]));
    });
    assert.ok(acknowledged.size > ROUNDS * BATCH, `the load reached the server (${acknowledged.size} acknowledged)`);
    const missing = [...acknowledged].filter((k) => !counts.has(k));
    const duplicated = [...counts].filter(([, n]) => n !== 1);
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged messages missing`);
    assert.deepEqual(duplicated.slice(0, 10), [], `${duplicated.length} messages stored more than once`);
  });
});
