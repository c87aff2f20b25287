import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describeConfig } from '../../src/config/describe.js';
import { loadConfig } from '../../src/config/load.js';
import { MothershipError } from '../../src/lib/errors.js';

describe('loadConfig', () => {
  test('defaults match the seed', () => {
    const c = loadConfig({}, '/srv');
    assert.equal(c.server.host, '0.0.0.0');
    assert.equal(c.server.port, 8080);
    assert.equal(c.log.level, 'info');
    assert.equal(c.log.format, 'console');
    assert.equal(c.devMode, false);
    assert.equal(c.tsdb.enabled, true);
    assert.equal(c.tsdb.mode, 'embedded');
    assert.equal(c.tsdb.connection.database, 'edgebot');
    assert.equal(c.tsdb.connection.user, 'edgebot');
    assert.equal(c.dataDir, '/srv/data');
    assert.equal(c.tsdb.embedded.dataDir, '/srv/data/postgres');
    assert.equal(c.loki.enabled, false);
    assert.equal(c.loki.batchSize, 100);
    assert.equal(c.loki.batchTimeoutMs, 5000);
    assert.deepEqual(c.server.authTokens, []);
  });

  test('the result is deeply frozen', () => {
    const c = loadConfig({});
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.tsdb.connection));
    assert.throws(() => {
      (c.server as { port: number }).port = 1;
    }, TypeError);
  });

  test('TSDB_HOST selects an external server with the seed variables', () => {
    const c = loadConfig({ TSDB_HOST: 'db.example', TSDB_PORT: '6543', TSDB_DATABASE: 'x', TSDB_USERNAME: 'u', TSDB_PASSWORD: 'p' });
    assert.equal(c.tsdb.mode, 'external');
    assert.deepEqual(c.tsdb.connection, { host: 'db.example', port: 6543, database: 'x', user: 'u', password: 'p', ssl: 'disable' });
  });

  test('TSDB_URL wins and is decoded', () => {
    const c = loadConfig({ TSDB_HOST: 'ignored', TSDB_URL: 'postgresql://al%40ce:p%2Fw@10.0.0.5:5433/tele?sslmode=require' });
    assert.equal(c.tsdb.mode, 'external');
    assert.deepEqual(c.tsdb.connection, { host: '10.0.0.5', port: 5433, database: 'tele', user: 'al@ce', password: 'p/w', ssl: 'require' });
  });

  test('log levels are case-insensitive, with the seed spellings', () => {
    assert.equal(loadConfig({ LOG_LEVEL: 'INFO' }).log.level, 'info');
    assert.equal(loadConfig({ LOG_LEVEL: 'Warning' }).log.level, 'warn');
    assert.equal(loadConfig({ LOG_LEVEL: 'CRITICAL' }).log.level, 'fatal');
    assert.equal(loadConfig({ LOG_FORMAT: 'json' }).log.format, 'json');
  });

  test('AUTH_TOKENS is a comma-separated list', () => {
    assert.deepEqual(loadConfig({ AUTH_TOKENS: ' a, b ,,c ' }).server.authTokens, ['a', 'b', 'c']);
  });

  test('every bad value is reported at once, each naming its variable', () => {
    let error: unknown;
    try {
      loadConfig({ SERVER_PORT: 'eighty', TSDB_ENABLED: 'maybe', LOG_LEVEL: 'loud', LOKI_URL: 'not a url', TSDB_POOL_MAX: '0' });
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof MothershipError);
    assert.equal(error.code, 'config_invalid');
    for (const name of ['SERVER_PORT', 'TSDB_ENABLED', 'LOG_LEVEL', 'LOKI_URL', 'TSDB_POOL_MAX']) assert.match(error.message, new RegExp(name));
  });

  test('a bad secret value is never echoed', () => {
    assert.throws(() => loadConfig({ TSDB_URL: 'hunter2 is not a url' }), (err: Error) => !err.message.includes('hunter2'));
  });

  test('TSDB_SCHEMA must be a plain identifier', () => {
    assert.throws(() => loadConfig({ TSDB_SCHEMA: 'x; drop table' }), /TSDB_SCHEMA/);
  });

  test('describeConfig masks every secret', () => {
    const c = loadConfig({ TSDB_URL: 'postgres://u:topsecret@h/db', AUTH_TOKENS: 'tok-1,tok-2', LOKI_PASSWORD: 'lokisecret', LOKI_URL: 'https://u:urlsecret@loki.example' });
    const text = JSON.stringify(describeConfig(c));
    for (const secret of ['topsecret', 'tok-1', 'tok-2', 'lokisecret', 'urlsecret']) assert.ok(!text.includes(secret), secret);
    assert.match(text, /2 token\(s\)/);
  });
});
