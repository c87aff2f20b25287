/**
 * The `mothership` commands: one entry each in COMMANDS (syntax, help text, what it runs), from
 * which parsing, validation and every `--help` are derived (args.ts). `runCli` dispatches;
 * main.ts is only the process around it.
 */
import path from 'node:path';
import { describeConfig } from '../config/describe.js';
import { loadConfig } from '../config/load.js';
import { VERSION } from '../lib/version.js';
import {
  CliError,
  PROGRAM,
  commandName,
  parseCommandArgs,
  renderCommandHelp,
  table,
  usageError,
  usageLine,
  wantsHelp,
  wrap,
  type CommandSyntax,
  type Env,
  type OptionSpec,
  type ParsedArgs,
} from './args.js';
import { ProgressLine, renderSummary } from './progress.js';
import { countMessages, InputError, SendFailed, sendFiles, type SendSummary } from './send.js';
import { inspectSpool } from './spool-inspect.js';
import { inspectJetStream } from './spool-inspect-jetstream.js';

/** What a command may touch of the process: injected, so that tests run commands in-process. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Env;
  /** stderr is a terminal: `send` redraws a progress line there. */
  readonly interactive: boolean;
  /** The terminal's width, when known. */
  readonly columns: () => number | undefined;
  readonly now: () => number;
  readonly fetch?: typeof fetch;
}

/** `serve` hands the process over to the server, which sets its own exit code. */
export type CliResult = number | 'serving';

export interface Command extends CommandSyntax {
  run(args: ParsedArgs, io: CliIo): Promise<CliResult>;
}

const DEFAULT_URL = 'http://localhost:8080';

const URL_OPTION: OptionSpec = { name: 'url', value: 'URL', kind: { type: 'url' }, env: 'MOTHERSHIP_URL', default: DEFAULT_URL, description: "the mothership's base URL" };
const ADMIN_TOKEN_OPTION: OptionSpec = {
  name: 'admin-token',
  value: 'TOKEN',
  env: 'ADMIN_TOKEN',
  required: true,
  description: "the server's ADMIN_TOKEN (the environment is safer than the command line, which other users can see)",
};
const SINK_OPTION: OptionSpec = {
  name: 'sink',
  value: 'SINK',
  kind: { type: 'choice', choices: ['tsdb', 'loki'] },
  defaultText: 'the only enabled sink (required when both are)',
  description: 'whose dead letters: tsdb or loki',
};
const CODE_OPTION: OptionSpec = { name: 'code', value: 'CODE', description: 'only dead letters with this error code (e.g. loki_entry_too_new)' };
const SOURCE_FILTER_OPTION: OptionSpec = { name: 'source', value: 'NODE', description: 'only dead letters from this source (edge node)' };

export const COMMANDS: readonly Command[] = [
  {
    path: ['serve'],
    summary: 'run the ingestion server (like npm start)',
    description: `Runs the ingestion server in the foreground until SIGTERM or SIGINT; SIGHUP re-reads AUTH_TOKENS_FILE and the TLS files.
      It is configured by environment variables only (SERVER_PORT, DATA_DIR, TSDB_*, LOKI_*, ...: see the configuration table in README.md);
      with neither TSDB_HOST nor TSDB_URL set it starts an embedded PostgreSQL under DATA_DIR.

      Exits 2 when the configuration is invalid; otherwise runs until stopped, and exits 0 after a clean shutdown.`,
    options: [],
    examples: ['mothership serve', 'DATA_DIR=./data ADMIN_TOKEN=change-me mothership serve'],
    run: async () => {
      await import('../main.js');
      return 'serving';
    },
  },
  {
    path: ['check-config'],
    summary: 'validate the environment; print the effective configuration, secrets masked',
    description: `Reads the configuration from the environment exactly as serve would, and prints the effective configuration as JSON
      (secrets masked), then "configuration is valid". Nothing is started or written.

      An invalid configuration exits 2, with one line per problem naming its variable.`,
    options: [],
    examples: ['mothership check-config', 'SERVER_PORT=9000 LOKI_ENABLED=true mothership check-config'],
    run: async (_args, io) => {
      let described: unknown;
      try {
        described = describeConfig(loadConfig(io.env));
      } catch (err) {
        throw new CliError((err as Error).message, 2);
      }
      io.stdout(`${JSON.stringify(described, null, 2)}\nconfiguration is valid\n`);
      return 0;
    },
  },
  {
    path: ['send'],
    summary: 'ship .jsonl/.json/.csv files to a mothership as EdgeBot batches (backfills)',
    description: `Sends the messages in FILEs to a mothership's POST /ingest as gzip'd EdgeBot batches, for a backfill after an outage.
      Every file is read and parsed before anything is sent, so a bad file stops the command at once.
      A batch answered 429 or 503, or lost to a network error, is sent again with backoff (and Retry-After) until --max-retry-seconds
      have passed for that batch; sending a file twice is harmless (duplicates are counted, not stored).

      On a terminal, stderr shows a progress line (messages/s, messages sent of total, batches, retries, elapsed time); elsewhere it gets
      only a one-line summary at the end. stdout gets the summary as one JSON object:
      {"files","messages","batches","accepted","rejected","duplicates","retries"}, with "error" added when a batch could not be delivered.

      Exits 0 when every message was accepted (or was a duplicate), 1 when the mothership rejected messages, refused a batch or could
      not be reached in time, 2 for a usage error or a file that cannot be read or parsed (nothing is sent then).`,
    positionals: {
      name: 'FILE',
      min: 1,
      max: Number.POSITIVE_INFINITY,
      description: 'a file of messages: .jsonl (one JSON message per line), .json (an array, an envelope with "messages", or one message) or .csv (a header row, then one message per row; numbers become numbers); any other extension is read as JSON Lines',
    },
    options: [
      URL_OPTION,
      { name: 'token', value: 'TOKEN', env: 'AUTH_TOKEN', defaultText: 'none (no Authorization header)', description: 'bearer token for POST /ingest: one of the server\'s AUTH_TOKENS' },
      { name: 'source', value: 'NODE', env: 'NODE_ID', default: 'backfill', description: 'the batches\' "source" (a token bound to a node makes the server use that node instead)' },
      { name: 'batch', value: 'N', kind: { type: 'int', min: 1, max: 100_000 }, default: '500', description: 'messages per batch' },
      { name: 'max-retry-seconds', value: 'S', kind: { type: 'number', min: 0, max: 86_400 }, default: '600', description: 'give up on a batch that has not been delivered after this long; 0: do not retry' },
    ],
    examples: [
      'mothership send --source edge-07 backlog.jsonl weather.csv',
      'AUTH_TOKEN=$TOKEN MOTHERSHIP_URL=https://mothership.example.com:8443 mothership send --batch 1000 *.jsonl',
      'mothership send --max-retry-seconds 30 payload.json > summary.json',
    ],
    run: runSend,
  },
  {
    path: ['spool', 'inspect'],
    summary: "show what the spool holds and each sink's backlog (read-only)",
    description: `Reads a spool folder and prints, as JSON, its segments (records, events, bytes, sequence numbers, any torn tail or corruption),
      each sink's cursor and backlog, and the quarantined segments. Nothing is changed, so it is safe beside a running server.

      With --nats (or SPOOL_URL set), reads the JetStream spool instead: the stream's size, messages, replicas and leader, and each
      sink's consumer (batches not yet taken by any instance, taken and not yet acknowledged, redelivered), through the JetStream
      API only. Credentials and TLS come from SPOOL_URL and the SPOOL_NATS_* variables, as for the server.`,
    options: [
      { name: 'dir', value: 'DIR', env: 'SPOOL_DIR', defaultText: '$DATA_DIR/spool, DATA_DIR defaulting to ./data', description: 'the spool folder' },
      { name: 'nats', value: 'URLS', env: 'SPOOL_URL', description: 'NATS servers of a JetStream spool (nats://host:4222, comma-separated): inspect it instead of a folder' },
      { name: 'stream', value: 'NAME', env: 'SPOOL_NATS_STREAM', defaultText: 'EDGEBOT_SPOOL', description: 'the JetStream stream of the spool' },
    ],
    examples: ['mothership spool inspect', 'mothership spool inspect --dir ./data/spool', 'DATA_DIR=/data mothership spool inspect', 'mothership spool inspect --nats nats://nats-1:4222,nats://nats-2:4222'],
    run: async (args, io) => {
      const nats = args.string('nats');
      if (nats !== undefined) {
        const stream = args.string('stream');
        let config;
        try {
          config = loadConfig({ ...io.env, SPOOL_URL: nats, ...(stream === undefined ? {} : { SPOOL_NATS_STREAM: stream }) }).spool.nats;
        } catch (err) {
          throw new CliError((err as Error).message, 2);
        }
        if (config === null) throw new CliError('--nats: no server given', 2);
        try {
          io.stdout(`${JSON.stringify(await inspectJetStream(config), null, 2)}\n`);
        } catch (err) {
          throw new CliError((err as Error).message, 1);
        }
        return 0;
      }
      const dir = path.resolve(args.string('dir') ?? path.join(io.env.DATA_DIR?.trim() || './data', 'spool'));
      try {
        io.stdout(`${JSON.stringify(await inspectSpool(dir), null, 2)}\n`);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') throw new CliError(`no spool folder at ${dir} (give --dir, or set SPOOL_DIR or DATA_DIR)`, 2);
        throw err;
      }
      return 0;
    },
  },
  {
    path: ['deadletters', 'list'],
    summary: "list dead letters through a running server's admin API",
    description: `Lists the events a sink refused for good, oldest first, through GET /admin/deadletters of a running server
      (which needs ADMIN_TOKEN set). Prints the server's JSON answer: {"sink","total","offset","limit","items"}.

      Exits 1 when the server cannot be reached or refuses (a wrong token: 401; admin API off: 404).`,
    options: [
      SINK_OPTION,
      { name: 'limit', value: 'N', kind: { type: 'int', min: 1, max: 1000 }, default: '100', description: 'at most this many' },
      { name: 'offset', value: 'N', kind: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER }, default: '0', description: 'skip this many first' },
      CODE_OPTION,
      SOURCE_FILTER_OPTION,
      URL_OPTION,
      ADMIN_TOKEN_OPTION,
    ],
    examples: ['ADMIN_TOKEN=change-me mothership deadletters list --sink tsdb', 'mothership deadletters list --sink loki --code loki_entry_too_old --limit 10'],
    run: async (args, io) => {
      const params = new URLSearchParams();
      for (const key of ['sink', 'code', 'source'] as const) {
        const v = args.string(key);
        if (v !== undefined) params.set(key, v);
      }
      params.set('limit', String(args.number('limit')));
      params.set('offset', String(args.number('offset')));
      return admin(args, io, 'GET', `/admin/deadletters?${params.toString()}`, null);
    },
  },
  {
    path: ['deadletters', 'replay'],
    summary: "send dead letters to their sink again, through a running server's admin API",
    description: `Moves dead letters back into the spool for their sink to deliver again, through POST /admin/deadletters/replay
      of a running server (which needs ADMIN_TOKEN set): fix the cause first (a schema, Loki's limits), then replay. The filters narrow
      what is replayed; without them, every dead letter of the sink is. Prints the server's JSON answer: {"sink","replayed","seq"}.

      Exits 1 when the server cannot be reached or refuses.`,
    options: [
      SINK_OPTION,
      CODE_OPTION,
      SOURCE_FILTER_OPTION,
      { name: 'limit', value: 'N', kind: { type: 'int', min: 1, max: 100_000 }, default: '100000', description: 'at most this many' },
      URL_OPTION,
      ADMIN_TOKEN_OPTION,
    ],
    examples: ['mothership deadletters replay --sink loki --code loki_entry_too_new', 'mothership deadletters replay --sink tsdb --source edge-07'],
    run: async (args, io) => {
      const body: Record<string, string | number> = { limit: args.number('limit') };
      for (const key of ['sink', 'code', 'source'] as const) {
        const v = args.string(key);
        if (v !== undefined) body[key] = v;
      }
      return admin(args, io, 'POST', '/admin/deadletters/replay', JSON.stringify(body));
    },
  },
  {
    path: ['help'],
    summary: 'show help for a command',
    description: 'Shows the help of COMMAND (e.g. "send", "spool inspect"), or the list of commands.',
    positionals: { name: 'COMMAND', min: 0, max: 2, description: 'a command, one or two words' },
    options: [],
    examples: ['mothership help send', 'mothership help deadletters replay'],
    run: async (args, io) => {
      io.stdout(helpFor(args.positionals));
      return 0;
    },
  },
];

const GLOBAL_OPTIONS: Array<readonly [string, string]> = [
  ['-h, --help', 'show help (also after any command: mothership send --help)'],
  ['-V, --version', 'print the version and exit'],
];

/** `mothership --help`. */
export function renderMainHelp(): string {
  return [
    `${PROGRAM} ${VERSION}: the EdgeBot mothership's command line`,
    '',
    `usage: ${PROGRAM} <command> [options] [arguments]`,
    '',
    'commands:',
    ...commandTable(COMMANDS),
    '',
    'options:',
    ...table(GLOBAL_OPTIONS),
    '',
    ...wrap('Options default from environment variables where their help says so (MOTHERSHIP_URL, AUTH_TOKEN, ADMIN_TOKEN, ...).', 80),
    ...wrap('exit codes: 0 success, 1 the command ran and failed, 2 usage error or invalid configuration', 80),
    ...wrap(`Run '${PROGRAM} help <command>' for a command's options; the full reference is docs/CLI.md.`, 80),
    '',
  ].join('\n');
}

function commandTable(commands: readonly Command[]): string[] {
  return table(
    commands.map((c) => {
      const p = c.positionals;
      const arg = p === undefined ? '' : `${p.name}${p.max > 1 ? '...' : ''}`;
      return [p === undefined ? c.path.join(' ') : `${c.path.join(' ')} ${p.min > 0 ? arg : `[${arg}]`}`, c.summary];
    }),
  );
}

/** A command group (`spool`, `deadletters`): its subcommands. */
function renderGroupHelp(group: string): string {
  const members = COMMANDS.filter((c) => c.path[0] === group && c.path.length > 1);
  return [`usage: ${PROGRAM} ${group} <${members.map((c) => c.path[1] ?? '').join('|')}> [options]`, '', 'commands:', ...commandTable(members), '', `Run '${PROGRAM} ${group} <command> --help' for its options.`, ''].join('\n');
}

function groupUsage(group: string): string {
  return COMMANDS.filter((c) => c.path[0] === group)
    .map((c) => `usage: ${usageLine(c)}`)
    .join('\n');
}

function shortUsage(): string {
  return [`usage: ${PROGRAM} <command> [options] [arguments]`, '', 'commands:', ...commandTable(COMMANDS), '', `Run '${PROGRAM} --help' for more.`, ''].join('\n');
}

function isGroup(word: string): boolean {
  return COMMANDS.some((c) => c.path[0] === word && c.path.length > 1);
}

/** The help of `words` (a command, a group, or nothing: the main help); a usage error for anything else. */
function helpFor(words: readonly string[]): string {
  if (words.length === 0) return renderMainHelp();
  const command = COMMANDS.find((c) => c.path.length === words.length && c.path.every((w, i) => w === words[i]));
  if (command !== undefined) return renderCommandHelp(command);
  if (words.length === 1 && words[0] !== undefined && isGroup(words[0])) return renderGroupHelp(words[0]);
  throw usageError(`unknown command '${words.join(' ')}'`);
}

/**
 * Runs the command line `argv` (without node and the script): the exit code, or 'serving'.
 * Usage errors are reported here (one line, then the usage) and give 2; a CliError gives its code;
 * anything else thrown gives 1.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<CliResult> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr(`${PROGRAM}: missing command\n${shortUsage()}`);
    return 2;
  }
  if (first === '--help' || first === '-h') return runCli(['help', ...rest.filter((a) => !a.startsWith('-'))], io);
  if (first === '--version' || first === '-V') {
    if (rest.length > 0) return fail(io, PROGRAM, usageError(`unexpected argument '${rest[0] ?? ''}' after ${first}`), shortUsage());
    io.stdout(`${PROGRAM} ${VERSION}\n`);
    return 0;
  }
  if (first.startsWith('-')) return fail(io, PROGRAM, usageError(`unknown option '${first}'`), shortUsage());
  let command = COMMANDS.find((c) => c.path.length === 1 && c.path[0] === first);
  let args = rest;
  if (command === undefined && isGroup(first)) {
    const [sub, ...subRest] = rest;
    if (sub === undefined || sub.startsWith('-')) {
      if (wantsHelp(rest)) {
        io.stdout(renderGroupHelp(first));
        return 0;
      }
      return fail(io, `${PROGRAM} ${first}`, usageError(sub === undefined ? 'missing subcommand' : `unknown option '${sub}'`), `${groupUsage(first)}\n`);
    }
    command = COMMANDS.find((c) => c.path[0] === first && c.path[1] === sub);
    if (command === undefined) return fail(io, `${PROGRAM} ${first}`, usageError(`unknown subcommand '${sub}'`), `${groupUsage(first)}\n`);
    args = subRest;
  }
  if (command === undefined) return fail(io, PROGRAM, usageError(`unknown command '${first}'`), shortUsage());
  if (wantsHelp(args)) {
    io.stdout(renderCommandHelp(command));
    return 0;
  }
  const usage = `usage: ${usageLine(command)}\nRun '${commandName(command)} --help' for more.\n`;
  try {
    return await command.run(parseCommandArgs(command, args, io.env), io);
  } catch (err) {
    return fail(io, commandName(command), err, usage);
  }
}

function fail(io: CliIo, who: string, err: unknown, usage: string): number {
  if (err instanceof CliError) {
    io.stderr(`${who}: ${err.message}\n${err.showUsage ? usage : ''}`);
    return err.exitCode;
  }
  io.stderr(`${who}: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
}

async function runSend(args: ParsedArgs, io: CliIo): Promise<number> {
  const files = args.positionals;
  let total: number;
  try {
    total = await countMessages(files);
  } catch (err) {
    if (err instanceof InputError) throw new CliError(err.message, 2, err.unreadable);
    throw err;
  }
  const startedAt = io.now();
  const line = io.interactive ? new ProgressLine(io.stderr, io.now, io.columns) : null;
  const say = (text: string): void => (line === null ? io.stderr(`${text}\n`) : line.log(text));
  let shownRejections = 0;
  const MAX_SHOWN = 10;
  let summary: SendSummary;
  let failure: string | null = null;
  try {
    summary = await sendFiles(files, {
      url: args.requiredString('url'),
      token: args.string('token') ?? null,
      source: args.requiredString('source'),
      batchSize: args.number('batch'),
      maxRetryMs: args.number('max-retry-seconds') * 1000,
      total,
      now: io.now,
      ...(io.fetch === undefined ? {} : { fetch: io.fetch }),
      ...(line === null ? {} : { onProgress: (p) => line.update(p) }),
      onRejected: (r) => {
        shownRejections++;
        if (shownRejections <= MAX_SHOWN) say(`rejected: ${r.file}: message ${r.message} of the file (${r.index} in its batch): ${r.error}: ${r.detail}`);
        else if (shownRejections === MAX_SHOWN + 1) say('rejected: (more not shown; the summary counts them all)');
      },
    });
  } catch (err) {
    if (!(err instanceof SendFailed)) throw err;
    summary = err.summary;
    failure = err.message;
  } finally {
    line?.done();
  }
  const elapsed = io.now() - startedAt;
  if (failure !== null) io.stderr(`${PROGRAM} send: ${failure}\n`);
  io.stderr(`${renderSummary(summary, total, elapsed)}\n`);
  io.stdout(`${JSON.stringify(failure === null ? summary : { ...summary, error: failure })}\n`);
  return failure !== null || summary.rejected > 0 ? 1 : 0;
}

/** One admin API call: the answer's JSON on stdout (0), or what went wrong on stderr (1). */
async function admin(args: ParsedArgs, io: CliIo, method: 'GET' | 'POST', pathAndQuery: string, body: string | null): Promise<number> {
  const base = args.requiredString('url');
  const init: RequestInit = { method, headers: { authorization: `Bearer ${args.requiredString('admin-token')}`, 'content-type': 'application/json' } };
  if (body !== null) init.body = body;
  let res: Response;
  try {
    res = await (io.fetch ?? fetch)(`${base}${pathAndQuery}`, init);
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    throw new CliError(`cannot reach ${base}: ${cause instanceof Error && cause.message !== '' ? cause.message : (err as Error).message}`, 1);
  }
  const text = await res.text();
  if (!res.ok) {
    const hint = res.status === 401 ? ' (check --admin-token / ADMIN_TOKEN)' : res.status === 404 ? ' (is ADMIN_TOKEN set on the server?)' : '';
    throw new CliError(`the server answered ${res.status}${hint}: ${errorText(text)}`, 1);
  }
  io.stdout(`${pretty(text)}\n`);
  return 0;
}

function pretty(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text) as unknown, null, 2);
  } catch {
    return text.trim();
  }
}

/** `{"error":"unauthorized","message":"Invalid bearer token"}` → "unauthorized: Invalid bearer token". */
function errorText(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof parsed.error === 'string') return typeof parsed.message === 'string' ? `${parsed.error}: ${parsed.message}` : parsed.error;
  } catch {
    // not JSON
  }
  return text.trim().slice(0, 500);
}
