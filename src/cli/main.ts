#!/usr/bin/env node
/**
 * `mothership`: the operator's command line.
 *   mothership serve                      run the server (same as `npm start`)
 *   mothership check-config               validate the environment; print the effective config, secrets masked
 *   mothership send [options] FILE…       ship .jsonl/.json/.csv files as EdgeBot batches (backfills)
 *   mothership spool inspect [--dir D]    what the spool holds and each sink's backlog (read-only)
 *   mothership deadletters list|replay    list or replay dead letters through a running server's admin API
 */
import { parseArgs } from 'node:util';
import { describeConfig } from '../config/describe.js';
import { loadConfig } from '../config/load.js';
import { sendFiles } from './send.js';
import { inspectSpool } from './spool-inspect.js';

const USAGE = `usage:
  mothership serve
  mothership check-config
  mothership send [--url URL] [--token TOKEN] [--source NODE] [--batch N] FILE...
  mothership spool inspect [--dir SPOOL_DIR]
  mothership deadletters list [--sink tsdb|loki] [--limit N] [--url URL] [--admin-token TOKEN]
  mothership deadletters replay [--sink tsdb|loki] [--code CODE] [--source NODE] [--url URL] [--admin-token TOKEN]

Defaults come from the environment: MOTHERSHIP_URL (http://localhost:8080), AUTH_TOKEN, ADMIN_TOKEN, SPOOL_DIR/DATA_DIR.`;

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      await import('../main.js');
      return -1;
    case 'check-config':
      return checkConfig();
    case 'send':
      return send(rest);
    case 'spool':
      return spool(rest);
    case 'deadletters':
      return deadletters(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`mothership: unknown command "${command}"\n${USAGE}\n`);
      return 2;
  }
}

function checkConfig(): number {
  try {
    const config = loadConfig(process.env);
    process.stdout.write(`${JSON.stringify(describeConfig(config), null, 2)}\nconfiguration is valid\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
}

async function send(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { url: { type: 'string' }, token: { type: 'string' }, source: { type: 'string' }, batch: { type: 'string' } },
  });
  if (positionals.length === 0) {
    process.stderr.write(`mothership send: no files\n${USAGE}\n`);
    return 2;
  }
  const batchSize = Number(values.batch ?? '500');
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    process.stderr.write('mothership send: --batch must be a positive whole number\n');
    return 2;
  }
  const tty = process.stderr.isTTY;
  const summary = await sendFiles(positionals, {
    url: values.url ?? process.env.MOTHERSHIP_URL ?? 'http://localhost:8080',
    token: values.token ?? process.env.AUTH_TOKEN ?? null,
    source: values.source ?? process.env.NODE_ID ?? 'backfill',
    batchSize,
    maxRetryMs: 10 * 60 * 1000,
    progress: (line) => process.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`),
  });
  if (tty) process.stderr.write('\n');
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary.rejected > 0 ? 1 : 0;
}

async function spool(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'inspect') {
    process.stderr.write(`mothership spool: unknown subcommand "${sub ?? ''}"\n${USAGE}\n`);
    return 2;
  }
  const { values } = parseArgs({ args: rest, options: { dir: { type: 'string' } } });
  const dir = values.dir ?? loadConfig(process.env).spool.dir;
  process.stdout.write(`${JSON.stringify(await inspectSpool(dir), null, 2)}\n`);
  return 0;
}

async function deadletters(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: {
      url: { type: 'string' },
      'admin-token': { type: 'string' },
      sink: { type: 'string' },
      limit: { type: 'string' },
      code: { type: 'string' },
      source: { type: 'string' },
    },
  });
  const base = (values.url ?? process.env.MOTHERSHIP_URL ?? 'http://localhost:8080').replace(/\/+$/, '');
  const token = values['admin-token'] ?? process.env.ADMIN_TOKEN;
  if (token === undefined) {
    process.stderr.write('mothership deadletters: set ADMIN_TOKEN or pass --admin-token\n');
    return 2;
  }
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const params = new URLSearchParams();
  for (const key of ['sink', 'limit', 'code', 'source'] as const) {
    const v = values[key];
    if (v !== undefined) params.set(key, v);
  }
  let res: Response;
  if (sub === 'list') res = await fetch(`${base}/admin/deadletters?${params.toString()}`, { headers });
  else if (sub === 'replay') res = await fetch(`${base}/admin/deadletters/replay`, { method: 'POST', headers, body: JSON.stringify(Object.fromEntries(params)) });
  else {
    process.stderr.write(`mothership deadletters: unknown subcommand "${sub ?? ''}"\n${USAGE}\n`);
    return 2;
  }
  const text = await res.text();
  (res.ok ? process.stdout : process.stderr).write(`${text}\n`);
  return res.ok ? 0 : 1;
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`mothership: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
