import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { appFixture } from '../helpers/app.js';
import { MemorySink } from '../helpers/memory-sink.js';
import { envelope } from '../helpers/samples.js';

const build = appFixture('admin-test-');

const ADMIN = { authorization: 'Bearer admin-secret' };

describe('admin endpoints', () => {
  test('do not exist without ADMIN_TOKEN', async () => {
    const { app } = await build({});
    for (const url of ['/admin/spool', '/admin/deadletters']) {
      const res = await app.http.inject({ method: 'GET', url, headers: ADMIN });
      assert.equal(res.statusCode, 404);
    }
  });

  test('require the admin token (and the ingest token is not it)', async () => {
    const { app } = await build({ ADMIN_TOKEN: 'admin-secret', AUTH_TOKENS: 'node-token' });
    assert.equal((await app.http.inject({ method: 'GET', url: '/admin/spool' })).statusCode, 401);
    assert.equal((await app.http.inject({ method: 'GET', url: '/admin/spool', headers: { authorization: 'Bearer node-token' } })).statusCode, 401);
    const ok = await app.http.inject({ method: 'GET', url: '/admin/spool', headers: ADMIN });
    assert.equal(ok.statusCode, 200);
    assert.equal(typeof ok.json().bytes, 'number');
    assert.equal(ok.json().sinks.tsdb.backlog_events, 0);
  });

  test('dead letters can be listed, replayed to the sink once it accepts them, and purged', async () => {
    const sink = new MemorySink();
    sink.poison = /poison/;
    const { app } = await build({ ADMIN_TOKEN: 'admin-secret' }, sink);
    const messages = [{ message: 'fine 1' }, { message: 'poison 1' }, { message: 'fine 2' }, { message: 'poison 2' }];
    const res = await app.http.inject({ method: 'POST', url: '/ingest', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(envelope(messages, 'node-a')) });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json().rejected.map((r: { index: number }) => r.index), [1, 3]);

    const listed = await app.http.inject({ method: 'GET', url: '/admin/deadletters?sink=tsdb&limit=10', headers: ADMIN });
    assert.equal(listed.statusCode, 200);
    const body = listed.json();
    assert.equal(body.total, 2);
    assert.deepEqual(body.items.map((i: { event: { message: string } }) => i.event.message).sort(), ['poison 1', 'poison 2']);
    assert.equal(body.items[0].code, 'sink_rejected');
    assert.equal(body.items[0].sink, 'tsdb');

    // The operator fixes the cause, then replays one of them by id.
    sink.poison = null;
    const id = body.items.find((i: { event: { message: string } }) => i.event.message === 'poison 1').event.id;
    const replay = await app.http.inject({ method: 'POST', url: '/admin/deadletters/replay', headers: { ...ADMIN, 'content-type': 'application/json' }, payload: JSON.stringify({ sink: 'tsdb', ids: [id] }) });
    assert.equal(replay.statusCode, 200, replay.body);
    assert.equal(replay.json().replayed, 1);
    const deadline = Date.now() + 5000;
    while (![...sink.stored.values()].some((e) => e.message === 'poison 1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const stored = [...sink.stored.values()].find((e) => e.message === 'poison 1');
    assert.equal(stored?.id, id, 'the replayed event keeps its id, so a second replay would be absorbed');

    const left = await app.http.inject({ method: 'GET', url: '/admin/deadletters', headers: ADMIN });
    assert.equal(left.json().total, 1);
    const purged = await app.http.inject({ method: 'DELETE', url: '/admin/deadletters?sink=tsdb', headers: ADMIN });
    assert.equal(purged.json().purged, 1);
    assert.equal((await app.http.inject({ method: 'GET', url: '/admin/deadletters', headers: ADMIN })).json().total, 0);
    const health = await app.http.inject({ method: 'GET', url: '/health' });
    assert.equal(health.json().sinks.tsdb.dead_letters, 0);
  });

  test('bad parameters get a 400 in the error shape', async () => {
    const { app } = await build({ ADMIN_TOKEN: 'admin-secret' });
    const res = await app.http.inject({ method: 'GET', url: '/admin/deadletters?limit=abc', headers: ADMIN });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error, 'invalid_parameter');
  });
});
