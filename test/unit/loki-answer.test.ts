import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classifyAnswer, MAX_RETRY_AFTER_MS, parseRetryAfter } from '../../src/sinks/loki/answer.js';
import { resolveTarget } from '../../src/sinks/loki/http.js';

const NOW = Date.UTC(2025, 7, 22, 17, 0, 0);

describe('Retry-After', () => {
  test('seconds, fractions, HTTP dates, junk', () => {
    assert.equal(parseRetryAfter('120', NOW), 120_000);
    assert.equal(parseRetryAfter(' 0 ', NOW), 0);
    assert.equal(parseRetryAfter('0.25', NOW), 250);
    assert.equal(parseRetryAfter('Fri, 22 Aug 2025 17:00:30 GMT', NOW), 30_000);
    assert.equal(parseRetryAfter('Friday, 22-Aug-25 17:00:05 GMT', NOW), 5_000);
    assert.equal(parseRetryAfter('Fri, 22 Aug 2025 16:00:00 GMT', NOW), 0, 'a date in the past means now');
    assert.equal(parseRetryAfter('99999', NOW), MAX_RETRY_AFTER_MS);
    assert.equal(parseRetryAfter('-5', NOW), undefined);
    assert.equal(parseRetryAfter('soon', NOW), undefined);
    assert.equal(parseRetryAfter('2025-08-22 17:00:30', NOW), undefined);
    assert.equal(parseRetryAfter(null, NOW), undefined);
    assert.equal(parseRetryAfter('', NOW), undefined);
  });
});

describe('Loki answers', () => {
  const answer = (status: number, body = '', retryAfter: string | null = null) => classifyAnswer({ kind: 'answer', status, body, retryAfter }, NOW, 'http://loki');

  test('2xx stored; 400 partial; 413 too large', () => {
    assert.equal(answer(204).kind, 'stored');
    assert.equal(answer(200).kind, 'stored');
    assert.deepEqual(answer(400, 'x'), { kind: 'partial', body: 'x' });
    assert.equal(answer(413).kind, 'too_large');
  });

  test('429, 5xx but 501, 408 and network failures are retried, with Retry-After', () => {
    const limited = answer(429, 'Ingestion rate limit exceeded', '3');
    assert.equal(limited.kind, 'retry');
    assert.ok(limited.kind === 'retry');
    assert.equal(limited.retryAfterMs, 3000);
    assert.equal(limited.error.code, 'sink_rate_limited');
    for (const status of [500, 502, 503, 504, 408]) assert.equal(answer(status).kind, 'retry', String(status));
    const noHeader = answer(503);
    assert.ok(noHeader.kind === 'retry' && noHeader.retryAfterMs === undefined);
    const timeout = classifyAnswer({ kind: 'failed', timedOut: true, aborted: false, reason: 'TimeoutError' }, NOW, 'http://loki');
    assert.ok(timeout.kind === 'retry' && timeout.error.code === 'sink_timeout');
    const refused = classifyAnswer({ kind: 'failed', timedOut: false, aborted: false, reason: 'ECONNREFUSED' }, NOW, 'http://loki');
    assert.ok(refused.kind === 'retry' && refused.error.code === 'sink_unavailable' && refused.error.message.includes('ECONNREFUSED'));
  });

  test('501 and other 4xx are refused for good', () => {
    for (const status of [401, 403, 404, 422, 501]) {
      const v = answer(status, 'nope');
      assert.ok(v.kind === 'refused', String(status));
      assert.equal(v.error.code, 'loki_rejected');
    }
  });
});

describe('Loki target', () => {
  test('push and ready URLs, tenant, basic auth; credentials never stay in the URL', () => {
    const t = resolveTarget({ url: 'https://gw.example/loki-gw', tenantId: 'edgebot', username: 'user', password: 'pass' });
    assert.equal(t.pushUrl, 'https://gw.example/loki-gw/loki/api/v1/push');
    assert.equal(t.readyUrl, 'https://gw.example/loki-gw/ready');
    assert.equal(t.headers['X-Scope-OrgID'], 'edgebot');
    assert.equal(t.headers['Authorization'], `Basic ${Buffer.from('user:pass').toString('base64')}`);
    const fromUrl = resolveTarget({ url: 'http://u%40x:s3cret@loki:3100/loki/api/v1/push', tenantId: null, username: null, password: null });
    assert.equal(fromUrl.pushUrl, 'http://loki:3100/loki/api/v1/push');
    assert.equal(fromUrl.headers['Authorization'], `Basic ${Buffer.from('u@x:s3cret').toString('base64')}`);
    assert.equal(fromUrl.headers['X-Scope-OrgID'], undefined);
    assert.ok(!fromUrl.shown.includes('s3cret'));
    const none = resolveTarget({ url: 'http://loki:3100', tenantId: null, username: null, password: null });
    assert.equal(none.headers['Authorization'], undefined);
  });
});
