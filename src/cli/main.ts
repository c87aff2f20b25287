#!/usr/bin/env node
/**
 * `mothership`: the operator's command line (`mothership --help`; reference: docs/CLI.md).
 *   mothership serve                      run the server (same as `npm start`)
 *   mothership check-config               validate the environment; print the effective config, secrets masked
 *   mothership send [options] FILE...     ship .jsonl/.json/.csv files as EdgeBot batches (backfills)
 *   mothership spool inspect [--dir D]    what the spool holds and each sink's backlog (read-only)
 *   mothership deadletters list|replay    list or replay dead letters through a running server's admin API
 * Exit codes: 0 success, 1 the command ran and failed, 2 usage error or invalid configuration.
 * The commands are a table in commands.ts; this file is only the process around them.
 */
import { runCli } from './commands.js';

runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  interactive: process.stderr.isTTY === true && process.env.TERM !== 'dumb',
  columns: () => (process.stderr.isTTY === true ? process.stderr.columns : undefined),
  now: () => Date.now(),
}).then(
  (code) => {
    // 'serving': the server runs on and sets its own exit code.
    if (code !== 'serving') process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`mothership: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
