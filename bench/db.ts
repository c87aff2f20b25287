/**
 * What the bench asks PostgreSQL: how many rows landed and when, whether any is missing or
 * doubled, and the schema clean-up. Identifiers are quoted; values go as parameters.
 */
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';

export type Db = pg.Client;

export async function connect(url: string): Promise<Db> {
  const client = new pg.Client({ connectionString: url, application_name: 'mothership-bench' });
  // A dropped connection must fail the query in flight, not crash the process as an unhandled 'error'.
  client.on('error', (err) => { process.stderr.write(`bench: database connection error: ${err.message}\n`); });
  await client.connect();
  return client;
}

export const ident = (name: string): string => pg.escapeIdentifier(name);

export async function countRows(db: Db, schema: string): Promise<number> {
  try {
    const r = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${ident(schema)}.events`);
    return Number(r.rows[0]?.n ?? 0);
  } catch (err) {
    if ((err as { code?: string }).code === '42P01') return 0; // no table yet
    throw err;
  }
}

export interface Landing {
  readonly landed: number;
  /** performance.now() of the poll that first saw the final count. */
  readonly lastChangeAt: number;
  readonly complete: boolean;
  readonly waitedSeconds: number;
  /** Why the wait ended: all rows in, no new row for 5 s, the 2-minute limit (rows may still be coming), or Ctrl-C. */
  readonly endedBy: 'complete' | 'quiet' | 'timeout' | 'aborted';
}

const POLL_MS = 100;
const QUIET_MS = 5_000;
const LANDING_TIMEOUT_MS = 120_000;

/**
 * Polls count(*) until it reaches `expected` or has not grown for 5 s (2 min at most): a sink
 * draining a spool behind the answers keeps landing rows after the last 200. The polls space out
 * to 2% of the time waited: on a slow drain, count(*) every 100 ms over a large table would cost
 * PostgreSQL more CPU than the delivery it measures, and the machine's CPU figure would show it.
 */
export async function waitForLanding(db: Db, schema: string, baseline: number, expected: number, signal: AbortSignal): Promise<Landing> {
  const t0 = performance.now();
  let landed = (await countRows(db, schema)) - baseline;
  let lastChangeAt = t0;
  let endedBy: Landing['endedBy'] = 'complete';
  while (landed < expected) {
    const now = performance.now();
    if (signal.aborted) { endedBy = 'aborted'; break; }
    if (now - lastChangeAt > QUIET_MS) { endedBy = 'quiet'; break; }
    if (now - t0 > LANDING_TIMEOUT_MS) { endedBy = 'timeout'; break; }
    await sleep(Math.max(POLL_MS, (now - t0) / 50));
    const n = (await countRows(db, schema)) - baseline;
    if (n !== landed) { landed = n; lastChangeAt = performance.now(); }
  }
  return { landed, lastChangeAt, complete: landed >= expected, waitedSeconds: (performance.now() - t0) / 1000, endedBy };
}

export interface Verification {
  /** Rows of this run (by bench_run), distinct messages among them, and how many of those came from non-2xx batches. */
  readonly rows: number;
  readonly distinct: number;
  readonly fromFailed: number;
}

/** One scan over this run's rows; bench_seq / batch size is the batch index a row was sent in. */
export async function verify(db: Db, schema: string, runId: string, batchSize: number, failedBatches: readonly number[]): Promise<Verification> {
  const r = await db.query<{ rows: string; distinct: string; from_failed: string }>(
    `SELECT coalesce(sum(n), 0) AS rows, count(*) AS distinct, count(*) FILTER (WHERE failed) AS from_failed
       FROM (SELECT count(*) AS n, bool_or((data->>'bench_seq')::bigint / $2 = ANY($3::bigint[])) AS failed
               FROM ${ident(schema)}.events WHERE data->>'bench_run' = $1
              GROUP BY data->>'bench_seq') AS per_message`,
    [runId, batchSize, failedBatches],
  );
  const row = r.rows[0];
  return { rows: Number(row?.rows ?? 0), distinct: Number(row?.distinct ?? 0), fromFailed: Number(row?.from_failed ?? 0) };
}

export async function dropSchema(db: Db, schema: string): Promise<void> {
  await db.query(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`);
}
