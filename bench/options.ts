/**
 * Bench options: flags win over BENCH_* environment variables, which win over defaults.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface BenchOptions {
  /** Target an already-running mothership instead of starting one. */
  readonly url: string | null;
  readonly databaseUrl: string;
  /** Where databaseUrl came from, for the report (e.g. "--timescaledb: BENCH_TIMESCALEDB_URL"). */
  readonly databaseFrom: string;
  /** Schema of the events table; only chosen by the user with --url (otherwise a fresh bench_<ts>). */
  readonly schema: string | null;
  readonly batch: number;
  readonly connections: number;
  readonly duration: number;
  readonly warmup: number;
  readonly gzip: boolean;
  readonly messages: number | null;
  readonly env: Readonly<Record<string, string>>;
  /** Bearer token for /ingest; defaults to the first of --env AUTH_TOKENS. */
  readonly token: string | null;
  readonly keep: boolean;
  readonly json: boolean;
  readonly copyBatch: number;
  /** Messages/s the pre-generated pool is sized for; a faster run tops up in a worker. */
  readonly pregenRate: number;
  /** Open loop at this many messages/s (see load.ts); null: closed loop. */
  readonly rate: number | null;
  /** Share of answered batches sent again at once (a lost answer); 0: none. */
  readonly resend: number;
  /** Skip the COPY ceiling (the matrix measures it once). */
  readonly ceiling: boolean;
  /** Also measure the ingest path alone (a child server whose sink stores nothing); child mode only. */
  readonly ingestPath: boolean;
  /**
   * --jetstream: run the load twice, spool on disk then on a JetStream R1 stream of this NATS,
   * and compare (bench/spool-compare.ts); null: the disk case alone.
   */
  readonly jetstream: { readonly url: string; readonly from: string } | null;
}

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export const USAGE = `Usage: npm run bench -- [options]
  --url URL             bench a running mothership (loopback only); needs --database-url
  --database-url URL    PostgreSQL for the server and the checks   [BENCH_DATABASE_URL, ${DEFAULT_DATABASE_URL}]
  --timescaledb         use the TimescaleDB server instead: BENCH_TIMESCALEDB_URL, else TEST_TIMESCALEDB_URL
                        (fails when neither is set; not with --database-url)
  --schema NAME         with --url: schema of its events table      [BENCH_SCHEMA, public]
  --batch N             messages per request                        [BENCH_BATCH, 100]
  --connections N       concurrent keep-alive clients               [BENCH_CONNECTIONS, 32]
  --duration S          measured seconds                            [BENCH_DURATION, 15]
  --warmup S            seconds sent before measuring               [BENCH_WARMUP, 2]
  --gzip | --no-gzip    Content-Encoding: gzip                      [BENCH_GZIP, on]
  --messages N          stop after N messages (rounded up to whole batches)   [BENCH_MESSAGES]
  --env KEY=VALUE       extra server environment, repeatable (e.g. --env SPOOL_FSYNC=false)
  --token T             bearer token for /ingest [BENCH_TOKEN, first of --env AUTH_TOKENS]
  --keep                keep the bench schemas and the server's data folder
  --json                print the report as JSON on stdout (progress goes to stderr)
  --copy-batch N        rows per COPY in the ceiling                [BENCH_COPY_BATCH, 10000]
  --pregen-rate N       msg/s the pre-generated pool is sized for   [BENCH_PREGEN_RATE, 100000]
  --rate N              open loop: offer N msg/s on a fixed schedule, latency counted from
                        each batch's due time (default: closed loop)    [BENCH_RATE]
  --resend R            send this share (0..1) of answered batches again at once, as a node
                        whose answer was lost would: they must add no row  [BENCH_RESEND, 0]
  --no-ceiling          skip the COPY ceiling measurement
  --no-ingest-path      skip the ingest-path run (the same load against a server whose sink
                        stores nothing: CPU of HTTP + inflate + parse + normalize + spool)
  --jetstream [URL]     compare spools in one run: the load with the spool on disk, then the same
                        load with the spool on a JetStream R1 stream of this NATS (a fresh stream,
                        deleted at the end), then msg/s, latency, RSS and CPU per message side by
                        side with JetStream ÷ disk; fails at once when no JetStream answers there
                        [BENCH_NATS_URL, TEST_NATS_URL, ${DEFAULT_NATS_URL}]`;

const OPTIONS = {
  url: { type: 'string' },
  'database-url': { type: 'string' },
  timescaledb: { type: 'boolean' },
  schema: { type: 'string' },
  batch: { type: 'string' },
  connections: { type: 'string' },
  duration: { type: 'string' },
  warmup: { type: 'string' },
  gzip: { type: 'boolean' },
  'no-gzip': { type: 'boolean' },
  messages: { type: 'string' },
  env: { type: 'string', multiple: true },
  token: { type: 'string' },
  keep: { type: 'boolean' },
  json: { type: 'boolean' },
  'copy-batch': { type: 'string' },
  'pregen-rate': { type: 'string' },
  rate: { type: 'string' },
  resend: { type: 'string' },
  'no-ceiling': { type: 'boolean' },
  'no-ingest-path': { type: 'boolean' },
  jetstream: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): BenchOptions | 'help' {
  const { values } = parseArgs({ args: optionalJetstreamUrl(argv), strict: true, options: OPTIONS });
  if (values.help === true) return 'help';
  const pick = (flag: string | undefined, name: string): string | undefined => flag ?? nonEmpty(env[`BENCH_${name}`]);
  const num = (flag: string | undefined, name: string, def: number | null, min: number, max: number): number | null => {
    const raw = pick(flag, name);
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name.toLowerCase().replace('_', '-')}: expected a number in ${min}..${max}, got "${raw}"`);
    return n;
  };
  const req = (v: number | null): number => v ?? 0;

  const url = pick(values.url, 'URL') ?? null;
  if (url !== null) {
    const u = new URL(url);
    if (u.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) {
      throw new Error(`--url: the bench only sends to a loopback http:// address, got ${url}`);
    }
  }
  const extra: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--env: expected KEY=VALUE, got "${kv}"`);
    extra[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const gzipEnv = pick(undefined, 'GZIP');
  const gzip = values['no-gzip'] === true ? false : values.gzip === true ? true : gzipEnv === undefined ? true : !/^(0|false|no|off)$/i.test(gzipEnv);
  const schema = pick(values.schema, 'SCHEMA') ?? (url !== null ? 'public' : null);

  const database = chooseDatabase(values['database-url'], values.timescaledb === true, env);
  const jetstream = values.jetstream === undefined ? null : chooseNats(values.jetstream, env);
  if (jetstream !== null && url !== null) {
    throw new Error('--jetstream starts the server itself, once per spool: it cannot bench a running one (--url)');
  }
  if (jetstream !== null && extra['SPOOL_URL'] !== undefined) {
    throw new Error('--jetstream: --env SPOOL_URL would put the disk case on NATS too; give the NATS URL to --jetstream instead');
  }

  return Object.freeze({
    url,
    databaseUrl: database.url,
    databaseFrom: database.from,
    schema,
    batch: Math.floor(req(num(values.batch, 'BATCH', 100, 1, 100_000))),
    connections: Math.floor(req(num(values.connections, 'CONNECTIONS', 32, 1, 4096))),
    duration: req(num(values.duration, 'DURATION', 15, 0.1, 3600)),
    warmup: req(num(values.warmup, 'WARMUP', 2, 0, 600)),
    gzip,
    messages: num(values.messages, 'MESSAGES', null, 1, 1e9),
    env: Object.freeze(extra),
    // An entry may be `node_id:token`: the token is what follows the first colon.
    token: pick(values.token, 'TOKEN') ?? extra['AUTH_TOKENS']?.split(',')[0]?.trim().replace(/^[A-Za-z0-9][A-Za-z0-9._-]*:(?!$)/, '') ?? null,
    keep: values.keep === true,
    json: values.json === true,
    copyBatch: Math.floor(req(num(values['copy-batch'], 'COPY_BATCH', 10_000, 1, 1_000_000))),
    pregenRate: req(num(values['pregen-rate'], 'PREGEN_RATE', 100_000, 100, 10_000_000)),
    rate: num(values.rate, 'RATE', null, 1, 10_000_000),
    resend: req(num(values.resend, 'RESEND', 0, 0, 1)),
    ceiling: values['no-ceiling'] !== true,
    ingestPath: values['no-ingest-path'] !== true && url === null,
    jetstream,
  });
}

/**
 * `--jetstream` takes its URL optionally, which parseArgs cannot say: a bare `--jetstream` (last,
 * or followed by another option) becomes `--jetstream=`, the default URL.
 */
function optionalJetstreamUrl(argv: readonly string[]): string[] {
  const urlFollows = (i: number): boolean => { const next = argv[i + 1]; return next !== undefined && !next.startsWith('-'); };
  return argv.map((a, i) => (a === '--jetstream' && !urlFollows(i) ? '--jetstream=' : a));
}

/** The arguments without --jetstream and its URL: what each case's run (bench/run.js) is given. */
export function withoutJetstream(argv: readonly string[]): string[] {
  const args = optionalJetstreamUrl(argv);
  const { tokens } = parseArgs({ args, strict: true, options: OPTIONS, tokens: true });
  const dropped = new Set<number>();
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name !== 'jetstream') continue;
    dropped.add(t.index);
    if (t.inlineValue === false) dropped.add(t.index + 1);
  }
  return args.filter((_, i) => !dropped.has(i));
}

/** The NATS of --jetstream: its URL, else BENCH_NATS_URL, else the tests' TEST_NATS_URL, else this machine's. */
function chooseNats(flag: string, env: NodeJS.ProcessEnv): { url: string; from: string } {
  const { url, from } = natsSource(flag, env);
  for (const entry of url.split(',')) {
    let protocol: string;
    try {
      protocol = new URL(entry.trim()).protocol;
    } catch {
      throw new Error(`--jetstream: expected nats://host:port (comma-separated for several) (${from})`);
    }
    if (protocol !== 'nats:' && protocol !== 'tls:') throw new Error(`--jetstream: expected nats:// or tls:// URLs, got ${protocol} (${from})`);
  }
  return { url, from };
}

function natsSource(flag: string, env: NodeJS.ProcessEnv): { url: string; from: string } {
  if (flag !== '') return { url: flag, from: '--jetstream' };
  for (const name of ['BENCH_NATS_URL', 'TEST_NATS_URL']) {
    const url = nonEmpty(env[name]);
    if (url !== undefined) return { url, from: name };
  }
  return { url: DEFAULT_NATS_URL, from: 'default' };
}

/**
 * The PostgreSQL to bench against: --database-url, or with --timescaledb the TimescaleDB server
 * (BENCH_TIMESCALEDB_URL, else the tests' TEST_TIMESCALEDB_URL), else BENCH_DATABASE_URL, else the
 * machine's default. The matrix chooses the same way.
 */
export function chooseDatabase(flag: string | undefined, timescaledb: boolean, env: NodeJS.ProcessEnv): { url: string; from: string } {
  if (timescaledb) {
    if (flag !== undefined) throw new Error('--timescaledb and --database-url both name the database: give one of them');
    for (const name of ['BENCH_TIMESCALEDB_URL', 'TEST_TIMESCALEDB_URL']) {
      const url = nonEmpty(env[name]);
      if (url !== undefined) return { url, from: `--timescaledb: ${name}` };
    }
    throw new Error('--timescaledb: set BENCH_TIMESCALEDB_URL (or TEST_TIMESCALEDB_URL) to the TimescaleDB server, e.g. postgres://postgres@127.0.0.1:5433/test, or give --database-url');
  }
  if (flag !== undefined) return { url: flag, from: '--database-url' };
  const fromEnv = nonEmpty(env['BENCH_DATABASE_URL']);
  if (fromEnv !== undefined) return { url: fromEnv, from: 'BENCH_DATABASE_URL' };
  return { url: DEFAULT_DATABASE_URL, from: 'default' };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** Hides the password of a postgres URL for printing. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}
