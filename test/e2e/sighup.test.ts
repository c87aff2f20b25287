import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, test } from 'node:test';
import { waitUntil } from '../helpers/e2e.js';
import { tempDir } from '../helpers/events.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

let server: ServerProcess | null = null;
let removeDir: () => Promise<void> = async () => {};
after(async () => {
  await server?.stop('SIGKILL');
  await removeDir();
});

interface Answer {
  status: number;
  body: string;
  reused: boolean;
}

function post(url: string, token: string, agent: http.Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/ingest`, { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ messages: [{ message: `from ${token}` }], source: 'edge-02' }));
  });
}

function logged(s: ServerProcess, message: string): () => boolean {
  const seen = s.output.length;
  return () => s.output.slice(seen).some((line) => line.includes(message));
}

test('SIGHUP re-reads AUTH_TOKENS_FILE: a removed token gets 401 at once, an open keep-alive connection stays usable, a bad file changes nothing', async () => {
  const dir = await tempDir('sighup-test-');
  removeDir = dir.remove;
  const tokens = path.join(dir.dir, 'tokens');
  await writeFile(tokens, '# fleet\nedge-01 token-for-01\nedge-02 token-for-02\n', { mode: 0o600 });
  // PostgreSQL is unreachable on purpose: batches are spooled and answered "queued", which is all this test needs.
  server = await startServer({
    DATA_DIR: dir.dir,
    AUTH_TOKENS_FILE: tokens,
    TSDB_URL: 'postgres://edgebot:pg-password-x@127.0.0.1:1/edgebot',
    TSDB_WRITE_TIMEOUT_MS: '100',
    SPOOL_FSYNC: 'never',
    SHUTDOWN_TIMEOUT_MS: '500',
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const before = await post(server.url, 'token-for-02', agent);
    assert.equal(before.status, 200, before.body);

    await writeFile(tokens, 'edge-01 token-for-01\n');
    const reloaded = logged(server, 'ingest tokens reloaded');
    process.kill(server.pid, 'SIGHUP');
    await waitUntil(reloaded, 10_000, 'the reload');
    const revoked = await post(server.url, 'token-for-02', agent);
    assert.equal(revoked.status, 401, revoked.body);
    assert.equal(JSON.parse(revoked.body).error, 'unauthorized');
    assert.equal(revoked.reused, true, 'the keep-alive connection was dropped');
    const kept = await post(server.url, 'token-for-01', agent);
    assert.equal(kept.status, 200, kept.body);
    assert.equal(kept.reused, true);

    await writeFile(tokens, 'edge-01 token-for-01\nthis line is broken\n');
    const refused = logged(server, 'NOT reloaded');
    process.kill(server.pid, 'SIGHUP');
    await waitUntil(refused, 10_000, 'the refused reload');
    assert.equal((await post(server.url, 'token-for-01', agent)).status, 200);
    assert.equal(server.output.some((line) => /token-for-0|pg-password-x/.test(line)), false, 'a secret reached the log');
  } finally {
    agent.destroy();
  }
  assert.equal(await server.stop('SIGTERM'), 0);
});
