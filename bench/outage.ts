/**
 * What a fleet feels while PostgreSQL fails: senders post batches back to back while the
 * database, behind a TCP proxy, is well, then gone, then back with a backlog to drain, then
 * slow (every packet held), then well again. Prints, per phase, batches answered per second,
 * answer latency (p50, p99, max), how many answers said `queued`, the catch-up time after each
 * fault, and the integrity of what landed.
 *
 *   npm run bench:outage
 *   BENCH_OUTAGE_S=30 BENCH_SENDERS=16 npm run bench:outage
 *
 * Environment: BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/test), BENCH_SENDERS (4),
 * BENCH_BATCH (50), BENCH_BEFORE_S (5), BENCH_OUTAGE_S (15), BENCH_AFTER_S (5),
 * BENCH_SLOW_S (10; 0 skips the slow phase), BENCH_SLOW_DELAY_MS (1500), and
 * TSDB_WRITE_TIMEOUT_MS (10000: the ceiling of an answer's wait). Exit code 1 when an
 * acknowledged row is missing or doubled.
 */
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connectionFromUrl, tcpProxy, type TcpProxy } from '../test/helpers/database.js';
import { SAMPLES_DIR } from '../test/helpers/samples.js';
import { connect, dropSchema, verify, waitForLanding } from './db.js';
import { ingestPoster, quantile } from './load.js';
import { encodeBatch, loadSamples, type RunSpec } from './payloads.js';
import { startServer } from './server.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const DATABASE_URL = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const SENDERS = setting('BENCH_SENDERS', 4, 1);
const BATCH = setting('BENCH_BATCH', 50, 1);
const BEFORE_S = setting('BENCH_BEFORE_S', 5, 1);
const OUTAGE_S = setting('BENCH_OUTAGE_S', 15, 1);
const AFTER_S = setting('BENCH_AFTER_S', 5, 1);
const SLOW_S = setting('BENCH_SLOW_S', 10, 0);
const SLOW_DELAY_MS = setting('BENCH_SLOW_DELAY_MS', 1_500, 1);
const WRITE_TIMEOUT_MS = setting('TSDB_WRITE_TIMEOUT_MS', 10_000, 100);

function setting(name: string, fallback: number, min: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number ≥ ${min}, got "${text}"`);
  return n;
}

type PhaseName = 'before' | 'outage' | 'draining' | 'after' | 'slow' | 'slow drain' | 'recovered';

interface Answer {
  readonly phase: PhaseName;
  readonly ms: number;
  readonly status: number;
  readonly queued: boolean;
}

async function main(): Promise<number> {
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const schema = `bench_outage_${stamp}`;
  const workDir = path.join(os.tmpdir(), `mothership-${schema}`);
  const target = connectionFromUrl(DATABASE_URL);
  const db = await connect(DATABASE_URL);
  let proxy: TcpProxy = await tcpProxy({ host: target.host, port: target.port });
  const port = proxy.port;
  const viaProxy = new URL(DATABASE_URL);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(port);
  const server = await startServer({ repoRoot, databaseUrl: viaProxy.toString(), schema, workDir, extraEnv: { TSDB_WRITE_TIMEOUT_MS: String(WRITE_TIMEOUT_MS) } });
  const run: RunSpec = { id: schema, samplesDir: '', baseMicros: (Date.now() - 3_600_000) * 1000, batchSize: BATCH, gzip: true };
  const samples = loadSamples(SAMPLES_DIR);
  const agent = new http.Agent({ keepAlive: true, maxSockets: SENDERS });
  const post = ingestPoster(agent, { host: '127.0.0.1', port: server.port, gzip: true, token: null });

  let phase: PhaseName = 'before';
  let stop = false;
  let next = 0;
  const answers: Answer[] = [];
  const failed: number[] = [];
  const sender = async (): Promise<void> => {
    while (!stop) {
      const index = next++;
      const sentIn = phase;
      const t0 = performance.now();
      let status = 0;
      let queued = false;
      try {
        const reply = await post(Buffer.from(encodeBatch(samples, run, index)));
        status = reply.status;
        queued = reply.status === 200 && /"queued":/.test(reply.body);
      } catch {
        status = 0;
      }
      if (status !== 200) failed.push(index);
      answers.push({ phase: sentIn, ms: performance.now() - t0, status, queued });
    }
  };
  const backlog = async (): Promise<{ events: number; drainRate: number; catchUp: number | null }> => {
    const res = await fetch(`http://127.0.0.1:${server.port}/health`);
    const body = (await res.json()) as { sinks: { tsdb?: { backlog_events?: number; drain_rate_events_per_second?: number; catch_up_seconds?: number | null } } };
    const tsdb = body.sinks.tsdb;
    return { events: tsdb?.backlog_events ?? -1, drainRate: tsdb?.drain_rate_events_per_second ?? 0, catchUp: tsdb?.catch_up_seconds ?? null };
  };
  /** Seconds until the backlog is drained (polling /health), with what /health said halfway. */
  const drain = async (): Promise<{ seconds: number; sample: string }> => {
    const t0 = performance.now();
    let sample = '';
    let most = 0;
    for (;;) {
      const b = await backlog();
      most = Math.max(most, b.events);
      if (sample === '' && b.events > 0 && b.events <= most / 2 && b.drainRate > 0) sample = `backlog ${b.events.toLocaleString('en-US')} events, drain ${b.drainRate.toLocaleString('en-US')} events/s, catch-up estimate ${b.catchUp ?? '—'} s`;
      if (b.events === 0) return { seconds: (performance.now() - t0) / 1000, sample };
      if (performance.now() - t0 > 600_000) throw new Error('the backlog did not drain within 10 minutes');
      await sleep(200);
    }
  };
  const phaseSeconds = new Map<PhaseName, number>();
  const timed = async (name: PhaseName, fn: () => Promise<void>): Promise<void> => {
    phase = name;
    const t0 = performance.now();
    await fn();
    phaseSeconds.set(name, (performance.now() - t0) / 1000);
  };

  const senders = Array.from({ length: SENDERS }, sender);
  const catchUps: string[] = [];
  try {
    await timed('before', () => sleep(BEFORE_S * 1000));
    await timed('outage', async () => {
      await proxy.cut();
      await sleep(OUTAGE_S * 1000);
    });
    proxy = await tcpProxy({ host: target.host, port: target.port }, port);
    await timed('draining', async () => {
      const d = await drain();
      catchUps.push(`after the outage: drained in ${d.seconds.toFixed(1)} s${d.sample === '' ? '' : ` (${d.sample})`}`);
    });
    await timed('after', () => sleep(AFTER_S * 1000));
    if (SLOW_S > 0) {
      await timed('slow', async () => {
        proxy.setDelay(SLOW_DELAY_MS);
        await sleep(SLOW_S * 1000);
        proxy.setDelay(0);
      });
      await timed('slow drain', async () => {
        const d = await drain();
        catchUps.push(`after the slow spell: drained in ${d.seconds.toFixed(1)} s${d.sample === '' ? '' : ` (${d.sample})`}`);
      });
      await timed('recovered', () => sleep(AFTER_S * 1000));
    }
  } finally {
    stop = true;
    await Promise.all(senders);
    agent.destroy();
  }

  const acknowledged = answers.filter((a) => a.status === 200).length * BATCH;
  const landing = await waitForLanding(db, schema, 0, acknowledged, AbortSignal.timeout(300_000));
  const check = await verify(db, schema, run.id, BATCH, failed);
  await server.stop();
  await proxy.cut();

  console.log(`PostgreSQL ${target.host}:${target.port} behind a TCP proxy; ${SENDERS} senders, ${BATCH}-message batches (gzip), TSDB_WRITE_TIMEOUT_MS=${WRITE_TIMEOUT_MS}`);
  console.log(`phases: before ${BEFORE_S} s, outage ${OUTAGE_S} s (proxy cut), draining (until /health shows no backlog), after ${AFTER_S} s${SLOW_S > 0 ? `, slow ${SLOW_S} s (every packet held ${SLOW_DELAY_MS} ms), slow drain, recovered ${AFTER_S} s` : ''}`);
  console.log('');
  console.log('phase        seconds  answered  batches/s   p50 ms   p99 ms   max ms  queued  non-200');
  const rows = new Map<PhaseName, { perSecond: number; p99: number }>();
  for (const [name, seconds] of phaseSeconds) {
    const mine = answers.filter((a) => a.phase === name);
    const ms = Float64Array.from(mine.map((a) => a.ms)).sort();
    const perSecond = seconds > 0 ? mine.length / seconds : 0;
    const p99 = pick(ms, 0.99);
    rows.set(name, { perSecond, p99 });
    const queued = mine.filter((a) => a.queued).length;
    console.log(
      `${name.padEnd(12)} ${seconds.toFixed(1).padStart(7)} ${String(mine.length).padStart(9)} ${perSecond.toFixed(1).padStart(10)} ${pick(ms, 0.5).toFixed(1).padStart(8)} ${p99.toFixed(1).padStart(8)} ${(ms.length === 0 ? 0 : (ms[ms.length - 1] as number)).toFixed(1).padStart(8)} ${pct(queued, mine.length).padStart(7)} ${String(mine.filter((a) => a.status !== 200).length).padStart(8)}`,
    );
  }
  console.log('');
  for (const line of catchUps) console.log(`catch-up     ${line}`);
  const before = rows.get('before');
  if (before !== undefined && before.perSecond > 0) {
    for (const name of ['outage', 'draining', 'slow', 'slow drain'] as const) {
      const r = rows.get(name);
      if (r === undefined) continue;
      console.log(`vs before    ${name.padEnd(10)} pace ×${(r.perSecond / before.perSecond).toFixed(2)}, p99 ×${(r.p99 / Math.max(before.p99, 0.001)).toFixed(2)}`);
    }
  }
  const duplicated = check.rows - check.distinct;
  // Messages of non-200 answers may land too (the spool had them); only acknowledged ones must.
  const missing = acknowledged - (check.distinct - check.fromFailed);
  console.log(`integrity    ${check.rows.toLocaleString('en-US')} rows for ${acknowledged.toLocaleString('en-US')} acknowledged messages: ${duplicated} duplicated, ${missing} missing${landing.complete ? '' : ' (landing incomplete)'}`);
  await dropSchema(db, schema).catch(() => undefined);
  await db.end();
  fs.rmSync(workDir, { recursive: true, force: true });
  return duplicated === 0 && missing <= 0 && landing.complete ? 0 : 1;
}

/** The quantile, 0 for a phase without answers. */
function pick(sorted: Float64Array, q: number): number {
  return sorted.length === 0 ? 0 : quantile(sorted, q);
}

function pct(part: number, whole: number): string {
  return whole === 0 ? '—' : `${Math.round((100 * part) / whole)}%`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
