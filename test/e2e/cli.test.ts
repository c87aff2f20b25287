import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { e2eFixture, withDb } from '../helpers/e2e.js';
import { SAMPLES_DIR } from '../helpers/samples.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const exec = promisify(execFile);

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
