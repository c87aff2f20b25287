import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { InflightBudget } from '../../src/http/inflight-budget.js';
import { MothershipError } from '../../src/lib/errors.js';
import { appFixture } from '../helpers/app.js';
import { waitUntil } from '../helpers/e2e.js';
import { MemorySink } from '../helpers/memory-sink.js';
import { envelope } from '../helpers/samples.js';

describe('in-flight request bytes (promise 5: memory stays bounded)', () => {
  test('the budget refuses past its limit, lets a lone oversized request through, and frees on release', () => {
    const budget = new InflightBudget(1000);
    budget.reserve(600);
    assert.throws(() => budget.reserve(600), (err: unknown) => err instanceof MothershipError && err.code === 'overloaded' && err.retryAfterSeconds === 1);
    budget.release(600);
    budget.reserve(5000);
    assert.equal(budget.bytes, 5000);
    budget.release(5000);
    assert.equal(budget.bytes, 0);
  });

  const build = appFixture('inflight-test-');

  test('concurrent large batches past MAX_INFLIGHT_BYTES get 503 overloaded with Retry-After; the budget is freed afterwards', async () => {
    const sink = new MemorySink();
    sink.delayMs = 300;
    const { app } = await build({ MAX_INFLIGHT_BYTES: String(1024 * 1024) }, sink);
    const big = (n: number): string => JSON.stringify(envelope([{ message: `${n} ${'x'.repeat(600 * 1024)}` }], 'edge-big'));
    const post = (body: string) => app.http.inject({ method: 'POST', url: '/ingest', headers: { 'content-type': 'application/json' }, payload: body });
    const answers = await Promise.all([0, 1, 2, 3].map((n) => post(big(n))));
    const statuses = answers.map((a) => a.statusCode).sort();
    assert.ok(statuses.includes(200), `some batch is accepted: ${statuses.join(',')}`);
    const refused = answers.filter((a) => a.statusCode === 503);
    assert.ok(refused.length >= 1, `some batch is refused: ${statuses.join(',')}`);
    for (const r of refused) {
      assert.equal(r.json().error, 'overloaded');
      assert.equal(r.headers['retry-after'], '1');
    }
    // Nothing leaked: once the others are answered, a new large batch fits again.
    const later = await post(big(9));
    assert.equal(later.statusCode, 200, later.body);
    assert.equal(sink.stored.size, answers.filter((a) => a.statusCode === 200).length + 1);
  });

  test('a batch gives back its inflated share once it is in the spool, while its answer still waits for the sink', async () => {
    const sink = new MemorySink();
    sink.delayMs = 800;
    const { app } = await build({ MAX_INFLIGHT_BYTES: String(1024 * 1024) }, sink);
    // ~1 KiB on the wire, 600 KiB inflated: two at once are over the budget, one is not.
    const post = (n: number) =>
      app.http.inject({
        method: 'POST',
        url: '/ingest',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        payload: gzipSync(JSON.stringify(envelope([{ message: `${n} ${'x'.repeat(600 * 1024)}` }], 'edge-big'))),
      });
    const first = post(1);
    // The sink has the first batch, so it is durable; its answer waits for the slow send.
    await waitUntil(() => sink.sends > 0, 10_000, 'the first batch to reach the sink');
    const second = await post(2);
    assert.equal(second.statusCode, 200, second.body);
    assert.equal((await first).statusCode, 200);
    assert.equal(sink.stored.size, 2);
  });
});
