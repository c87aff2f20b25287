/**
 * The bench matrix: short runs of bench/run.ts (each its own child server and schema), one factor
 * changed at a time around the base case (gzip, 100-message batches, 32 connections, Loki off),
 * the raw COPY ceiling measured once (in the base run), then an open-loop run at half the base
 * throughput for p99 latency. Prints one compact table.
 *
 *   npm run bench:matrix                       # ≈ 3 min: 5 s measured + 1 s warm-up per run
 *   npm run bench:matrix -- --duration 10 --full   # also every gzip × batch × connections combination
 *   npm run bench:matrix -- --json > matrix.json
 *
 * Dimensions and what they mean here:
 * - gzip on/off, batch 10/100/1000, connections 8/32/128: the load (bench/load.ts).
 * - Loki on: a LokiStandin (test/helpers/loki-standin.ts, faithful push API) in this process;
 *   the server gets LOKI_ENABLED=true and LOKI_URL pointing at it.
 * - TimescaleDB vs plain: the server makes `events` a hypertable when it can use the extension
 *   (installed or creatable, and preloaded), plain PostgreSQL otherwise. Every run reports the mode
 *   its server chose (/health) and the PostgreSQL version; the table's header says which was
 *   measured. `--timescaledb` runs the whole matrix against the TimescaleDB server
 *   (BENCH_TIMESCALEDB_URL, else TEST_TIMESCALEDB_URL); run it once each way to compare.
 * - dedup on/off: dedup is always on. Ids are deterministic and the unique index on (id, time)
 *   is what makes a resend (after a lost answer, a crash, a replay of the spool) harmless: an
 *   "off" switch would trade the delivery promise for speed, so the matrix does not offer one.
 *   New rows cost what a plain COPY costs (the writer redoes a batch with ON CONFLICT DO NOTHING
 *   only when it meets a stored row); the no-index COPY ceiling shows what the indexes cost.
 * - resend 20%: a fifth of the answered batches is sent again at once (a node whose answer was
 *   lost); those must add no row and be answered as duplicates. msg/s counts first sends only.
 * - the ingest path alone: the base run also drives the same load against a server whose sink
 *   stores nothing (bench/ingest-path-server.ts), for its CPU per message.
 *
 * Options: --duration S (5), --warmup S (1), --full, --json, --database-url URL | --timescaledb, --env K=V (to every run).
 */
import { parseArgs } from 'node:util';
import { LokiStandin } from '../test/helpers/loki-standin.js';
import { runBenchChild } from './child-run.js';
import type { DatabaseMode } from './database-mode.js';
import { chooseDatabase, redactUrl } from './options.js';
import type { BenchReport } from './report.js';

interface Case {
  readonly name: string;
  readonly gzip: boolean;
  readonly batch: number;
  readonly connections: number;
  readonly loki: boolean;
  readonly rate?: number;
  /** Share of answered batches sent again (lost answers): the duplicate path. */
  readonly resend?: number;
  readonly ceiling?: boolean;
  /** Also run the ingest path alone (the base run only). */
  readonly ingestPath?: boolean;
}

interface Row { readonly c: Case; readonly r: BenchReport | null; readonly error: string | null }

const progress = (s: string): void => { process.stderr.write(`${s}\n`); };

const USAGE = `Usage: npm run bench:matrix -- [--duration S] [--warmup S] [--full] [--json] [--database-url URL | --timescaledb] [--env K=V]…
  --timescaledb   the TimescaleDB server of BENCH_TIMESCALEDB_URL, else TEST_TIMESCALEDB_URL (fails when neither is set)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2), strict: true,
    options: {
      duration: { type: 'string' }, warmup: { type: 'string' }, full: { type: 'boolean' }, json: { type: 'boolean' },
      'database-url': { type: 'string' }, timescaledb: { type: 'boolean' }, env: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) { process.stdout.write(`${USAGE}\n`); return 0; }
  const duration = Number(values.duration ?? '5');
  const warmup = Number(values.warmup ?? '1');
  if (!(duration > 0) || !(warmup >= 0)) throw new Error('--duration/--warmup: expected positive numbers');
  const database = chooseDatabase(values['database-url'], values.timescaledb === true, process.env);
  const databaseUrl = database.url;
  const extraEnv = values.env ?? [];
  progress(`[matrix] database: ${redactUrl(databaseUrl)} (${database.from})`);

  const base: Case = { name: 'base', gzip: true, batch: 100, connections: 32, loki: false, ceiling: true, ingestPath: true };
  const variant: Case = { ...base, ceiling: false, ingestPath: false };
  const cases: Case[] = [
    base,
    { ...variant, name: 'no gzip', gzip: false },
    { ...variant, name: 'batch 10', batch: 10 },
    { ...variant, name: 'batch 1000', batch: 1000 },
    { ...variant, name: 'conn 8', connections: 8 },
    { ...variant, name: 'conn 128', connections: 128 },
    { ...variant, name: 'Loki on', loki: true },
    { ...variant, name: 'resend 20%', resend: 0.2 },
  ];
  if (values.full === true) {
    for (const gzip of [true, false]) for (const batch of [10, 100, 1000]) for (const connections of [8, 32, 128]) {
      cases.push({ ...variant, name: `${gzip ? 'gzip' : 'plain'} b${batch} c${connections}`, gzip, batch, connections });
    }
  }

  const loki = await LokiStandin.start({ maxAgeMs: null });
  const rows: Row[] = [];
  try {
    for (const c of cases) rows.push(await runCase(c, duration, warmup, databaseUrl, extraEnv, loki.url));
    // p99 at half of the maximum: open loop at half the base run's accepted rate.
    const max = rows[0]?.r?.load.messagesPerSecond ?? 0;
    if (max > 0) {
      const half = Math.max(100, Math.round(max / 2 / 100) * 100);
      rows.push(await runCase({ ...variant, name: `open loop ${half}/s`, rate: half }, duration, warmup, databaseUrl, extraEnv, loki.url));
    }
  } finally {
    await loki.close();
  }

  const ceiling = rows[0]?.r?.ceiling ?? null;
  const modes = measuredModes(rows);
  const mode = modes.length === 1 ? modes[0] ?? null : null;
  if (values.json === true) {
    const summary = { label: modes.map((m) => m.label).join(' / ') || 'unknown (no run reported)', mode: mode?.mode ?? 'unknown', databaseUrl: redactUrl(databaseUrl), from: database.from, details: mode };
    process.stdout.write(`${JSON.stringify({ database: summary, timescale: mode?.mode === 'timescaledb', ceiling, runs: rows.map((x) => ({ case: x.c, error: x.error, report: x.r })) }, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${formatTable(rows, ceiling, modes, duration, warmup, rows[0]?.r?.ingestPath ?? null)}\n`);
  }
  return rows.some((x) => x.r === null || x.r.integrity.missing > 0 || x.r.integrity.duplicates > 0) ? 1 : 0;
}

async function runCase(c: Case, duration: number, warmup: number, databaseUrl: string, extraEnv: readonly string[], lokiUrl: string): Promise<Row> {
  const args = [
    '--database-url', databaseUrl,
    '--duration', String(duration), '--warmup', String(warmup),
    '--batch', String(c.batch), '--connections', String(c.connections), c.gzip ? '--gzip' : '--no-gzip',
    // Enough pre-generated batches for the fastest runs, so the generator stays out of the figures.
    '--pregen-rate', String(Math.max(100_000, c.batch * 100)),
  ];
  if (c.rate !== undefined) args.push('--rate', String(c.rate));
  if (c.resend !== undefined) args.push('--resend', String(c.resend));
  if (c.ceiling !== true) args.push('--no-ceiling');
  if (c.ingestPath !== true) args.push('--no-ingest-path');
  if (c.loki) args.push('--env', 'LOKI_ENABLED=true', '--env', `LOKI_URL=${lokiUrl}`);
  for (const e of extraEnv) args.push('--env', e);
  progress(`[matrix] ${c.name}: ${args.join(' ')}`);
  const { report, error } = await runBenchChild(args);
  return { c, r: report, error };
}

/** The database modes the runs reported, one entry per distinct label (one, unless the server changed under the matrix). */
function measuredModes(rows: readonly Row[]): DatabaseMode[] {
  const byLabel = new Map<string, DatabaseMode>();
  for (const { r } of rows) if (r !== null && !byLabel.has(r.database.label)) byLabel.set(r.database.label, r.database);
  return [...byLabel.values()];
}

function formatTable(
  rows: readonly Row[], ceiling: BenchReport['ceiling'], modes: readonly DatabaseMode[], duration: number, warmup: number,
  ingestPath: BenchReport['ingestPath'],
): string {
  const copyIndexed = ceiling?.indexedRowsPerSecond ?? null;
  const copyNoIndex = ceiling?.noIndexRowsPerSecond ?? null;
  const only = modes.length === 1 ? modes[0] : undefined;
  const database = only !== undefined ? only.label
    : modes.length === 0 ? 'unknown (no run reported)' : `MIXED: ${modes.map((m) => m.label).join(' / ')}`;
  const timescaleLine = only === undefined ? 'TimescaleDB: see the database line'
    : only.mode === 'timescaledb' ? `TimescaleDB: every run wrote to a hypertable (TimescaleDB ${only.timescaledb ?? '?'}); plain PostgreSQL not measured here`
      : only.mode === 'postgresql' ? `TimescaleDB: ${only.timescaledb ?? 'not used'} (every run is plain PostgreSQL; --timescaledb measures the TimescaleDB server)`
        : 'TimescaleDB: the servers did not say their mode';
  const int = (n: number | null | undefined): string => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : Math.round(n).toLocaleString('en-US'));
  const fix = (n: number | null | undefined, d = 1): string => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(d));
  const head = ['case', 'gzip', 'batch', 'conn', 'Loki', 'msg/s', 'p50 ms', 'p99 ms', '503', 'e2e rows/s', '÷COPY', 'RSS MiB', 'µs/msg', 'dup/miss'];
  const body = rows.map(({ c, r, error }) => r === null
    ? [c.name, c.gzip ? 'on' : 'off', String(c.batch), String(c.connections), c.loki ? 'on' : 'off', `failed: ${error ?? ''}`]
    : [
      c.name, c.gzip ? 'on' : 'off', String(c.batch), String(c.connections), c.loki ? 'on' : 'off',
      int(r.load.messagesPerSecond), fix(r.load.latencyMs.p50), fix(r.load.latencyMs.p99), int(r.load.all['unavailable']),
      int(r.landing.rowsPerSecond), copyIndexed === null ? 'n/a' : fix(r.landing.rowsPerSecond / copyIndexed, 2),
      fix(r.server.rssPeakMiB), fix(r.server.cpuMicrosPerMessage), `${r.integrity.duplicates}/${r.integrity.missing}`,
    ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((s, i) => (i < 5 ? s.padEnd(widths[i] ?? 0) : s.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  const lines = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)];
  const warned = rows.filter((x) => x.r !== null && x.r.warnings.length > 0)
    .map((x) => `  ${x.c.name}: ${(x.r?.warnings ?? []).join('; ')}`);
  return [
    `mothership bench matrix (${duration} s measured + ${warmup} s warm-up per run; spool fsync on, dedup on; node ${process.version})`,
    `database: ${database}`,
    '',
    ...lines,
    ...(warned.length > 0 ? ['', 'warnings:', ...warned] : []),
    '',
    `COPY ceiling (same table and indexes${ceiling?.table === 'hypertable' ? `, a hypertable with ${ceiling.chunkInterval ?? '?'} chunks like the server's` : ceiling?.table === 'plain' ? ', a plain table like the server\'s' : ''}, measured in the base run): ${int(copyIndexed)} rows/s; without indexes ${int(copyNoIndex)} rows/s`,
    `ingest path alone (base load, a sink that stores nothing: HTTP + inflate + parse + normalize + spool): ${ingestPath === null ? 'n/a'
      : `${fix(ingestPath.cpuMicrosPerMessage)} µs/msg at ${int(ingestPath.messagesPerSecond)} msg/s, p99 ${fix(ingestPath.p99Ms)} ms, RSS ${fix(ingestPath.rssPeakMiB)} MiB`}`,
    timescaleLine,
    'dedup: always on (unique (id, time) index; new rows by plain COPY, a batch meeting a stored row redone with ON CONFLICT DO NOTHING)',
    'msg/s: accepted (2xx) in the measured window; e2e: rows landed ÷ (first send → last row landed);',
    'µs/msg: server process CPU (all threads) ÷ accepted messages; open loop: latency from each batch\'s due time.',
  ].join('\n');
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  progress(`bench matrix failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 2;
});
