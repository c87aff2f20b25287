/**
 * End-to-end benchmark of the mothership: many edge nodes POSTing batches at once, rows landed
 * in PostgreSQL, and the raw COPY ceiling of the same database for comparison.
 *
 *   npm run bench                                   # build, start dist/src/main.js, 15 s + 2 s warm-up
 *   npm run bench -- --duration 10 --connections 8 --no-gzip
 *   npm run bench -- --env SPOOL_FSYNC=false --env LOKI_ENABLED=true --json > bench.json
 *   npm run bench -- --url http://127.0.0.1:8080 --database-url postgres://… --schema public
 *   npm run bench -- --timescaledb                  # the TimescaleDB server of BENCH_TIMESCALEDB_URL / TEST_TIMESCALEDB_URL
 *   npm run bench -- --jetstream                    # disk spool, then the spool on JetStream R1: both reports and JetStream ÷ disk
 *
 * The report says which database it measured ("TimescaleDB 2.28.3 on PostgreSQL 15.20" or
 * "plain PostgreSQL 15.20"), from the server's /health and `SHOW server_version`; the COPY
 * ceiling goes into tables of the same kind (hypertables when the server uses one).
 * Without --url, the server runs as a child on a free loopback port, against a fresh schema
 * bench_<timestamp> (dropped at the end unless --keep). `--help` lists every option.
 * Exit code 1 when accepted messages are missing or doubled in the table; timings never fail it;
 * 2 when the bench cannot run (with --jetstream: no JetStream at its URL, or a case failed).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchPool } from './batch-pool.js';
import { copyCeiling, type Ceiling } from './ceiling.js';
import { databaseMode, formatMode, type DatabaseMode } from './database-mode.js';
import { connect, countRows, dropSchema, verify, waitForLanding, type Db } from './db.js';
import { localNatsPid, spoolBackend } from './jetstream.js';
import { quantile, runLoad, type LoadResult, type LoadTarget } from './load.js';
import { parseOptions, redactUrl, USAGE, type BenchOptions } from './options.js';
import { loadSamples, type RunSpec } from './payloads.js';
import { formatOptions, formatReport, type BenchReport } from './report.js';
import { cpuSeconds, healthStatus, machineBusySeconds, RssWatch, startServer, tail, type ChildServer } from './server.js';
import { compareSpools } from './spool-compare.js';
import { SAMPLES_DIR } from '../test/helpers/samples.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const progress = (line: string): void => { process.stderr.write(`${line}\n`); };

async function main(): Promise<number> {
  const parsed = parseOptions(process.argv.slice(2), process.env);
  if (parsed === 'help') { process.stdout.write(`${USAGE}\n`); return 0; }
  const opts = parsed;
  if (opts.jetstream !== null) {
    (opts.json ? progress : (x: string) => process.stdout.write(`${x}\n`))(`mothership bench: disk spool vs JetStream\n${formatOptions(shownOptions(opts, '(a fresh bench_<timestamp> per case)'))}\n`);
    return compareSpools(opts, opts.jetstream, process.argv.slice(2));
  }
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const benchSchema = `bench_${stamp}`;
  const schema = opts.schema ?? benchSchema;
  const ceilingSchema = `${benchSchema}_ceiling`;
  const workDir = path.join(os.tmpdir(), `mothership-${benchSchema}`);
  const shown = shownOptions(opts, schema);
  (opts.json ? progress : (s: string) => process.stdout.write(`${s}\n`))(`mothership bench\n${formatOptions(shown)}\n`);

  // Ctrl-C stops the load and skips to the clean-up; a second one leaves at once.
  const abort = new AbortController();
  process.on('SIGINT', () => { if (abort.signal.aborted) process.exit(130); progress('interrupted: cleaning up'); abort.abort(); });

  const db = await connect(opts.databaseUrl);
  let server: ChildServer | null = null;
  let rss: RssWatch | null = null;
  try {
    let host = '127.0.0.1';
    let port: number;
    if (opts.url === null) {
      fs.mkdirSync(workDir, { recursive: true });
      progress(`starting the server (log: ${path.join(workDir, 'server.log')})`);
      server = await startServer({ repoRoot, databaseUrl: opts.databaseUrl, schema, workDir, extraEnv: opts.env });
      rss = new RssWatch(server.pid);
      port = server.port;
    } else {
      const u = new URL(opts.url);
      host = u.hostname.replace(/^\[|\]$/g, '');
      port = Number(u.port || 80);
      if (await healthStatus(host, port) !== 200) throw new Error(`GET ${opts.url}/health did not answer 200`);
    }
    const database = await databaseMode(db, host, port);
    progress(`database: ${formatMode(database)}`);
    const backend = await spoolBackend(host, port);
    // With the spool on a nats-server of this machine, its CPU is part of each message's cost.
    const natsPid = server === null || opts.env['SPOOL_URL'] === undefined ? null : localNatsPid(opts.env['SPOOL_URL']);
    progress(`spool: ${backend}${natsPid === null ? '' : ` (nats-server pid ${natsPid})`}`);

    const run: RunSpec = { id: benchSchema, samplesDir: SAMPLES_DIR, baseMicros: (Date.now() - 3_600_000) * 1000, batchSize: opts.batch, gzip: opts.gzip };
    const pool = await payloadPool(opts, run);

    const baseline = await countRows(db, schema);
    const rssStart = rss?.lastKiB ?? null;
    const cpu0 = server === null ? null : cpuSeconds(server.pid);
    const nats0 = natsPid === null ? null : cpuSeconds(natsPid);
    const busy0 = machineBusySeconds();
    const bench0 = process.cpuUsage();
    progress(`load: ${opts.connections} connections, ${opts.warmup} s warm-up + ${opts.duration} s`);
    // A server that dies mid-run ends the load at the next one-second tick, not at the deadline.
    const serverGone = new AbortController();
    const child = server;
    let load: LoadResult;
    try {
      load = await runLoad(
        loadTarget(opts, host, port),
        pool, AbortSignal.any([abort.signal, serverGone.signal]),
        (s, ok, all) => {
          if (child !== null && child.exitCode() !== null) serverGone.abort();
          progress(`  ${String(s).padStart(4)} s  ${ok.toLocaleString('en-US').padStart(9)} msg/s  ` +
            `(2xx ${all.ok}, 503 ${all.unavailable}, other ${all.otherStatus}, network ${all.networkErrors})`);
        },
      );
    } finally {
      await pool.close();
    }
    if (child !== null && child.exitCode() !== null) {
      throw new Error(`the server exited during the load (${String(child.exitCode())})\n--- server.log (tail) ---\n${tail(child.logPath, 20)}`);
    }

    const accepted = load.all.okMessages;
    progress(`waiting for ${accepted.toLocaleString('en-US')} accepted rows to land…`);
    const landing = await waitForLanding(db, schema, baseline, accepted, abort.signal);
    const cpu1 = server === null ? null : cpuSeconds(server.pid);
    const nats1 = natsPid === null ? null : cpuSeconds(natsPid);
    const busy1 = machineBusySeconds();
    const bench1 = process.cpuUsage(bench0);
    rss?.sample();
    rss?.stop();
    progress('checking for missing and duplicated rows…');
    const check = await verify(db, schema, run.id, opts.batch, load.failedBatches);
    let stopped: string | null = null;
    if (server !== null) { progress('stopping the server'); stopped = await server.stop(); }

    const ingestPath = opts.ingestPath && !abort.signal.aborted
      ? await measureIngestPath(opts, { ...run, id: `${run.id}_ingest` }, workDir, schema, abort.signal)
      : null;

    let ceiling: Ceiling | null = null;
    const ceilingRows = Math.max(landing.landed, accepted);
    if (opts.ceiling && ceilingRows > 0 && !abort.signal.aborted) {
      progress(`COPY ceiling: ${ceilingRows.toLocaleString('en-US')} rows, with indexes then without…`);
      ceiling = await copyCeiling(db, schema, ceilingSchema, ceilingRows, opts.copyBatch, loadSamples(SAMPLES_DIR), run, abort.signal);
    }

    const report = buildReport({
      opts, shown, database, schema, server, stopped, load, pool, accepted, landing, check, ceiling, ingestPath,
      rss: rss === null ? null : { start: rssStart ?? 0, peak: rss.peakKiB, final: rss.lastKiB },
      cpu: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0,
      spool: { backend, natsCpu: nats0 === null || nats1 === null ? null : nats1 - nats0 },
      busy: busy0 === null || busy1 === null ? null : busy1 - busy0,
      benchCpu: (bench1.user + bench1.system) / 1e6,
      url: opts.url ?? `http://127.0.0.1:${port}`,
    });
    process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `\n${formatReport(report)}\n`);
    return report.integrity.missing > 0 || report.integrity.duplicates > 0 ? 1 : 0;
  } finally {
    rss?.stop();
    if (server !== null) await server.stop();
    await cleanUp(db, opts, [...(opts.url === null ? [schema] : []), ceilingSchema], opts.url === null ? workDir : null);
  }
}

/** Batches pre-generated for the whole run at --pregen-rate (topped up in a worker if it runs short). */
async function payloadPool(opts: BenchOptions, run: RunSpec): Promise<BatchPool> {
  const maxBatches = opts.messages === null ? Number.MAX_SAFE_INTEGER : Math.ceil(opts.messages / opts.batch);
  const initial = Math.ceil((opts.pregenRate * (opts.duration + opts.warmup)) / opts.batch);
  progress(`pre-generating up to ${Math.min(initial, maxBatches).toLocaleString('en-US')} batches…`);
  return BatchPool.create(run, initial, maxBatches, Math.max(4 * opts.connections, Math.ceil(initial / 10)));
}

function loadTarget(opts: BenchOptions, host: string, port: number): LoadTarget {
  return {
    host, port, gzip: opts.gzip, token: opts.token, batchSize: opts.batch, connections: opts.connections,
    warmupMs: opts.warmup * 1000, durationMs: opts.duration * 1000, rate: opts.rate, resend: opts.resend,
  };
}

/**
 * The same load (fresh messages) against bench/ingest-path-server.ts: the server's app with a
 * sink that stores nothing. Its CPU per message is the ingest path's cost alone; it never
 * touches PostgreSQL, so nothing is checked in the table.
 */
async function measureIngestPath(
  opts: BenchOptions, run: RunSpec, parentDir: string, schema: string, signal: AbortSignal,
): Promise<BenchReport['ingestPath']> {
  const workDir = path.join(parentDir, 'ingest-path');
  fs.mkdirSync(workDir, { recursive: true });
  progress(`ingest path: the same load against a server whose sink stores nothing (log: ${path.join(workDir, 'server.log')})`);
  const server = await startServer({ repoRoot, databaseUrl: opts.databaseUrl, schema, workDir, extraEnv: opts.env, entry: 'dist/bench/ingest-path-server.js' });
  const rss = new RssWatch(server.pid);
  try {
    const pool = await payloadPool(opts, run);
    let load: LoadResult;
    const cpu0 = cpuSeconds(server.pid);
    try {
      load = await runLoad(
        loadTarget(opts, '127.0.0.1', server.port),
        pool, signal, (s, ok) => progress(`  ${String(s).padStart(4)} s  ${ok.toLocaleString('en-US').padStart(9)} msg/s`),
      );
    } finally {
      await pool.close();
    }
    const cpu1 = cpuSeconds(server.pid);
    rss.sample();
    if (cpu0 === null || cpu1 === null) throw new Error('ingest path: the server exited during the load');
    const accepted = load.all.okMessages;
    return {
      messagesPerSecond: load.measuredSeconds > 0 ? load.measured.okMessages / load.measuredSeconds : 0,
      p99Ms: quantile(load.latenciesMs, 0.99),
      cpuSeconds: cpu1 - cpu0,
      cpuMicrosPerMessage: accepted > 0 ? ((cpu1 - cpu0) * 1e6) / accepted : 0,
      rssPeakMiB: rss.peakKiB / 1024,
      failedRequests: load.all.requests - load.all.ok,
    };
  } finally {
    rss.stop();
    await server.stop();
  }
}

async function cleanUp(db: Db, opts: BenchOptions, schemas: readonly string[], workDir: string | null): Promise<void> {
  try {
    if (opts.keep) {
      progress(`kept: schemas ${schemas.join(', ')}${workDir === null ? '' : `, ${workDir}`}`);
    } else {
      for (const s of schemas) await dropSchema(db, s);
      if (workDir !== null) fs.rmSync(workDir, { recursive: true, force: true });
    }
  } finally {
    await db.end();
  }
}

function shownOptions(opts: BenchOptions, schema: string): Record<string, unknown> {
  return {
    url: opts.url ?? '(start dist/src/main.js)',
    'database-url': `${redactUrl(opts.databaseUrl)} (${opts.databaseFrom})`,
    schema,
    batch: opts.batch,
    connections: opts.connections,
    duration: opts.duration,
    warmup: opts.warmup,
    gzip: opts.gzip,
    messages: opts.messages ?? '(no cap)',
    env: Object.fromEntries(Object.entries(opts.env).map(([k, v]) => [k, shownValue(k, v)])),
    token: opts.token === null ? '(none)' : '***',
    keep: opts.keep,
    'copy-batch': opts.copyBatch,
    'pregen-rate': opts.pregenRate,
    rate: opts.rate ?? '(closed loop)',
    resend: opts.resend,
    jetstream: opts.jetstream === null ? '(off)' : `${opts.jetstream.url.split(',').map(redactUrl).join(',')} (${opts.jetstream.from}), R1`,
    node: process.version,
    cores: os.availableParallelism(),
  };
}

/** An --env value for the printed options: secrets hidden, and the password of URLs (SPOOL_URL's `nats://user:pass@…`). */
function shownValue(key: string, value: string): string {
  if (/PASS|TOKEN|SECRET|KEY/i.test(key)) return '***';
  return /^[a-z]+:\/\/[^/]*@/i.test(value) ? value.split(',').map(redactUrl).join(',') : value;
}

interface Parts {
  readonly opts: BenchOptions; readonly shown: Record<string, unknown>; readonly database: DatabaseMode; readonly schema: string; readonly url: string;
  readonly server: ChildServer | null; readonly stopped: string | null; readonly load: LoadResult; readonly pool: BatchPool; readonly accepted: number;
  readonly landing: Awaited<ReturnType<typeof waitForLanding>>; readonly check: Awaited<ReturnType<typeof verify>>;
  readonly ceiling: Ceiling | null;
  readonly ingestPath: BenchReport['ingestPath'];
  readonly rss: { start: number; peak: number; final: number } | null;
  readonly cpu: number | null; readonly busy: number | null; readonly benchCpu: number;
  readonly spool: { readonly backend: string; readonly natsCpu: number | null };
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

function buildReport(p: Parts): BenchReport {
  const { load, landing, check, opts } = p;
  const mib = (kib: number | undefined): number | null => (kib === undefined ? null : kib / 1024);
  const secondsToLand = (landing.lastChangeAt - load.firstSendAt) / 1000;
  const rowsPerSecond = secondsToLand > 0 ? landing.landed / secondsToLand : 0;
  const missing = Math.max(0, p.accepted - (check.distinct - check.fromFailed));
  const duplicates = check.rows - check.distinct;
  const logLines = p.server === null ? null : countLines(p.server.logPath);

  const warnings: string[] = [];
  if (duplicates > 0) warnings.push(`DUPLICATES: ${duplicates} rows are copies of a message already stored`);
  if (missing > 0) {
    // A drain still under way when the wait ran out is slow delivery, not (yet) loss: say which.
    const why = landing.endedBy === 'timeout' ? `; rows were still landing when the bench stopped waiting at its limit (${int(landing.landed)} by then): slow delivery, not proven lost`
      : landing.endedBy === 'quiet' ? '; no row had landed for 5 s' : '';
    warnings.push(`MISSING: ${missing} messages answered 2xx are not in ${p.schema}.events (after waiting ${landing.waitedSeconds.toFixed(1)} s${why})`);
  }
  if (check.fromFailed > 0) warnings.push(`${check.fromFailed} rows come from batches that got no 2xx (stored, yet the node was told to retry)`);
  if (landing.landed !== p.accepted) warnings.push(`landed rows (${landing.landed}) ≠ accepted messages (${p.accepted})`);
  const nonOk = load.all.requests - load.all.ok;
  if (nonOk > 0) warnings.push(`${nonOk} of ${load.all.requests} requests got no 2xx`);
  const a = load.answers;
  if (a.unparsable > 0 || a.errors > 0 || a.received !== p.accepted) {
    warnings.push(`the 2xx answers do not add up: received ${a.received} of ${p.accepted} sent, errors ${a.errors}, unparsable ${a.unparsable}`);
  }
  const r = load.resent;
  // A resend is reported a duplicate when its first copy is stored; `queued` when the sink is
  // behind (the answer did not wait); `written` when it went in before its first copy, which was
  // still queued. What must hold: every message of every resend is accounted for, and no row is
  // doubled (checked above).
  if (r.duplicates + r.written + r.queued !== r.ok * opts.batch) {
    warnings.push(`resends: ${r.ok} answered, reported ${r.duplicates} duplicates, ${r.written} written and ${r.queued} queued (expected ${r.ok * opts.batch} in all)`);
  }
  if (a.tsdbDuplicates > 0) warnings.push(`the server answered ${a.tsdbDuplicates} tsdb duplicates, yet every message was sent once (id collisions?)`);
  if (p.pool.stats.toppedUp > 0) warnings.push(`the payload generator ran during the load (${p.pool.stats.toppedUp} batches): raise --pregen-rate for clean figures`);
  if (logLines !== null && logLines > 0) warnings.push(`the server logged ${logLines} lines at warn or above`);
  if (p.stopped !== null && !p.stopped.startsWith('exit 0')) warnings.push(`the server did not stop cleanly: ${p.stopped}`);
  if (load.aborted) warnings.push('interrupted: figures are partial');
  const c = p.ceiling;
  if (p.database.mode === 'unknown') warnings.push('the server\'s /health did not say whether it writes to TimescaleDB or plain PostgreSQL');
  if (c !== null && p.database.mode !== 'unknown' && (c.table.kind === 'hypertable') !== (p.database.mode === 'timescaledb')) {
    warnings.push(`the COPY ceiling went into a ${c.table.kind === 'hypertable' ? 'hypertable' : 'plain table'}, yet the server says ${p.database.label}: the ratio compares unlike tables`);
  }

  return {
    command: ['node', ...process.argv.slice(1).map((x) => path.relative(process.cwd(), x) || x)].join(' '),
    options: p.shown,
    database: p.database,
    target: { mode: p.server === null ? 'url' : 'child', url: p.url, schema: p.schema, serverLog: opts.keep ? p.server?.logPath ?? null : null },
    generator: {
      pregeneratedBatches: p.pool.stats.pregenerated, pregenSeconds: p.pool.stats.pregenSeconds,
      pregenMiB: p.pool.stats.pregenBytes / 1048576, toppedUpBatches: p.pool.stats.toppedUp, stalledSeconds: p.pool.stats.stalledMs / 1000,
    },
    load: {
      measuredSeconds: load.measuredSeconds,
      messagesPerSecond: load.measuredSeconds > 0 ? load.measured.okMessages / load.measuredSeconds : 0,
      requestsPerSecond: load.measuredSeconds > 0 ? load.measured.requests / load.measuredSeconds : 0,
      latencyMs: { p50: quantile(load.latenciesMs, 0.5), p90: quantile(load.latenciesMs, 0.9), p99: quantile(load.latenciesMs, 0.99), max: quantile(load.latenciesMs, 1) },
      measured: { ...load.measured }, all: { ...load.all }, answers: { ...load.answers }, resent: { ...load.resent }, errorSamples: load.samples,
    },
    landing: {
      accepted: p.accepted, landed: landing.landed, complete: landing.complete,
      secondsFromFirstSend: secondsToLand, rowsPerSecond, waitedAfterLoadSeconds: (landing.lastChangeAt - load.lastDoneAt) / 1000,
    },
    integrity: { rows: check.rows, distinct: check.distinct, duplicates, missing, fromFailedBatches: check.fromFailed },
    server: {
      rssStartMiB: mib(p.rss?.start), rssPeakMiB: mib(p.rss?.peak), rssFinalMiB: mib(p.rss?.final),
      cpuSeconds: p.cpu, cpuMicrosPerMessage: p.cpu === null || p.accepted === 0 ? null : (p.cpu * 1e6) / p.accepted,
      stopped: p.stopped, logLines, logTail: p.server === null ? '' : tail(p.server.logPath, 5),
    },
    spool: {
      backend: p.spool.backend, natsServerCpuSeconds: p.spool.natsCpu,
      natsServerCpuMicrosPerMessage: p.spool.natsCpu === null || p.accepted === 0 ? null : (p.spool.natsCpu * 1e6) / p.accepted,
    },
    machine: { cores: os.availableParallelism(), busyCpuSeconds: p.busy, benchCpuSeconds: p.benchCpu },
    ingestPath: p.ingestPath,
    ceiling: c === null ? null : {
      rows: c.indexed.rows, copyBatch: opts.copyBatch,
      table: c.table.kind, chunkInterval: c.table.kind === 'hypertable' ? c.table.chunkInterval : null,
      indexedRowsPerSecond: c.indexed.rowsPerSecond, noIndexRowsPerSecond: c.noIndex.rowsPerSecond,
      ratioToIndexed: c.indexed.rowsPerSecond > 0 ? rowsPerSecond / c.indexed.rowsPerSecond : 0,
      ratioToNoIndex: c.noIndex.rowsPerSecond > 0 ? rowsPerSecond / c.noIndex.rowsPerSecond : 0,
    },
    warnings,
  };
}

function countLines(file: string): number {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text === '' ? 0 : text.trimEnd().split('\n').length;
  } catch {
    return 0;
  }
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  progress(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 2;
});
