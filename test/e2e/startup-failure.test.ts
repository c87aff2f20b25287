/**
 * A start-up that fails must end the process: here SERVER_PORT is already taken, found only
 * after the embedded PostgreSQL (or the pool to an external one), the spool and the delivery
 * workers have started. The server must log the problem, release what it started and exit
 * non-zero within SHUTDOWN_TIMEOUT_MS (its bound for releasing), leaving no PostgreSQL behind.
 *
 * The server is spawned directly: test/helpers/server-process.ts waits for a "listening" line
 * that never comes here.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDataParent } from '../helpers/database.js';
import { e2eFixture } from '../helpers/e2e.js';
import { natsServerBinary, startNats } from '../helpers/nats.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

/** The server's bound for releasing what it started after a failed start-up (passed as SHUTDOWN_TIMEOUT_MS). */
const RELEASE_LIMIT_MS = 5_000;
/** Scheduling slack on top of that bound: the exit must be seen by then, or the test kills the server and fails. */
const EXIT_GRACE_MS = 2_000;
/** Start-up up to the failure: a first initdb of the embedded PostgreSQL on a slow machine. */
const STARTUP_ALLOWANCE_MS = 90_000;
const TEST_TIMEOUT_MS = STARTUP_ALLOWANCE_MS + RELEASE_LIMIT_MS + EXIT_GRACE_MS + 30_000;

interface LogEntry {
  readonly level?: number;
  readonly msg?: string;
  readonly hint?: string;
  readonly err?: { readonly code?: string; readonly message?: string };
}

interface Outcome {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly lines: readonly string[];
  readonly entries: readonly LogEntry[];
  /** performance.now() when the FATAL line arrived (null: it never did) and when the process was gone. */
  readonly fatalAt: number | null;
  readonly exitAt: number;
}

/** A listening socket on a free loopback port: the port the server is told to use. */
async function takePort(): Promise<{ port: number; close: () => Promise<void> }> {
  const holder = net.createServer();
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject);
    holder.listen(0, '127.0.0.1', () => resolve());
  });
  const address = holder.address();
  assert.ok(address !== null && typeof address === 'object');
  return { port: address.port, close: () => new Promise<void>((resolve) => holder.close(() => resolve())) };
}

/**
 * Runs the server until it exits. Once the FATAL line is seen, it has RELEASE_LIMIT_MS +
 * EXIT_GRACE_MS to be gone; past that (or past the start-up allowance) it is killed, and the
 * outcome says so through its signal.
 */
function runUntilExit(env: Record<string, string>): Promise<Outcome> {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const lines: string[] = [];
  const entries: LogEntry[] = [];
  let fatalAt: number | null = null;
  let killTimer = setTimeout(() => child.kill('SIGKILL'), STARTUP_ALLOWANCE_MS);
  const onLine = (line: string): void => {
    lines.push(line);
    if (!line.startsWith('{')) return;
    let entry: LogEntry;
    try {
      entry = JSON.parse(line) as LogEntry;
    } catch {
      return;
    }
    entries.push(entry);
    if (entry.level === 60 && fatalAt === null) {
      fatalAt = performance.now();
      clearTimeout(killTimer);
      killTimer = setTimeout(() => child.kill('SIGKILL'), RELEASE_LIMIT_MS + EXIT_GRACE_MS);
    }
  };
  for (const stream of [child.stdout, child.stderr]) {
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
  }
  return new Promise((resolve) => {
    // 'close': the process has exited and its output is fully read.
    child.once('close', (code, signal) => {
      const exitAt = performance.now();
      clearTimeout(killTimer);
      process.off('exit', killOnExit);
      resolve({ code, signal, lines, entries, fatalAt, exitAt });
    });
  });
}

/** Processes whose command line names `dir` (the embedded postmaster runs with `-D <dir>`). */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').some((arg) => arg.includes(dir))) pids.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids.filter((pid) => pid !== process.pid);
}

function assertExitedAfterFatal(outcome: Outcome, port: number): void {
  const output = outcome.lines.join('\n');
  assert.equal(outcome.signal, null, `the server had to be killed (${String(outcome.signal)}): it did not exit after the failed start-up:\n${output}`);
  assert.equal(outcome.code, 1, `exit code:\n${output}`);
  assert.ok(!outcome.entries.some((e) => e.msg === 'mothership listening'), `it must not have listened:\n${output}`);
  const fatal = outcome.entries.find((e) => e.level === 60);
  assert.ok(fatal !== undefined && outcome.fatalAt !== null, `no FATAL line:\n${output}`);
  assert.equal(fatal.msg, 'start-up failed');
  assert.equal(fatal.err?.code, 'EADDRINUSE');
  assert.match(fatal.err?.message ?? '', new RegExp(`EADDRINUSE.*:${port}\\b`));
  assert.match(fatal.hint ?? '', new RegExp(`127\\.0\\.0\\.1:${port}\\b.*already in use.*SERVER_PORT`));
  // Released within its own bound, not cut short by the watchdog.
  assert.ok(!outcome.entries.some((e) => /took too long/.test(e.msg ?? '')), `the release ran into SHUTDOWN_TIMEOUT_MS:\n${output}`);
  const afterFatalMs = outcome.exitAt - outcome.fatalAt;
  assert.ok(afterFatalMs < RELEASE_LIMIT_MS + EXIT_GRACE_MS, `exited ${Math.round(afterFatalMs)} ms after the FATAL line`);
}

describe('a failed start-up exits', () => {
  test('embedded PostgreSQL (no TSDB_* set): exits 1 on a taken port and stops its PostgreSQL', { timeout: TEST_TIMEOUT_MS }, async () => {
    const held = await takePort();
    const dataDir = await tempDataParent();
    try {
      const outcome = await runUntilExit({ DATA_DIR: dataDir, SERVER_HOST: '127.0.0.1', SERVER_PORT: String(held.port), SHUTDOWN_TIMEOUT_MS: String(RELEASE_LIMIT_MS) });
      const output = outcome.lines.join('\n');
      // The case that hung: a PostgreSQL child had started before the port was found taken.
      assert.ok(outcome.entries.some((e) => e.msg === 'embedded PostgreSQL started on 127.0.0.1'), `the embedded PostgreSQL never started:\n${output}`);
      assertExitedAfterFatal(outcome, held.port);
      assert.ok(outcome.entries.some((e) => e.msg === 'embedded PostgreSQL stopped'), `the embedded PostgreSQL was not stopped:\n${output}`);
      assert.deepEqual(processesUsing(path.join(dataDir, 'postgres')), [], 'no PostgreSQL of the server remains');
      assert.throws(() => readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid')), { code: 'ENOENT' }, 'PostgreSQL shut down cleanly (postmaster.pid removed)');
    } finally {
      // Whatever failed above: no PostgreSQL of this test's data folder outlives it.
      for (const pid of processesUsing(path.join(dataDir, 'postgres'))) process.kill(pid, 'SIGKILL');
      await held.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  describe('NATS that refuses the credentials (SPOOL_URL)', { skip: natsServerBinary() === null ? 'nats-server is not installed (set NATS_SERVER_BIN)' : false }, () => {
    const f = e2eFixture('e2e-startup-nats-');
    test('exits with a configuration error naming what to fix, never "unreachable", and stops what it started', { timeout: TEST_TIMEOUT_MS }, async () => {
      const nats = await startNats(natsServerBinary() as string, { token: 'the-right-one' });
      try {
        const outcome = await runUntilExit(f.env({ SERVER_HOST: '127.0.0.1', SERVER_PORT: '0', SHUTDOWN_TIMEOUT_MS: String(RELEASE_LIMIT_MS), LOKI_ENABLED: 'false', SPOOL_URL: nats.url, SPOOL_NATS_TOKEN: 'a-wrong-one' }));
        const output = outcome.lines.join('\n');
        assert.equal(outcome.signal, null, `the server had to be killed:\n${output}`);
        assert.notEqual(outcome.code, 0, output);
        assert.ok(!outcome.entries.some((e) => e.msg === 'mothership listening'), `it must not have listened:\n${output}`);
        const fatal = outcome.entries.find((e) => e.level === 60);
        assert.ok(fatal !== undefined, `no FATAL line:\n${output}`);
        assert.equal(fatal.err?.code, 'config_invalid', output);
        assert.match(fatal.err?.message ?? '', /NATS refused the mothership .*SPOOL_NATS_TOKEN/);
        assert.doesNotMatch(output, /unreachable|a-wrong-one/, 'neither called unreachable nor the token logged');
      } finally {
        await nats.stop();
      }
    });
  });

  describe('external PostgreSQL', () => {
    const f = e2eFixture('e2e-startup-failure-');
    test('exits 1 on a taken port with its pool connected', { timeout: TEST_TIMEOUT_MS }, async () => {
      const held = await takePort();
      try {
        const outcome = await runUntilExit(f.env({ SERVER_HOST: '127.0.0.1', SERVER_PORT: String(held.port), SHUTDOWN_TIMEOUT_MS: String(RELEASE_LIMIT_MS) }));
        assert.ok(outcome.entries.some((e) => /^tsdb sink ready/.test(e.msg ?? '')), `the sink never started:\n${outcome.lines.join('\n')}`);
        assertExitedAfterFatal(outcome, held.port);
      } finally {
        await held.close();
      }
    });
  });
});
