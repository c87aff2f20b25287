import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { describeConfig } from '../../src/config/describe.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/telemetry/logger.js';

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}

test('no secret reaches a log line: config dump, headers, passwords, tokens', () => {
  const config = loadConfig({
    LOG_FORMAT: 'json',
    TSDB_URL: 'postgres://edgebot:pg-secret-1@db:5432/edgebot',
    AUTH_TOKENS: 'node-token-1,node-token-2',
    ADMIN_TOKEN: 'admin-token-1',
    LOKI_PASSWORD: 'loki-secret-1',
  });
  const out = capture();
  const logger = createLogger(config, out.stream);
  logger.info({ config: describeConfig(config) }, 'starting');
  logger.warn({ req: { headers: { authorization: 'Bearer node-token-1' } } }, 'request refused');
  logger.error({ connection: { password: 'pg-secret-1' }, token: 'admin-token-1' }, 'failure');
  const text = out.text();
  assert.ok(text.includes('"starting"') || text.includes('starting'));
  for (const secret of ['pg-secret-1', 'node-token-1', 'node-token-2', 'admin-token-1', 'loki-secret-1']) {
    assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
  }
});
