import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../src/lib/free-port.js';
import { e2eFixture, withDb } from '../helpers/e2e.js';
import { SAMPLES_DIR } from '../helpers/samples.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const exec = promisify(execFile);
const PKG_VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('the mothership CLI', () => {
  const f = e2eFixture('e2e-cli-');
  let server: ServerProcess;

  before(async () => {
    server = await startServer(f.env({ ADMIN_TOKEN: 'cli-admin' }));
  });

  f.beforeTeardown(async () => {
    await server?.stop();
  });

  test('check-config validates, masks secrets, and names a bad variable', async () => {
    const ok = await cli(['check-config'], { TSDB_URL: 'postgres://u:very-secret@db/x' });
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /configuration is valid/);
    assert.ok(!ok.stdout.includes('very-secret'));
    const bad = await cli(['check-config'], { SERVER_PORT: 'http' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /SERVER_PORT/);
  });

  test('send ships JSONL, CSV and payload JSON files; sending again adds nothing', async () => {
    const files = ['syslog_events.jsonl', 'weather_data.csv', 'payload-20250822_171457_979.json'].map((f) => path.join(SAMPLES_DIR, f));
    const first = await cli(['send', '--url', server.url, '--source', 'backfill-node', '--batch', '7', ...files]);
    assert.equal(first.code, 0, first.stderr);
    const summary = JSON.parse(first.stdout) as { files: number; messages: number; accepted: number; duplicates: number };
    assert.equal(summary.files, 3);
    assert.equal(summary.messages, 16 + 16 + 1);
    assert.equal(summary.accepted, summary.messages);
    // stderr is not a terminal here: no progress redraws, one human line at the end.
    assert.ok(!first.stderr.includes('\r'), first.stderr);
    assert.match(first.stderr, /^sent 33 messages in 7 batches from 3 files in .*: 33 accepted \(0 duplicates\), 0 rejected, 0 retries\n$/);
    const again = JSON.parse((await cli(['send', '--url', server.url, '--source', 'backfill-node', '--batch', '7', ...files])).stdout) as { duplicates: number; messages: number };
    assert.equal(again.duplicates, again.messages);
    const n = await withDb(f.db.connection, async (c) => (await c.query(`SELECT count(*)::int AS n FROM ${f.schema}.events WHERE source = 'backfill-node'`)).rows[0]?.n);
    assert.equal(n, summary.messages);
  });

  test('spool inspect reads the live spool; deadletters list goes through the admin API', async () => {
    const inspect = await cli(['spool', 'inspect', '--dir', path.join(f.dataDir, 'spool')]);
    assert.equal(inspect.code, 0, inspect.stderr);
    const report = JSON.parse(inspect.stdout) as { segments: Array<{ records: number }>; cursors: { tsdb?: number } };
    assert.ok(report.segments.length >= 1);
    assert.equal(typeof report.cursors.tsdb, 'number');
    const list = await cli(['deadletters', 'list', '--url', server.url, '--admin-token', 'cli-admin']);
    assert.equal(list.code, 0, list.stderr);
    assert.equal((JSON.parse(list.stdout) as { total: number }).total, 0);
    const denied = await cli(['deadletters', 'list', '--url', server.url, '--admin-token', 'wrong']);
    assert.equal(denied.code, 1);
  });
});

describe('the mothership CLI follows conventions (no server needed)', () => {
  const SUBCOMMANDS = [['serve'], ['check-config'], ['send'], ['spool', 'inspect'], ['deadletters', 'list'], ['deadletters', 'replay'], ['help']];

  test('--help works for every subcommand: its usage on stdout, exit 0', async () => {
    for (const command of SUBCOMMANDS) {
      const r = await cli([...command, '--help']);
      assert.equal(r.code, 0, `${command.join(' ')} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: mothership ${command.join(' ')}\\b`), command.join(' '));
      assert.equal(r.stderr, '');
    }
    for (const argv of [['--help'], ['-h'], ['help'], ['help', 'send']]) {
      const r = await cli(argv);
      assert.equal(r.code, 0, argv.join(' '));
      assert.match(r.stdout, /usage: mothership/);
    }
  });

  test("--version prints package.json's version", async () => {
    for (const flag of ['--version', '-V']) {
      const r = await cli([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stdout.trim(), `mothership ${PKG_VERSION}`);
    }
  });

  test('no command, an unknown option or a missing file: exit 2, the problem and the usage on stderr', async () => {
    const none = await cli([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /usage: mothership <command>/);
    const unknown = await cli(['send', '--bogus', 'x.jsonl']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^mothership send: unknown option '--bogus'\nusage: mothership send \[options\] FILE\.\.\.\n/);
    const noFiles = await cli(['send']);
    assert.equal(noFiles.code, 2);
    assert.match(noFiles.stderr, /^mothership send: missing FILE\nusage: mothership send/);
    const missing = await cli(['send', path.join(SAMPLES_DIR, 'no-such-file.jsonl')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read '.*no-such-file\.jsonl': no such file\nusage: mothership send/);
    const listNoToken = await cli(['deadletters', 'list', '--bogus']);
    assert.equal(listNoToken.code, 2);
    assert.match(listNoToken.stderr, /usage: mothership deadletters list/);
  });

  test('send to a server that is not there exits 1 quickly, the JSON summary with the error on stdout', async () => {
    const port = await freePort();
    const started = Date.now();
    const r = await cli(['send', '--url', `http://127.0.0.1:${port}`, '--max-retry-seconds', '1', path.join(SAMPLES_DIR, 'syslog_events.jsonl')]);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(Date.now() - started < 10_000, 'gave up within its retry budget');
    assert.match(r.stderr, /could not deliver to .*ECONNREFUSED/);
    const summary = JSON.parse(r.stdout) as { messages: number; retries: number; error: string };
    assert.equal(summary.messages, 0);
    assert.ok(summary.retries >= 1);
    assert.match(summary.error, /ECONNREFUSED/);
  });
});
