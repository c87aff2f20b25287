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
    const tokens = loadConfig({ AUTH_TOKENS: ' a, b ,,c ' }).server.authTokens;
    assert.deepEqual(tokens.map((t) => t.node), [null, null, null]);
    // Held as SHA-256 digests only: the config never carries the token itself.
    assert.equal(tokens[0]?.sha256, 'ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb');
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

describe('loadConfig: SPOOL_URL and SPOOL_NATS_*', () => {
  test('unset: the spool is on local disk', () => {
    assert.equal(loadConfig({}, '/srv').spool.nats, null);
  });

  test('several servers, credentials taken out of the URLs, the subject from the stream name', () => {
    const c = loadConfig({ SPOOL_URL: 'nats://app:s%40cret@n1:4222, nats://n2:4222,n3', SPOOL_NATS_STREAM: 'Fleet_Spool', SPOOL_NATS_REPLICAS: '3', SPOOL_NATS_ACK_WAIT_SECONDS: '2.5', SPOOL_NATS_MAX_AGE_HOURS: '24' }, '/srv');
    assert.deepEqual(c.spool.nats?.servers, ['nats://n1:4222', 'nats://n2:4222', 'nats://n3']);
    assert.equal(c.spool.nats?.user, 'app');
    assert.equal(c.spool.nats?.password, 's@cret');
    assert.equal(c.spool.nats?.subject, 'fleet_spool.batches');
    assert.equal(c.spool.nats?.replicas, 3);
    assert.equal(c.spool.nats?.ackWaitMs, 2500);
    assert.equal(c.spool.nats?.maxAgeMs, 24 * 3_600_000);
    assert.equal(c.spool.nats?.duplicateWindowMs, 300_000);
    assert.equal(c.spool.nats?.tls, null);
  });

  test('TLS files turn TLS on; a certificate needs its key', () => {
    const c = loadConfig({ SPOOL_URL: 'nats://n1:4222', SPOOL_NATS_TLS_CA_FILE: 'ca.pem' }, '/srv');
    assert.deepEqual(c.spool.nats?.tls, { caFile: '/srv/ca.pem', certFile: null, keyFile: null });
    assert.throws(() => loadConfig({ SPOOL_URL: 'nats://n1:4222', SPOOL_NATS_TLS_CERT_FILE: 'c.pem' }), /SPOOL_NATS_TLS_CERT_FILE and SPOOL_NATS_TLS_KEY_FILE/);
  });

  test('bad values name their variable and never echo a password', () => {
    assert.throws(() => loadConfig({ SPOOL_URL: 'http://u:hunter2@n1' }), (err: Error) => /SPOOL_URL/.test(err.message) && !err.message.includes('hunter2'));
    assert.throws(() => loadConfig({ SPOOL_URL: 'nats://n1', SPOOL_NATS_STREAM: 'a.b' }), /SPOOL_NATS_STREAM/);
    assert.throws(() => loadConfig({ SPOOL_URL: 'nats://n1', SPOOL_NATS_REPLICAS: '7' }), /SPOOL_NATS_REPLICAS/);
  });

  test('describeConfig masks the NATS password and token', () => {
    const text = JSON.stringify(describeConfig(loadConfig({ SPOOL_URL: 'nats://app:natspass@n1:4222', SPOOL_NATS_TOKEN: 'natstoken' })));
    assert.ok(!text.includes('natspass') && !text.includes('natstoken'), text);
    assert.match(text, /nats:\/\/n1:4222/);
  });
});

describe('loadConfig: LOKI_*', () => {
  test('defaults', () => {
    const l = loadConfig({}).loki;
    assert.equal(l.url, 'http://localhost:3100');
    assert.equal(l.encoding, 'protobuf');
    assert.equal(l.timeoutMs, 10_000);
    assert.deepEqual(l.labels, ['source', 'service', 'type', 'severity', 'host']);
    assert.deepEqual(l.staticLabels, {});
    assert.equal(l.maxLabelValues, 100);
    assert.equal(l.lineFormat, 'json');
    assert.deepEqual(l.structuredMetadata, []);
    assert.equal(l.maxLineBytes, 256 * 1024);
    assert.equal(l.batchMaxBytes, 1024 * 1024);
    assert.equal(l.maxAgeMs, 168 * 3_600_000);
    assert.equal(l.tenantId, null);
  });

  test('the seed variables and the new ones are read', () => {
    const l = loadConfig({
      LOKI_ENABLED: 'true',
      LOKI_URL: 'https://loki.example:3100/',
      LOKI_TENANT_ID: 'edgebot',
      LOKI_USERNAME: 'user',
      LOKI_PASSWORD: 'pass',
      LOKI_BATCH_SIZE: '500',
      LOKI_BATCH_TIMEOUT_SECONDS: '0.5',
      LOKI_ENCODING: 'JSON',
      LOKI_TIMEOUT_MS: '2500',
      LOKI_LABELS: 'service, facility ,program',
      LOKI_STATIC_LABELS: 'job=edgebot, env = prod',
      LOKI_MAX_LABEL_VALUES: '20',
      LOKI_LINE_FORMAT: 'message',
      LOKI_STRUCTURED_METADATA: 'trace_id,pid',
      LOKI_MAX_LINE_BYTES: '4096',
      LOKI_BATCH_MAX_BYTES: '65536',
      LOKI_MAX_AGE_HOURS: '0',
    }).loki;
    assert.equal(l.enabled, true);
    assert.equal(l.url, 'https://loki.example:3100');
    assert.equal(l.tenantId, 'edgebot');
    assert.equal(l.username, 'user');
    assert.equal(l.password, 'pass');
    assert.equal(l.batchSize, 500);
    assert.equal(l.batchTimeoutMs, 500);
    assert.equal(l.encoding, 'json');
    assert.equal(l.timeoutMs, 2500);
    assert.deepEqual(l.labels, ['service', 'facility', 'program']);
    assert.deepEqual(l.staticLabels, { job: 'edgebot', env: 'prod' });
    assert.equal(l.maxLabelValues, 20);
    assert.equal(l.lineFormat, 'message');
    assert.deepEqual(l.structuredMetadata, ['trace_id', 'pid']);
    assert.equal(l.maxLineBytes, 4096);
    assert.equal(l.batchMaxBytes, 65536);
    assert.equal(l.maxAgeMs, 0);
  });

  test('bad LOKI_* values stop start-up, naming the variable', () => {
    assert.throws(() => loadConfig({ LOKI_ENCODING: 'xml' }), /LOKI_ENCODING/);
    assert.throws(() => loadConfig({ LOKI_URL: 'ftp://loki' }), /LOKI_URL/);
    assert.throws(() => loadConfig({ LOKI_STATIC_LABELS: 'job' }), /LOKI_STATIC_LABELS/);
    assert.throws(() => loadConfig({ LOKI_STATIC_LABELS: 'bad-name=x' }), /LOKI_STATIC_LABELS/);
    assert.throws(() => loadConfig({ LOKI_STATIC_LABELS: '__name__=x' }), /LOKI_STATIC_LABELS/);
    assert.throws(() => loadConfig({ LOKI_STATIC_LABELS: 'host=x' }), /LOKI_STATIC_LABELS.*twice/);
    assert.throws(() => loadConfig({ LOKI_STATIC_LABELS: 'job=' }), /LOKI_STATIC_LABELS/);
    assert.throws(() => loadConfig({ LOKI_LABELS: 'source-ip,source_ip' }), /LOKI_LABELS/);
    assert.throws(() => loadConfig({ LOKI_LABELS: Array.from({ length: 15 }, (_, i) => `f${i}`).join(',') }), /LOKI_LABELS.*16 labels/);
    assert.throws(() => loadConfig({ LOKI_MAX_LABEL_VALUES: '0' }), /LOKI_MAX_LABEL_VALUES/);
    assert.throws(() => loadConfig({ LOKI_TIMEOUT_MS: 'soon' }), /LOKI_TIMEOUT_MS/);
    assert.throws(() => loadConfig({ LOKI_LINE_FORMAT: 'logfmt' }), /LOKI_LINE_FORMAT/);
  });

  test('describeConfig shows the Loki settings without the password', () => {
    const c = loadConfig({ LOKI_PASSWORD: 'lokisecret', LOKI_URL: 'https://u:urlsecret@loki.example', LOKI_STATIC_LABELS: 'job=edgebot' });
    const loki = describeConfig(c)['loki'] as Record<string, unknown>;
    assert.equal(loki['password'], '***');
    assert.equal(loki['url'], 'https://u:***@loki.example');
    assert.deepEqual(loki['staticLabels'], { job: 'edgebot' });
    assert.equal(loki['maxAgeHours'], 168);
    assert.ok(!JSON.stringify(loki).includes('secret'));
  });
});
