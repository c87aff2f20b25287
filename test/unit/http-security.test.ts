import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { assembleApp, type App, type SinkSetup } from '../../src/app.js';
import type { Config } from '../../src/config/config.js';
import { loadConfig } from '../../src/config/load.js';
import { tokenDigest } from '../../src/config/tokens.js';
import { PUBLIC_ROUTES } from '../../src/http/server.js';
import { eventId } from '../../src/pipeline/event-id.js';
import { StartGate } from '../../src/sinks/start-gate.js';
import { createTsdbSink } from '../../src/sinks/tsdb/sink.js';
import { createLogger, silentLogger, type Logger } from '../../src/telemetry/logger.js';
import { tempDir } from '../helpers/events.js';
import { MemorySink } from '../helpers/memory-sink.js';

const NOW = Date.parse('2026-01-01T00:00:00Z');
const apps: Array<{ app: App; remove: () => Promise<void> }> = [];
after(async () => {
  for (const a of apps) {
    await a.app.close();
    await a.remove();
  }
});

interface Built {
  app: App;
  sink: MemorySink;
  dir: string;
  config: Config;
  clock: { now(): number; advance(ms: number): void };
}

async function build(env: Record<string, string> = {}, options: { logger?: Logger; setups?: (config: Config) => SinkSetup[]; files?: Record<string, string> } = {}): Promise<Built> {
  const dir = await tempDir('security-test-');
  for (const [name, text] of Object.entries(options.files ?? {})) await writeFile(path.join(dir.dir, name), text, { mode: 0o600 });
  const config = loadConfig({ DATA_DIR: dir.dir, SPOOL_FSYNC: 'never', SHUTDOWN_TIMEOUT_MS: '1000', ...env }, dir.dir);
  let offset = 0;
  const clock = { now: () => NOW + offset, advance: (ms: number) => void (offset += ms) };
  const sink = new MemorySink();
  const setups = options.setups?.(config) ?? [{ sink, window: 2, waitMs: 2000 }];
  const app = await assembleApp(config, { logger: options.logger ?? silentLogger(), clock, defaultMetrics: false }, setups);
  apps.push({ app, remove: dir.remove });
  return { app, sink, dir: dir.dir, config, clock };
}

function post(app: App, body: unknown, headers: Record<string, string> = {}, remoteAddress?: string) {
  return app.http.inject({
    method: 'POST',
    url: '/ingest',
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
    ...(remoteAddress === undefined ? {} : { remoteAddress }),
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const FLEET = { AUTH_TOKENS: 'edge-01:token-one-1111,edge-02:token-two-2222' };

function stored(sink: MemorySink) {
  return [...sink.stored.values()];
}

function capture(): { logger: Logger; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { logger: createLogger({ log: { level: 'debug', format: 'json' } }, stream), text: () => chunks.join('') };
}

describe('node identity from tokens', () => {
  test('no token and a wrong token are refused with 401; nothing is stored', async () => {
    const { app, sink } = await build(FLEET);
    for (const headers of [{}, bearer('token-three'), bearer('edge-01:token-one-1111'), { authorization: 'token-one-1111' }]) {
      const res = await post(app, { messages: ['m'] }, headers);
      assert.equal(res.statusCode, 401, res.body);
      assert.equal(res.json().error, 'unauthorized');
      assert.doesNotMatch(res.body, /token-/);
    }
    assert.equal(sink.stored.size, 0);
  });

  test("a node cannot write as another: source is the authenticated node, ids differ, the other node's events stay as they are", async () => {
    const { app, sink } = await build(FLEET);
    const messages = [{ message: 'reboot', timestamp: 1767225600 }, { message: 'link up', timestamp: 1767225601, __spool_id: 77 }];
    const real = await post(app, { messages, source: 'edge-02' }, bearer('token-two-2222'));
    assert.equal(real.statusCode, 200, real.body);
    // edge-01 replays edge-02's batch, claiming to be edge-02, with the same spool ids and key.
    const forged = await post(app, { messages, source: 'edge-02' }, { ...bearer('token-one-1111'), 'idempotency-key': 'k1' });
    assert.equal(forged.statusCode, 200, forged.body);
    assert.deepEqual(forged.json().sink_results.tsdb, { written: 2, duplicates: 0, errors: 0 });
    const events = stored(sink);
    assert.equal(events.length, 4);
    const bySource = (s: string) => events.filter((e) => e.source === s);
    assert.equal(bySource('edge-02').length, 2);
    assert.equal(bySource('edge-01').length, 2);
    for (const e of bySource('edge-02')) assert.equal(e.data['claimed_source'], undefined);
    for (const e of bySource('edge-01')) assert.equal(e.data['claimed_source'], 'edge-02');
    const ids02 = new Set(bySource('edge-02').map((e) => e.id));
    for (const e of bySource('edge-01')) assert.ok(!ids02.has(e.id), 'an id of the other node was reused');
    assert.ok(ids02.has(eventId('spool', 'edge-02', '77', null)));
    assert.ok(bySource('edge-01').some((e) => e.id === eventId('spool', 'edge-01', '77', null)));
    // The forger's retry is a duplicate of its own events, not of edge-02's.
    const again = await post(app, { messages, source: 'edge-02' }, { ...bearer('token-one-1111'), 'idempotency-key': 'k1' });
    assert.deepEqual(again.json().sink_results.tsdb, { written: 0, duplicates: 2, errors: 0 });
  });

  test('a node that names itself (or nothing) gets plain events: no claimed_source, ids from its node', async () => {
    const { app, sink } = await build(FLEET);
    await post(app, { messages: [{ message: 'a' }], source: 'edge-01' }, bearer('token-one-1111'));
    await post(app, { messages: [{ message: 'b' }] }, bearer('token-one-1111'));
    const events = stored(sink);
    assert.deepEqual(events.map((e) => e.source), ['edge-01', 'edge-01']);
    assert.ok(events.every((e) => !('claimed_source' in e.data)));
    assert.equal(events[1]?.id, eventId('content', 'edge-01', '{"message":"b"}', 0));
  });

  test('a bare token list works as before: no stamping, the envelope source names the node', async () => {
    const bare = await build({ AUTH_TOKENS: 'tok1-aaaa,tok2-bbbb' });
    const open = await build({});
    const body = { messages: [{ message: 'x' }, 'y'], source: 'edge-07' };
    assert.equal((await post(bare.app, body, bearer('tok2-bbbb'))).statusCode, 200);
    assert.equal((await post(open.app, body)).statusCode, 200);
    const a = stored(bare.sink);
    const b = stored(open.sink);
    assert.deepEqual(a.map((e) => [e.id, e.source, e.dataJson]), b.map((e) => [e.id, e.source, e.dataJson]));
    assert.deepEqual(a.map((e) => e.source), ['edge-07', 'edge-07']);
  });

  test('AUTH_TOKENS_FILE with hashed tokens; reload revokes; a bad file on reload keeps the tokens in force', async () => {
    const log = capture();
    const file = `# node token\nedge-01 sha256:${tokenDigest('file-token-1')}\nedge-02 file-token-2\n`;
    const { app, sink, dir } = await build({ AUTH_TOKENS_FILE: 'tokens.txt' }, { logger: log.logger, files: { 'tokens.txt': file } });
    assert.equal((await post(app, { messages: ['a'] }, bearer('file-token-1'))).statusCode, 200);
    assert.equal((await post(app, { messages: ['b'] }, bearer('file-token-2'))).statusCode, 200);
    assert.deepEqual(stored(sink).map((e) => e.source).sort(), ['edge-01', 'edge-02']);

    await writeFile(path.join(dir, 'tokens.txt'), `edge-01 sha256:${tokenDigest('file-token-1')}\n`);
    assert.deepEqual(await app.reload(), { tokens: 'reloaded', tls: 'off' });
    assert.equal((await post(app, { messages: ['c'] }, bearer('file-token-2'))).statusCode, 401);
    assert.equal((await post(app, { messages: ['d'] }, bearer('file-token-1'))).statusCode, 200);

    await writeFile(path.join(dir, 'tokens.txt'), 'edge-01 file-token-1\nedge-03 file-token-1\nbroken-line\n');
    assert.deepEqual(await app.reload(), { tokens: 'failed', tls: 'off' });
    assert.equal((await post(app, { messages: ['e'] }, bearer('file-token-1'))).statusCode, 200);
    assert.match(log.text(), /NOT reloaded/);
    assert.doesNotMatch(log.text(), /file-token/);

    // An empty file is not "auth off": it locks every node out.
    await writeFile(path.join(dir, 'tokens.txt'), '# nobody\n');
    assert.deepEqual(await app.reload(), { tokens: 'reloaded', tls: 'off' });
    assert.equal((await post(app, { messages: ['f'] }, bearer('file-token-1'))).statusCode, 401);
    assert.equal((await post(app, { messages: ['g'] })).statusCode, 401);
  });

  test('a bad AUTH_TOKENS_FILE stops start-up, naming the variable and line', async () => {
    await assert.rejects(build({ AUTH_TOKENS_FILE: 'tokens.txt' }, { files: { 'tokens.txt': 'edge-01 ok\nedge-02\n' } }), /AUTH_TOKENS_FILE: line 2/);
    await assert.rejects(build({ AUTH_TOKENS_FILE: 'missing.txt' }), /AUTH_TOKENS_FILE: cannot read .*ENOENT/);
  });
});

/** Every registered route as "METHOD /path", from Fastify's route tree. */
function routesOf(app: App): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of app.http.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^([│ ├└─]*)(\S.*?) \(([A-Z, ]+)\)$/.exec(line);
    if (m === null) continue;
    const depth = (m[1] ?? '').length / 4;
    stack.length = depth;
    const full = `${stack[depth - 1] ?? ''}${m[2] ?? ''}`.replace(/\/{2,}/g, '/');
    stack[depth] = full.endsWith('/') ? full : `${full}/`;
    for (const method of (m[3] ?? '').split(', ')) if (method !== 'HEAD') out.push(`${method} ${full}`);
  }
  return out;
}

describe('the admin surface', () => {
  test('every route that is not ingest, health, probes or metrics requires ADMIN_TOKEN (the ingest tokens do not open it)', async () => {
    const { app } = await build({ ...FLEET, ADMIN_TOKEN: 'admin-secret-0' });
    await app.http.ready();
    const routes = routesOf(app);
    assert.ok(routes.includes('GET /admin/spool') && routes.includes('POST /admin/deadletters/replay'), routes.join('\n'));
    const guarded = routes.filter((r) => !PUBLIC_ROUTES.has(r.split(' ')[1] ?? ''));
    assert.ok(guarded.length >= 4);
    for (const route of guarded) {
      const [method, url] = route.split(' ') as ['GET', string];
      for (const headers of [{}, bearer('token-one-1111'), bearer('admin-secret-1')]) {
        const res = await app.http.inject({ method, url, headers });
        assert.equal(res.statusCode, 401, `${route} ${JSON.stringify(headers)}: ${res.body}`);
        assert.equal(res.json().error, 'unauthorized');
      }
      const ok = await app.http.inject({ method, url, headers: bearer('admin-secret-0') });
      assert.notEqual(ok.statusCode, 401, route);
    }
  });

  test('without ADMIN_TOKEN the admin endpoints do not exist', async () => {
    const { app } = await build(FLEET);
    await app.http.ready();
    assert.deepEqual(routesOf(app).filter((r) => !PUBLIC_ROUTES.has(r.split(' ')[1] ?? '')), []);
    for (const url of ['/admin/spool', '/admin/deadletters']) {
      const res = await app.http.inject({ method: 'GET', url, headers: bearer('token-one-1111') });
      assert.equal(res.statusCode, 404);
    }
  });

  test('/, /health and /readyz reveal no secret, no URL password and no internal path', async () => {
    const secrets = ['pg-secret-pw', 'admin-secret-0', 'token-one-1111', 'loki-secret-pw'];
    const { app, dir, config } = await build(
      { ...FLEET, ADMIN_TOKEN: 'admin-secret-0', TSDB_URL: 'postgres://edgebot:pg-secret-pw@127.0.0.1:1/edgebot', LOKI_PASSWORD: 'loki-secret-pw', TSDB_WRITE_TIMEOUT_MS: '200' },
      {
        // The real PostgreSQL sink, pointed at a port where nothing listens: its errors reach /health.
        setups: (c) => {
          const tsdb = createTsdbSink(c.tsdb, c.tsdb.connection, silentLogger());
          return [{ sink: new StartGate(tsdb, silentLogger()), window: 1, waitMs: 200, describe: () => tsdb.describe() }];
        },
      },
    );
    await post(app, { messages: ['m'] }, bearer('token-one-1111'));
    for (const url of ['/', '/health', '/readyz', '/livez']) {
      const res = await app.http.inject({ method: 'GET', url });
      for (const secret of [...secrets, dir, config.spool.dir, 'tokens']) assert.ok(!res.body.includes(secret), `${url} shows ${secret}: ${res.body}`);
      if (url === '/health') {
        assert.equal(res.json().sinks.tsdb.details.target, '127.0.0.1:1/edgebot');
        assert.match(res.json().sinks.tsdb.reason, /127\.0\.0\.1:1/);
      }
    }
  });
});

describe('message and batch limits', () => {
  test('too many keys, too long a string, too deep: each message is rejected alone with its code', async () => {
    const { app, sink } = await build({ MAX_KEYS_PER_MESSAGE: '5', MAX_STRING_BYTES: '32', MAX_JSON_DEPTH: '3' });
    const messages = [
      { message: 'fine', a: 1, b: 2, c: 3, d: 4 },
      { message: 'keys', a: 1, b: 2, c: 3, d: 4, e: 5 },
      { message: 'nested keys', n: { a: 1, b: { c: 1, d: 2 } } },
      'x'.repeat(32),
      'x'.repeat(33),
      { message: 'é'.repeat(17) },
      { ['k'.repeat(33)]: 1 },
      { message: 'arr', list: ['ok', 'y'.repeat(40)] },
      { message: 'deep', a: { b: { c: 1 } } },
      { message: 'too deep', a: { b: { c: {} } } },
    ];
    const res = await post(app, { messages });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.deepEqual(body.rejected.map((r: { index: number; error: string }) => [r.index, r.error]), [
      [1, 'message_too_many_keys'],
      [2, 'message_too_many_keys'],
      [4, 'message_string_too_long'],
      [5, 'message_string_too_long'],
      [6, 'message_string_too_long'],
      [7, 'message_string_too_long'],
      [9, 'message_too_deep'],
    ]);
    assert.match(body.rejected[0].message, /more than 5 object keys \(MAX_KEYS_PER_MESSAGE\)/);
    assert.match(body.rejected[2].message, /longer than 32 bytes \(MAX_STRING_BYTES\)/);
    assert.equal(body.sanitized, 3);
    assert.equal(sink.stored.size, 3);
  });

  test('too many messages is a 413; the rest of the request limits answer in the error shape', async () => {
    const { app } = await build({ MAX_MESSAGES_PER_BATCH: '3' });
    const res = await post(app, { messages: ['a', 'b', 'c', 'd'] });
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().error, 'too_many_messages');
  });
});

describe('rate limit', () => {
  test('per node: 429 + Retry-After past the bucket, other nodes unaffected, refilled by the clock', async () => {
    const { app, sink, clock } = await build({ ...FLEET, RATE_LIMIT_MESSAGES_PER_SECOND: '10', RATE_LIMIT_BURST: '20' });
    const batch = (n: number, tag: string) => ({ messages: Array.from({ length: n }, (_, i) => `${tag} ${i}`) });
    assert.equal((await post(app, batch(15, 'a'), bearer('token-one-1111'))).statusCode, 200);
    const refused = await post(app, batch(10, 'b'), bearer('token-one-1111'));
    assert.equal(refused.statusCode, 429, refused.body);
    assert.equal(refused.json().error, 'rate_limited');
    assert.equal(refused.headers['retry-after'], '1');
    // Another node has its own bucket, even when it claims to be the first one.
    assert.equal((await post(app, { ...batch(20, 'c'), source: 'edge-01' }, bearer('token-two-2222'))).statusCode, 200);
    clock.advance(1000);
    assert.equal((await post(app, batch(15, 'd'), bearer('token-one-1111'))).statusCode, 200);
    assert.equal(sink.stored.size, 50);
    // Empty bucket: refused before the body is even read.
    const early = await post(app, 'not even JSON', bearer('token-one-1111'));
    assert.equal(early.statusCode, 429);
    assert.equal(early.headers['retry-after'], '1');
  });

  test('without node identities, per client address', async () => {
    const { app } = await build({ RATE_LIMIT_MESSAGES_PER_SECOND: '1', RATE_LIMIT_BURST: '2' });
    assert.equal((await post(app, { messages: ['a', 'b'] }, {}, '10.0.0.1')).statusCode, 200);
    const refused = await post(app, { messages: ['c'] }, {}, '10.0.0.1');
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal((await post(app, { messages: ['c'] }, {}, '10.0.0.2')).statusCode, 200);
  });
});

describe('logs', () => {
  test('refused and failed requests log no token, header or query secret', async () => {
    const log = capture();
    const { app } = await build({ ...FLEET, ADMIN_TOKEN: 'admin-secret-0' }, { logger: log.logger });
    await post(app, { messages: ['m'] }, bearer('wrong-secret-token'));
    await app.http.inject({ method: 'POST', url: '/ingest?token=query-secret-x', headers: { 'content-type': 'application/json', ...bearer('token-one-1111') }, payload: '{bad' });
    await app.http.inject({ method: 'GET', url: '/admin/spool', headers: bearer('admin-wrong-guess') });
    const text = log.text();
    assert.match(text, /request refused/);
    for (const secret of ['wrong-secret-token', 'query-secret-x', 'token-one-1111', 'admin-secret-0', 'admin-wrong-guess']) assert.ok(!text.includes(secret), `${secret} leaked`);
  });
});
