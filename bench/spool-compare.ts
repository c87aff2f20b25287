/**
 * `npm run bench -- --jetstream [URL]`: the same load twice, each in a run of its own
 * (bench/child-run.ts, as the matrix runs its cases): the spool on local disk, then the spool on
 * a JetStream R1 stream of that NATS (SPOOL_URL; a fresh stream, deleted at the end unless
 * --keep). Prints both reports, then the two side by side with JetStream ÷ disk.
 *
 * Each case has its own server, schema and payloads, and is checked the same way: every accepted
 * message landed exactly once. The COPY ceiling and the ingest path alone are measured in the
 * disk case only: neither depends on the spool's backend in a way this comparison needs.
 */
import { runBenchChild, type ChildRun } from './child-run.js';
import { benchStreamName, deleteStream, jetstreamProblem } from './jetstream.js';
import { redactUrl, withoutJetstream, type BenchOptions } from './options.js';
import { formatReport, type BenchReport } from './report.js';

type Nats = NonNullable<BenchOptions['jetstream']>;

interface Figure {
  readonly key: string;
  readonly label: string;
  readonly digits: number;
  /** Whether JetStream ÷ disk means something for it (not for counts of failures). */
  readonly ratio: boolean;
  readonly value: (r: BenchReport) => number | null;
}

const perMessage = (seconds: number | null, r: BenchReport): number | null =>
  seconds === null || r.landing.accepted === 0 ? null : (seconds * 1e6) / r.landing.accepted;

const FIGURES: readonly Figure[] = [
  { key: 'messagesPerSecond', label: 'accepted msg/s', digits: 0, ratio: true, value: (r) => r.load.messagesPerSecond },
  { key: 'latencyP50Ms', label: 'latency p50 ms', digits: 1, ratio: true, value: (r) => r.load.latencyMs.p50 },
  { key: 'latencyP99Ms', label: 'latency p99 ms', digits: 1, ratio: true, value: (r) => r.load.latencyMs.p99 },
  { key: 'endToEndRowsPerSecond', label: 'end-to-end rows/s', digits: 0, ratio: true, value: (r) => r.landing.rowsPerSecond },
  { key: 'rssPeakMiB', label: 'server RSS peak MiB', digits: 1, ratio: true, value: (r) => r.server.rssPeakMiB },
  { key: 'serverCpuMicrosPerMessage', label: 'server CPU µs/msg', digits: 1, ratio: true, value: (r) => r.server.cpuMicrosPerMessage },
  { key: 'natsServerCpuMicrosPerMessage', label: 'nats-server CPU µs/msg', digits: 1, ratio: false, value: (r) => r.spool.natsServerCpuMicrosPerMessage },
  // The fair CPU figure: with JetStream the storing moves out of the server into nats-server.
  {
    key: 'spoolCpuMicrosPerMessage', label: 'server + nats-server µs/msg', digits: 1, ratio: true,
    value: (r) => (r.server.cpuMicrosPerMessage === null ? null : r.server.cpuMicrosPerMessage + (r.spool.natsServerCpuMicrosPerMessage ?? 0)),
  },
  { key: 'machineCpuMicrosPerMessage', label: 'machine CPU µs/msg', digits: 1, ratio: true, value: (r) => perMessage(r.machine.busyCpuSeconds, r) },
  { key: 'requestsWithout2xx', label: 'requests without 2xx', digits: 0, ratio: false, value: (r) => (r.load.all['requests'] ?? 0) - (r.load.all['ok'] ?? 0) },
  { key: 'duplicated', label: 'rows duplicated', digits: 0, ratio: false, value: (r) => r.integrity.duplicates },
  { key: 'missing', label: 'accepted, not landed', digits: 0, ratio: false, value: (r) => r.integrity.missing },
];

const progress = (line: string): void => { process.stderr.write(`${line}\n`); };

/** Runs both cases and prints them; exit code 0, 1 (a row missing or doubled) or 2 (a case could not run). */
export async function compareSpools(opts: BenchOptions, nats: Nats, argv: readonly string[]): Promise<number> {
  const shownUrl = nats.url.split(',').map(redactUrl).join(',');
  progress(`JetStream: checking ${shownUrl} (${nats.from})…`);
  const problem = await jetstreamProblem(nats.url, opts.env);
  if (problem !== null) {
    // Asked for, so a failure: before the disk case, not after minutes of it.
    progress(`JetStream case cannot run: at ${shownUrl} (${nats.from}), ${problem}.\n` +
      'Start nats-server -js there, point --jetstream URL (or BENCH_NATS_URL) at one, or leave --jetstream out to bench the disk spool alone.');
    return 2;
  }

  // Ctrl-C reaches the running case too (same process group): it cleans up and reports what it
  // has; the next case is skipped.
  let interrupted = false;
  process.on('SIGINT', () => { if (interrupted) process.exit(130); interrupted = true; progress('interrupted: finishing the running case, skipping the next'); });

  const base = withoutJetstream(argv);
  progress('case 1 of 2: the spool on disk');
  const disk = await runBenchChild(base, prefixed('[disk] '));
  const stream = benchStreamName();
  let jetstream: ChildRun | null = null;
  if (!interrupted) {
    progress(`case 2 of 2: the spool on JetStream R1, stream ${stream} at ${shownUrl}`);
    try {
      jetstream = await runBenchChild([
        ...base, '--no-ceiling', '--no-ingest-path',
        '--env', `SPOOL_URL=${nats.url}`, '--env', `SPOOL_NATS_STREAM=${stream}`, '--env', 'SPOOL_NATS_REPLICAS=1',
      ], prefixed('[jetstream] '));
    } finally {
      await dropStream(opts, nats, stream);
    }
  }

  const errors = caseErrors(disk, jetstream, interrupted);
  const jetReport = jetstream?.report ?? null;
  const comparison = disk.report !== null && jetReport !== null ? compare(disk.report, jetReport) : null;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ nats: { url: shownUrl, from: nats.from, stream, replicas: 1 }, disk: disk.report, jetstream: jetReport, comparison, errors }, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${formatComparison(opts, shownUrl, stream, disk, jetstream, errors)}\n`);
  }
  if (errors.length > 0) return 2;
  return [disk.report, jetReport].some((r) => r !== null && (r.integrity.missing > 0 || r.integrity.duplicates > 0)) ? 1 : 0;
}

function prefixed(prefix: string): (line: string) => void {
  return (line) => progress(`${prefix}${line}`);
}

async function dropStream(opts: BenchOptions, nats: Nats, stream: string): Promise<void> {
  if (opts.keep) {
    progress(`kept: JetStream stream ${stream}`);
    return;
  }
  const failed = await deleteStream(nats.url, opts.env, stream);
  if (failed !== null) progress(`could not delete JetStream stream ${stream} (${failed}): delete it with \`nats stream rm ${stream}\``);
}

/** Why the comparison is incomplete or not what it claims; empty when both cases ran as meant. */
function caseErrors(disk: ChildRun, jetstream: ChildRun | null, interrupted: boolean): string[] {
  const errors: string[] = [];
  if (disk.report === null) errors.push(`the disk case failed: ${disk.error ?? '?'}`);
  if (jetstream === null) errors.push(interrupted ? 'the JetStream case was skipped (interrupted)' : 'the JetStream case did not run');
  else if (jetstream.report === null) errors.push(`the JetStream case failed: ${jetstream.error ?? '?'}`);
  // /health says which spool each server ran: a mislabelled case would make the ratios lie.
  if (disk.report !== null && disk.report.spool.backend !== 'disk') errors.push(`the disk case's server ran a ${disk.report.spool.backend} spool`);
  const jetBackend = jetstream?.report?.spool.backend ?? 'jetstream';
  if (jetBackend !== 'jetstream') errors.push(`the JetStream case's server ran a ${jetBackend} spool`);
  return errors;
}

type Comparison = Record<string, { disk: number | null; jetstream: number | null; ratio: number | null }>;

function compare(disk: BenchReport, jetstream: BenchReport): Comparison {
  return Object.fromEntries(FIGURES.map((f) => {
    const d = f.value(disk);
    const j = f.value(jetstream);
    return [f.key, { disk: d, jetstream: j, ratio: f.ratio ? ratio(j, d) : null }];
  }));
}

function ratio(a: number | null, b: number | null): number | null {
  return a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? null : a / b;
}

function formatComparison(opts: BenchOptions, url: string, stream: string, disk: ChildRun, jetstream: ChildRun | null, errors: readonly string[]): string {
  const section = (title: string, run: ChildRun | null): string => {
    const report = run?.report ?? null;
    return `=== ${title} ===\n${report === null ? `  no report: ${run?.error ?? 'not run'}` : formatReport(report)}`;
  };
  const parts = [
    section('spool on disk', disk),
    section(`spool on JetStream R1 (${url}, stream ${stream})`, jetstream),
  ];
  const d = disk.report;
  const j = jetstream?.report ?? null;
  if (d !== null && j !== null) parts.push(formatTable(opts, d, j));
  if (errors.length > 0) parts.push(errors.map((e) => `!! ${e}`).join('\n'));
  return parts.join('\n\n');
}

/**
 * A case whose rows did not all land within the bench's wait paid for part of its deliveries
 * only: its CPU per accepted message is then too low, and its end-to-end rows/s is the figure.
 */
function unlanded(cases: ReadonlyArray<readonly [string, BenchReport]>): string[] {
  return cases.filter(([, r]) => r.landing.landed < r.landing.accepted).map(([name, r]) =>
    `  !! ${name}: ${Math.round(r.landing.landed).toLocaleString('en-US')} of ${Math.round(r.landing.accepted).toLocaleString('en-US')} accepted rows landed while the bench waited: ` +
    'its CPU per message leaves out delivering the rest; its end-to-end rows/s is its real throughput');
}

function formatTable(opts: BenchOptions, disk: BenchReport, jetstream: BenchReport): string {
  const c = compare(disk, jetstream);
  const show = (n: number | null, digits: number): string => (n === null || !Number.isFinite(n) ? 'n/a' : digits === 0 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits));
  const rows = FIGURES.map((f) => {
    const v = c[f.key];
    // The disk case uses no nats-server: its column says so rather than a stray reading.
    const diskCell = f.key === 'natsServerCpuMicrosPerMessage' ? '—' : show(v?.disk ?? null, f.digits);
    return [f.label, diskCell, show(v?.jetstream ?? null, f.digits), f.ratio ? show(v?.ratio ?? null, 2) : ''];
  });
  const head = ['', 'disk', 'JetStream R1', 'JetStream ÷ disk'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `  ${cells.map((s, i) => (i === 0 ? s.padEnd(widths[i] ?? 0) : s.padStart(widths[i] ?? 0))).join('   ')}`.trimEnd();
  const x = (key: string): string => show(c[key]?.ratio ?? null, 2);
  const fsync = opts.env['SPOOL_FSYNC'] ?? 'always';
  return [
    `=== JetStream ÷ disk (same load: ${opts.connections} connections × ${opts.batch}-message ${opts.gzip ? 'gzip ' : ''}batches, ${opts.duration} s + ${opts.warmup} s warm-up each) ===`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    `  JetStream ÷ disk: msg/s ×${x('messagesPerSecond')}, server CPU per message ×${x('serverCpuMicrosPerMessage')} (with nats-server's ×${x('spoolCpuMicrosPerMessage')})`,
    ...unlanded([['disk', disk], ['JetStream', jetstream]]),
    '',
    '  answers: the disk case waits for the PostgreSQL write while that pays (`written`); the JetStream',
    '    case answers `queued` once the stream stored the batch (another instance may write it), so',
    '    msg/s and latency are the answers\'; end-to-end rows/s is what landed in PostgreSQL.',
    `  durability: the disk spool (SPOOL_FSYNC=${fsync}) ${fsync === 'always' ? 'fsyncs each group commit before answering' : 'leaves flushing to the OS'}; nats-server`,
    '    answers once its file store holds the batch and fsyncs on its own interval (sync_interval,',
    '    2 min by default): an R1 200 survives a process crash, not a power cut.',
    '  CPU: server = the mothership process, all threads; nats-server = that whole process over the same',
    '    window (other clients included; n/a when it is not on this machine); machine = busy core-seconds',
    '    of everything (server, PostgreSQL, NATS, the bench\'s own load) ÷ accepted messages.',
  ].join('\n');
}
