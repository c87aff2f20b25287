import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { App } from '../../src/app.js';
import { appFixture } from '../helpers/app.js';
import { MemorySink } from '../helpers/memory-sink.js';
import { envelope, payloadSamples } from '../helpers/samples.js';

const NOW = Date.parse('2026-01-01T00:00:00Z');
const buildApp = appFixture('http-test-');

async function build(env: Record<string, string> = {}, sink = new MemorySink()): Promise<{ app: FastifyInstance; sink: MemorySink; full: App }> {
  // Time starts at NOW and moves with the real clock, so backoff and circuit periods elapse.
  const started = Date.now();
  const clock = { now: () => NOW + (Date.now() - started) };
  const limits = { MAX_BODY_BYTES: '65536', MAX_DECOMPRESSED_BYTES: '262144', MAX_MESSAGES_PER_BATCH: '1000' };
  const { app: full } = await buildApp({ ...limits, ...env }, sink, { clock });
  return { app: full.http, sink, full };
}

function post(app: FastifyInstance, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  return app.inject({ method: 'POST', url: '/ingest', headers, payload: body });
}

describe('POST /ingest', () => {
  test('the seed example gets the seed answer', async () => {
    const { app, sink } = await build();
    const res = await post(app, JSON.stringify({ messages: [{ message: 'Test log', service: 'test', severity: 'info' }], batch_size: 1, source: 'test' }));
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), {
      status: 'success',
      received: 1,
      sanitized: 1,
      written: 1,
      errors: 0,
      sink_results: { tsdb: { written: 1, duplicates: 0, errors: 0 } },
    });
    assert.equal(sink.stored.size, 1);
  });

  test('real node payloads, plain and gzip, and the retry adds nothing', async () => {
    const { app, sink } = await build();
    for (const sample of payloadSamples()) {
      const plain = await post(app, sample.json);
      assert.equal(plain.statusCode, 200, plain.body);
      assert.equal(plain.json().sink_results.tsdb.written, sample.body.messages.length);
      assert.ok(sample.gzip !== null);
      const gz = await post(app, sample.gzip, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      assert.equal(gz.statusCode, 200, gz.body);
      assert.deepEqual(gz.json().sink_results.tsdb, { written: 0, duplicates: sample.body.messages.length, errors: 0 });
    }
    assert.equal(sink.stored.size, payloadSamples().reduce((n, s) => n + s.body.messages.length, 0));
  });

  test('deflate (zlib-wrapped and raw) is accepted', async () => {
    const { app } = await build();
    const body = JSON.stringify(envelope([{ message: 'deflated' }]));
    for (const encoded of [zlib.deflateSync(body), zlib.deflateRawSync(body)]) {
      const res = await post(app, encoded, { 'content-type': 'application/json', 'content-encoding': 'deflate' });
      assert.equal(res.statusCode, 200, res.body);
    }
  });

  test('an empty batch answers 200 with zeros', async () => {
    const { app, sink } = await build();
    const res = await post(app, JSON.stringify(envelope([])));
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'success', received: 0, sanitized: 0, written: 0, errors: 0, sink_results: { tsdb: { written: 0, duplicates: 0, errors: 0 } } });
    assert.equal(sink.sends, 0);
  });

  test('a bare string is a message; a non-object is rejected alone', async () => {
    const { app, sink } = await build();
    const res = await post(app, JSON.stringify(envelope(['just text', 42, null, { message: 'ok' }, [1]])));
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.received, 5);
    assert.equal(body.sanitized, 2);
    assert.equal(body.written, 2);
    assert.equal(body.errors, 3);
    assert.deepEqual(body.rejected.map((r: { index: number; error: string }) => [r.index, r.error]), [
      [1, 'message_not_object'],
      [2, 'message_not_object'],
      [4, 'message_not_object'],
    ]);
    assert.deepEqual([...sink.stored.values()].map((e) => e.message).sort(), ['just text', 'ok']);
  });

  test('a message the sink refuses for good is rejected alone, with its index', async () => {
    const sink = new MemorySink();
    sink.poison = /poison/;
    const { app } = await build({}, sink);
    const messages = Array.from({ length: 9 }, (_, i) => ({ message: i === 6 ? 'poison pill' : `fine ${i}` }));
    const res = await post(app, JSON.stringify(envelope(['x', 7, ...messages])));
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.written, 9);
    assert.deepEqual(body.rejected.map((r: { index: number; error: string }) => [r.index, r.error]), [
      [1, 'message_not_object'],
      [8, 'sink_rejected'],
    ]);
    assert.equal(sink.stored.size, 9);
  });

  const errorCases: Array<{ name: string; body: string | Buffer; headers?: Record<string, string>; status: number; error: string; env?: Record<string, string> }> = [
    { name: 'invalid JSON', body: '{"messages": [', status: 400, error: 'invalid_json' },
    { name: 'a JSON array body', body: '[1,2]', status: 400, error: 'invalid_envelope' },
    { name: 'a JSON string body', body: '"hello"', status: 400, error: 'invalid_envelope' },
    { name: 'null body', body: 'null', status: 400, error: 'invalid_envelope' },
    { name: 'messages missing', body: '{"source":"x"}', status: 400, error: 'invalid_envelope' },
    { name: 'messages not an array', body: '{"messages":{"a":1}}', status: 400, error: 'invalid_envelope' },
    { name: 'an empty body', body: '', status: 400, error: 'invalid_envelope' },
    { name: 'too many messages', body: JSON.stringify(envelope(Array.from({ length: 1001 }, () => 'm'))), status: 413, error: 'too_many_messages' },
    { name: 'a body over MAX_BODY_BYTES', body: JSON.stringify(envelope(['x'.repeat(70_000)])), status: 413, error: 'body_too_large' },
    {
      name: 'a gzip bomb',
      body: zlib.gzipSync(Buffer.alloc(10 * 1024 * 1024, 0x20)),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      status: 413,
      error: 'body_too_large',
    },
    { name: 'corrupt gzip', body: Buffer.from('not gzip at all'), headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, status: 400, error: 'invalid_encoding' },
    { name: 'an unknown encoding', body: '{}', headers: { 'content-type': 'application/json', 'content-encoding': 'br' }, status: 415, error: 'unsupported_encoding' },
    { name: 'a form body', body: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, error: 'unsupported_media_type' },
    { name: 'text/plain', body: 'hello', headers: { 'content-type': 'text/plain' }, status: 415, error: 'unsupported_media_type' },
    { name: 'no token when auth is on', body: '{"messages":[]}', status: 401, error: 'unauthorized', env: { AUTH_TOKENS: 'secret-1,secret-2' } },
    {
      name: 'a wrong token',
      body: '{"messages":[]}',
      headers: { 'content-type': 'application/json', authorization: 'Bearer nope' },
      status: 401,
      error: 'unauthorized',
      env: { AUTH_TOKENS: 'secret-1' },
    },
  ];
  for (const c of errorCases) {
    test(`${c.name} → ${c.status} ${c.error}`, async () => {
      const { app, sink } = await build(c.env);
      const res = await post(app, c.body, c.headers);
      assert.equal(res.statusCode, c.status, res.body);
      const body = res.json();
      assert.equal(body.status, 'error');
      assert.equal(body.error, c.error);
      assert.equal(typeof body.message, 'string');
      assert.ok(body.message.length > 0);
      assert.equal(sink.stored.size, 0);
    });
  }

  test('413 answers state the limit', async () => {
    const { app } = await build();
    const bomb = await post(app, zlib.gzipSync(Buffer.alloc(1024 * 1024, 0x20)), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    assert.match(bomb.json().message, /262144/);
    const big = await post(app, JSON.stringify(envelope(['x'.repeat(70_000)])));
    assert.match(big.json().message, /65536/);
  });

  test('a valid token is accepted; the token never appears in an answer', async () => {
    const { app } = await build({ AUTH_TOKENS: 'secret-1,secret-2' });
    const ok = await post(app, JSON.stringify(envelope(['m'])), { 'content-type': 'application/json', authorization: 'Bearer secret-2' });
    assert.equal(ok.statusCode, 200);
    const bad = await post(app, '{}', { 'content-type': 'application/json', authorization: 'Bearer secret-3' });
    assert.doesNotMatch(bad.body, /secret/);
  });

  test('a sink that is down: the batch is spooled and answered queued; it lands once the sink is back', async () => {
    const { app, sink, full } = await build({ TSDB_WRITE_TIMEOUT_MS: '200' });
    sink.down = true;
    const body = JSON.stringify(envelope([{ message: 'a' }, { message: 'b' }]));
    const res = await post(app, body);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json().sink_results.tsdb, { written: 0, duplicates: 0, errors: 0, queued: 2 });
    assert.equal(res.json().written, 2);
    const health = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(health.statusCode, 200);
    assert.equal(health.json().status, 'degraded');
    assert.equal(health.json().sinks.tsdb.backlog_events, 2);
    sink.down = false;
    const deadline = Date.now() + 10_000;
    while (full.spool.backlogOf('tsdb').events > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(sink.stored.size, 2);
    // The node never saw a final answer it trusted and resends: nothing is added.
    const again = await post(app, body);
    assert.deepEqual(again.json().sink_results.tsdb, { written: 0, duplicates: 2, errors: 0 });
    assert.equal(sink.stored.size, 2);
  });

  test('a full spool answers 503 spool_full with Retry-After, and /health says unhealthy', async () => {
    const { app, sink } = await build({ SPOOL_MAX_BYTES: String(1024 * 1024), TSDB_WRITE_TIMEOUT_MS: '100' });
    sink.down = true;
    const big = JSON.stringify(envelope(Array.from({ length: 200 }, (_, i) => ({ message: `m${i} ${'x'.repeat(200)}` }))));
    let refused = null;
    for (let i = 0; i < 100 && refused === null; i++) {
      const res = await post(app, big.replace('"m0 ', `"n${i} `));
      if (res.statusCode !== 200) refused = res;
    }
    assert.ok(refused !== null, 'the spool never filled');
    assert.equal(refused.statusCode, 503);
    assert.equal(refused.json().error, 'spool_full');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    const health = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(health.statusCode, 503);
    assert.equal(health.json().status, 'unhealthy');
  });

  test('a missing Content-Type is taken as JSON', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'POST', url: '/ingest', payload: JSON.stringify(envelope(['m'])), headers: { 'content-type': '' } });
    assert.equal(res.statusCode, 200, res.body);
  });
});

describe('GET /health and /', () => {
  test('healthy while the sink is up, degraded (still 200) when it is down', async () => {
    const { app, sink } = await build();
    const up = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(up.statusCode, 200);
    const body = up.json();
    assert.equal(body.status, 'healthy');
    assert.equal(body.healthy, true);
    assert.ok(body.timestamp >= Math.floor(NOW / 1000) && body.timestamp < Math.floor(NOW / 1000) + 60);
    assert.equal(body.sinks.tsdb.healthy, true);
    assert.equal(body.sinks.tsdb.enabled, true);
    assert.equal(body.sinks.tsdb.circuit, 'closed');
    assert.equal(body.sinks.tsdb.backlog_events, 0);
    assert.equal(body.sinks.tsdb.dead_letters, 0);
    assert.deepEqual(body.sinks.loki, { healthy: false, enabled: false });
    assert.deepEqual(body.enabled_sinks, ['tsdb']);
    sink.down = true;
    // Health checks are cached for a second, so a polling load balancer cannot hammer the sinks.
    await new Promise((r) => setTimeout(r, 1100));
    const down = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(down.statusCode, 200);
    assert.equal(down.json().status, 'degraded');
    assert.equal(down.json().sinks.tsdb.healthy, false);
  });

  test('/ describes the service', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/' });
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.service, 'edgebot-mothership');
    assert.equal(body.status, 'running');
    assert.deepEqual(body.enabled_sinks, ['tsdb']);
    assert.equal(body.endpoints.ingest, 'POST /ingest');
  });

  test('unknown paths answer 404 in the error shape', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/nope' });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error, 'not_found');
  });
});
