/**
 * Catching up after an outage: the mothership takes batches while PostgreSQL is unreachable
 * (they wait in the spool), is restarted, and drains the spool into the database, every record
 * read back from disk. Prints how long the drain took, the server's CPU and its peak RSS.
 *
 *   npm run bench:catch-up
 *   BENCH_MESSAGES=1000000 BENCH_BATCH=1000 npm run bench:catch-up
 *
 * Phase 1 points the server at a closed port (each answer says `queued` after
 * TSDB_WRITE_TIMEOUT_MS, set to 100 ms here); phase 2 starts it again on the same data folder
 * with the real database. The drain time counts from the restart (start-up and migration
 * included) to the last row landed. Exit code 1 when rows are missing or doubled.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, countRows, dropSchema, verify, waitForLanding } from './db.js';
import { ingestPoster } from './load.js';
import { encodeBatch, loadSamples, type RunSpec } from './payloads.js';
import { cpuSeconds, RssWatch, startServer, type ChildServer } from './server.js';
import { SAMPLES_DIR } from '../test/helpers/samples.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const DATABASE_URL = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const MESSAGES = whole(process.env['BENCH_MESSAGES'] ?? '300000', 'BENCH_MESSAGES');
const BATCH = whole(process.env['BENCH_BATCH'] ?? '100', 'BENCH_BATCH');
const CONNECTIONS = 16;
const UNREACHABLE = 'postgres://postgres@127.0.0.1:1/unreachable';

function whole(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${text}"`);
  return n;
}

async function main(): Promise<number> {
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const schema = `bench_catchup_${stamp}`;
  const workDir = path.join(os.tmpdir(), `mothership-${schema}`);
  const batches = Math.ceil(MESSAGES / BATCH);
  const run: RunSpec = { id: schema, samplesDir: '', baseMicros: (Date.now() - 3_600_000) * 1000, batchSize: BATCH, gzip: true };
  const samples = loadSamples(SAMPLES_DIR);
  const db = await connect(DATABASE_URL);
  try {
    process.stderr.write(`phase 1: ${(batches * BATCH).toLocaleString('en-US')} messages while PostgreSQL is unreachable…\n`);
    const offline = await startServer({ repoRoot, databaseUrl: UNREACHABLE, schema, workDir, extraEnv: { TSDB_WRITE_TIMEOUT_MS: '100' } });
    const sendSeconds = await send(offline, batches, (i) => Buffer.from(encodeBatch(samples, run, i)));
    await offline.stop();
    const spoolBytes = folderBytes(path.join(workDir, 'data'));

    process.stderr.write('phase 2: restarted with the database; draining the spool…\n');
    const t0 = performance.now();
    const online = await startServer({ repoRoot, databaseUrl: DATABASE_URL, schema, workDir, extraEnv: {} });
    const rss = new RssWatch(online.pid);
    const landing = await waitForLanding(db, schema, 0, batches * BATCH, AbortSignal.timeout(600_000));
    const drainSeconds = (landing.lastChangeAt - t0) / 1000;
    const cpu = cpuSeconds(online.pid);
    rss.stop();
    await online.stop();
    const check = await verify(db, schema, run.id, BATCH, []);

    const rows = await countRows(db, schema);
    console.log(`batches of ${BATCH}, gzip; spool on disk before the restart: ${(spoolBytes / 1048576).toFixed(1)} MiB (sent in ${sendSeconds.toFixed(1)} s)`);
    console.log(`drained      ${rows.toLocaleString('en-US')} rows in ${drainSeconds.toFixed(2)} s = ${Math.round(rows / drainSeconds).toLocaleString('en-US')} rows/s (restart, start-up and migration included)`);
    console.log(`server CPU   ${cpu === null ? 'n/a' : `${cpu.toFixed(2)} s = ${((cpu * 1e6) / rows).toFixed(1)} µs per row`}`);
    console.log(`server RSS   peak ${(rss.peakKiB / 1024).toFixed(1)} MiB`);
    const expected = batches * BATCH;
    const duplicated = check.rows - check.distinct;
    const missing = expected - check.distinct;
    console.log(`integrity    ${duplicated} duplicated, ${missing} missing`);
    return duplicated === 0 && missing === 0 && landing.complete ? 0 : 1;
  } finally {
    await dropSchema(db, schema).catch(() => undefined);
    await db.end();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

/** POSTs batch 0…n-1 over CONNECTIONS keep-alive connections; any answer but 200 is an error. */
async function send(server: ChildServer, n: number, body: (i: number) => Buffer): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const post = ingestPoster(agent, { host: '127.0.0.1', port: server.port, gzip: true, token: null });
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const reply = await post(body(next++));
      if (reply.status !== 200) throw new Error(`POST /ingest answered ${reply.status}: ${reply.body.slice(0, 200)}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  } finally {
    agent.destroy();
  }
  return (performance.now() - t0) / 1000;
}

function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath, entry.name)).size;
  }
  return total;
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
