/**
 * The bench's figures as one plain object (printed as JSON with --json) and as a readable table.
 * Integrity problems become warnings that are printed loudly, never buried in a number.
 */
import { formatMode, type DatabaseMode } from './database-mode.js';

export interface BenchReport {
  readonly command: string;
  readonly options: Readonly<Record<string, unknown>>;
  /** What was measured: the server's mode (its /health) and the PostgreSQL version. */
  readonly database: DatabaseMode;
  readonly target: { readonly mode: 'child' | 'url'; readonly url: string; readonly schema: string; readonly serverLog: string | null };
  readonly generator: {
    readonly pregeneratedBatches: number; readonly pregenSeconds: number; readonly pregenMiB: number;
    readonly toppedUpBatches: number; readonly stalledSeconds: number;
  };
  readonly load: {
    readonly measuredSeconds: number;
    readonly messagesPerSecond: number;
    readonly requestsPerSecond: number;
    readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number };
    readonly measured: Readonly<Record<string, number>>;
    readonly all: Readonly<Record<string, number>>;
    readonly answers: Readonly<Record<string, number>>;
    readonly resent: Readonly<Record<string, number>>;
    readonly errorSamples: readonly string[];
  };
  readonly landing: {
    readonly accepted: number; readonly landed: number; readonly complete: boolean;
    readonly secondsFromFirstSend: number; readonly rowsPerSecond: number; readonly waitedAfterLoadSeconds: number;
  };
  readonly integrity: {
    readonly rows: number; readonly distinct: number; readonly duplicates: number;
    readonly missing: number; readonly fromFailedBatches: number;
  };
  readonly server: {
    readonly rssStartMiB: number | null; readonly rssPeakMiB: number | null; readonly rssFinalMiB: number | null;
    readonly cpuSeconds: number | null; readonly cpuMicrosPerMessage: number | null;
    readonly stopped: string | null; readonly logLines: number | null; readonly logTail: string;
  };
  /** The spool the server ran (its /health) and, when it is a nats-server of this machine, that process's CPU over the same window. */
  readonly spool: { readonly backend: string; readonly natsServerCpuSeconds: number | null; readonly natsServerCpuMicrosPerMessage: number | null };
  readonly machine: { readonly cores: number; readonly busyCpuSeconds: number | null; readonly benchCpuSeconds: number };
  /** The same load against a server whose sink stores nothing (--no-ingest-path: null). */
  readonly ingestPath: {
    readonly messagesPerSecond: number; readonly p99Ms: number; readonly cpuSeconds: number;
    readonly cpuMicrosPerMessage: number; readonly rssPeakMiB: number; readonly failedRequests: number;
  } | null;
  readonly ceiling: {
    readonly rows: number; readonly copyBatch: number;
    /** `hypertable`: the ceiling tables are hypertables like the server's (TimescaleDB mode). */
    readonly table: 'plain' | 'hypertable'; readonly chunkInterval: string | null;
    readonly indexedRowsPerSecond: number; readonly noIndexRowsPerSecond: number;
    readonly ratioToIndexed: number; readonly ratioToNoIndex: number;
  } | null;
  readonly warnings: readonly string[];
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fix = (n: number | null, d = 1): string => (n === null || !Number.isFinite(n) ? 'n/a' : n.toFixed(d));

export function formatOptions(options: Readonly<Record<string, unknown>>): string {
  return Object.entries(options).map(([k, v]) => `  ${k.padEnd(14)} ${typeof v === 'string' ? v : JSON.stringify(v)}`).join('\n');
}

export function formatReport(r: BenchReport): string {
  const l = r.load;
  const lines: Array<[string, string]> = [
    ['database', formatMode(r.database)],
    ['target', `${r.target.mode === 'child' ? 'child server' : 'running server'} ${r.target.url}, schema ${r.target.schema}`],
    ['payload pool', `${int(r.generator.pregeneratedBatches)} batches pre-generated in ${fix(r.generator.pregenSeconds, 2)} s (${fix(r.generator.pregenMiB)} MiB)` +
      (r.generator.toppedUpBatches > 0 ? `; ${int(r.generator.toppedUpBatches)} more generated during the run (clients waited ${fix(r.generator.stalledSeconds, 2)} s in all)` : '')],
    ['measured', `${fix(l.measuredSeconds, 2)} s after warm-up`],
    ['accepted', `${int(l.messagesPerSecond)} msg/s   (${int(l.measured['okMessages'] ?? 0)} messages in 2xx answers)`],
    ['requests', `${int(l.requestsPerSecond)} req/s`],
    ['latency ms', `p50 ${fix(l.latencyMs.p50)}   p90 ${fix(l.latencyMs.p90)}   p99 ${fix(l.latencyMs.p99)}   max ${fix(l.latencyMs.max)}`],
    ['non-2xx', `503: ${int(r.load.all['unavailable'] ?? 0)}   other: ${int(r.load.all['otherStatus'] ?? 0)}   network: ${int(r.load.all['networkErrors'] ?? 0)}   (whole run)`],
    ['answers said', `received ${int(l.answers['received'] ?? 0)}  written ${int(l.answers['written'] ?? 0)}  errors ${int(l.answers['errors'] ?? 0)}  tsdb dup ${int(l.answers['tsdbDuplicates'] ?? 0)}  tsdb queued ${int(l.answers['tsdbQueued'] ?? 0)}  tsdb errors ${int(l.answers['tsdbErrors'] ?? 0)}`],
    ...((l.resent['requests'] ?? 0) > 0
      ? [['resent', `${int(l.resent['requests'] ?? 0)} batches sent again (${int(l.resent['ok'] ?? 0)} answered 2xx): ${int(l.resent['duplicates'] ?? 0)} duplicates, ${int(l.resent['written'] ?? 0)} written`] as [string, string]]
      : []),
    ['landed', `${int(r.landing.landed)} of ${int(r.landing.accepted)} accepted rows, last after ${fix(r.landing.secondsFromFirstSend, 2)} s (${fix(r.landing.waitedAfterLoadSeconds, 2)} s after the load)`],
    ['end-to-end', `${int(r.landing.rowsPerSecond)} rows/s   (landed ÷ first send → last row landed, warm-up included)`],
    ['integrity', `${int(r.integrity.rows)} rows, ${int(r.integrity.distinct)} distinct, ${int(r.integrity.duplicates)} duplicated, ${int(r.integrity.missing)} missing, ${int(r.integrity.fromFailedBatches)} from non-2xx batches`],
    ['server RSS', r.server.rssPeakMiB === null ? 'n/a (server not started by the bench)'
      : `start ${fix(r.server.rssStartMiB)} MiB   peak ${fix(r.server.rssPeakMiB)} MiB   final ${fix(r.server.rssFinalMiB)} MiB`],
    ['server CPU', r.server.cpuSeconds === null ? 'n/a'
      : `${fix(r.server.cpuSeconds, 2)} s   = ${fix(r.server.cpuMicrosPerMessage)} µs per accepted message (first send → last row landed)`],
    ['spool', r.spool.natsServerCpuSeconds === null ? r.spool.backend
      : `${r.spool.backend}   nats-server CPU ${fix(r.spool.natsServerCpuSeconds, 2)} s = ${fix(r.spool.natsServerCpuMicrosPerMessage)} µs per accepted message (same window)`],
    ['machine CPU', `${fix(r.machine.busyCpuSeconds, 2)} s busy on ${r.machine.cores} cores (bench itself ${fix(r.machine.benchCpuSeconds, 2)} s; the rest is the server, PostgreSQL${r.spool.backend === 'jetstream' ? ', nats-server' : ''} and noise)`],
  ];
  if (r.ingestPath !== null) {
    const i = r.ingestPath;
    lines.push(
      ['ingest path', `${fix(i.cpuMicrosPerMessage)} µs per message   (same load, sink stores nothing: HTTP + inflate + parse + normalize + spool)`],
      ['', `${int(i.messagesPerSecond)} msg/s, p99 ${fix(i.p99Ms)} ms, RSS peak ${fix(i.rssPeakMiB)} MiB, ${int(i.failedRequests)} requests without 2xx`],
    );
  }
  if (r.ceiling !== null) {
    const c = r.ceiling;
    lines.push(
      ['COPY ceiling', `${int(c.indexedRowsPerSecond)} rows/s   (${int(c.rows)} rows, COPY per ${int(c.copyBatch)}, same indexes, ${c.table === 'hypertable'
        ? `into a hypertable with the server's ${c.chunkInterval ?? '?'} chunks, no continuous aggregate`
        : 'into a plain table'})`],
      ['  no indexes', `${int(c.noIndexRowsPerSecond)} rows/s`],
      ['ratio', `end-to-end ÷ COPY = ${fix(c.ratioToIndexed, 3)}   (÷ no-index COPY = ${fix(c.ratioToNoIndex, 3)})`],
    );
  }
  if (r.server.stopped !== null) lines.push(['server stop', r.server.stopped]);
  if (r.server.logLines !== null) {
    lines.push(['server log', `${int(r.server.logLines)} lines at warn or above${r.target.serverLog === null ? '' : ` (${r.target.serverLog})`}`]);
  }
  const width = Math.max(...lines.map(([k]) => k.length));
  let text = lines.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n');
  if (l.errorSamples.length > 0) text += `\n\n  first non-2xx answers / errors:\n${l.errorSamples.map((s) => `    ${s}`).join('\n')}`;
  if (r.server.logTail !== '') text += `\n\n  server log (last lines):\n${r.server.logTail.split('\n').map((s) => `    ${s.slice(0, 300)}`).join('\n')}`;
  if (r.warnings.length > 0) {
    const bar = '!'.repeat(78);
    text += `\n\n${bar}\n${r.warnings.map((w) => `!! ${w}`).join('\n')}\n${bar}`;
  }
  return text;
}
