import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describeConfig } from '../../src/config/describe.js';
import { loadConfig } from '../../src/config/load.js';
import { parseTokenFile, parseTokenList, tokenDigest } from '../../src/config/tokens.js';
import { TokenAuth } from '../../src/http/auth.js';
import { certificateNames } from '../../src/http/identity.js';
import { RateLimiter } from '../../src/http/rate-limit.js';
import { MothershipError } from '../../src/lib/errors.js';
import { scrubber } from '../../src/telemetry/logger.js';

function refusal(fn: () => unknown): MothershipError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MothershipError);
    return err;
  }
  assert.fail('expected a MothershipError');
}

describe('token lists', () => {
  test('AUTH_TOKENS binds node ids; bare lists stay bare; hashes are accepted', () => {
    const bound = parseTokenList('edge-01:token1, edge-02:token2,edge-01:token1b');
    assert.deepEqual(bound.map((t) => t.node), ['edge-01', 'edge-02', 'edge-01']);
    assert.equal(bound[0]?.sha256, tokenDigest('token1'));
    assert.deepEqual(parseTokenList('tok1,tok2').map((t) => t.node), [null, null]);
    const hashed = parseTokenList(`edge-03:sha256:${tokenDigest('t3').toUpperCase()},edge-04:plain`);
    assert.equal(hashed[0]?.sha256, tokenDigest('t3'));
    // A bare hashed token (the way to keep a bare token that contains ":").
    assert.deepEqual(parseTokenList(`sha256:${tokenDigest('a:b')}`), [{ node: null, sha256: tokenDigest('a:b') }]);
  });

  test('bad lists stop start-up without echoing a token', () => {
    for (const [value, pattern] of [
      ['edge-01:t1,bare-token', /mixed/],
      ['edge-01:same,edge-02:same', /two nodes/],
      ['bad node:t1', /entry 1: the node id/],
      ['edge-01:', /empty/],
      ['edge-01:sha256:abc', /64 hex/],
    ] as const) {
      const err = refusal(() => parseTokenList(value));
      assert.equal(err.code, 'config_invalid');
      assert.match(err.message, /^AUTH_TOKENS/);
      assert.match(err.message, pattern);
      for (const secret of ['t1', 'same', 'bare-token']) assert.ok(!err.message.includes(`"${secret}"`) && !err.message.includes(`:${secret}`), err.message);
    }
  });

  test('AUTH_TOKENS_FILE: one "node_id token" per line, comments and blank lines allowed', () => {
    const text = `# fleet tokens\n\nedge-01 token1\n  edge-02\tsha256:${tokenDigest('token2')}   # rotated 2026-01\r\nedge-01 token1-next\n`;
    const entries = parseTokenFile(text);
    assert.deepEqual(entries.map((e) => e.node), ['edge-01', 'edge-02', 'edge-01']);
    assert.equal(entries[1]?.sha256, tokenDigest('token2'));
    assert.match(refusal(() => parseTokenFile('edge-01\n')).message, /line 1: expected "node_id token"/);
    assert.match(refusal(() => parseTokenFile('ok t\nedge-01 tok extra\n')).message, /line 2/);
    assert.match(refusal(() => parseTokenFile('edge-01 tok\nedge-02 tok\n')).message, /two nodes/);
    assert.match(refusal(() => parseTokenFile('édge tok\n')).message, /line 1: the node id/);
  });
});

describe('TokenAuth', () => {
  const auth = new TokenAuth(parseTokenList('edge-01:token1,edge-02:token2'));

  test('returns the node bound to the token; refuses missing and unknown tokens', () => {
    assert.equal(auth.check('Bearer token1'), 'edge-01');
    assert.equal(auth.check('bearer   token2 '), 'edge-02');
    assert.equal(refusal(() => auth.check(undefined)).code, 'unauthorized');
    assert.equal(refusal(() => auth.check('Bearer token3')).code, 'unauthorized');
    assert.equal(refusal(() => auth.check('Basic dG9rZW4x')).code, 'unauthorized');
    assert.equal(refusal(() => auth.check('Bearer edge-01:token1')).code, 'unauthorized');
  });

  test('bare tokens authenticate without a node; no tokens means auth off', () => {
    assert.equal(new TokenAuth(parseTokenList('tok1,tok2')).check('Bearer tok2'), null);
    assert.equal(new TokenAuth([]).check(undefined), null);
  });

  test('replace revokes at once; a required table with no token refuses everyone', () => {
    const live = new TokenAuth(parseTokenList('edge-01:a1,edge-02:b1'));
    live.replace(parseTokenList('edge-01:a1'));
    assert.equal(refusal(() => live.check('Bearer b1')).code, 'unauthorized');
    const empty = new TokenAuth([], { required: true });
    assert.equal(empty.enabled, true);
    assert.equal(refusal(() => empty.check('Bearer anything')).code, 'unauthorized');
  });
});

describe('client certificate names', () => {
  test('CN first, then DNS and URI SANs; IP SANs are not names', () => {
    assert.deepEqual(certificateNames({ subject: { CN: 'edge-01' }, subjectaltname: 'DNS:edge-01.fleet.example, IP Address:10.0.0.1, URI:spiffe://fleet/edge-01' }), {
      primary: 'edge-01',
      names: ['edge-01', 'edge-01.fleet.example', 'spiffe://fleet/edge-01'],
    });
    assert.equal(certificateNames({ subject: {}, subjectaltname: 'URI:spiffe://fleet/edge-03' })?.primary, 'spiffe://fleet/edge-03');
    assert.equal(certificateNames({ subject: { CN: ['a', 'b'] } })?.primary, 'a');
    assert.equal(certificateNames({ subjectaltname: 'DNS:"odd, name"' })?.primary, 'odd, name');
    assert.equal(certificateNames({ subject: null, subjectaltname: 'IP Address:10.0.0.1' }), null);
  });
});

describe('RateLimiter', () => {
  test('a token bucket per key, refilled by the injected clock, with Retry-After', () => {
    let now = 0;
    const limiter = new RateLimiter({ messagesPerSecond: 10, burst: 20 }, { now: () => now });
    limiter.take('node:a', 15);
    limiter.take('node:b', 20);
    const refused = refusal(() => limiter.take('node:a', 10));
    assert.equal(refused.code, 'rate_limited');
    assert.equal(refused.status, 429);
    assert.equal(refused.retryAfterSeconds, 1);
    limiter.take('node:a', 5);
    assert.equal(refusal(() => limiter.precheck('node:a')).retryAfterSeconds, 1);
    now += 1000;
    limiter.precheck('node:a');
    limiter.take('node:a', 10);
    // A batch larger than the bucket passes when the bucket is full, and leaves it in debt.
    now += 10_000;
    limiter.take('node:a', 50);
    const debt = refusal(() => limiter.take('node:a', 1));
    assert.equal(debt.retryAfterSeconds, 4);
    now += 3_000;
    assert.equal(refusal(() => limiter.precheck('node:a')).code, 'rate_limited');
    now += 1_000;
    limiter.take('node:a', 1);
  });

  test('the number of tracked keys stays bounded', () => {
    let now = 0;
    const limiter = new RateLimiter({ messagesPerSecond: 1, burst: 1 }, { now: () => now }, 100);
    for (let i = 0; i < 1000; i++) limiter.take(`ip:${i}`, 1);
    assert.ok(limiter.size <= 100, String(limiter.size));
    now += 10_000;
    limiter.take('ip:new', 1);
    assert.ok(limiter.size <= 100);
  });
});

describe('configuration of the security settings', () => {
  test('defaults', () => {
    const s = loadConfig({}).server;
    assert.equal(s.authTokensFile, null);
    assert.equal(s.tls, null);
    assert.equal(s.headersTimeoutMs, 20_000);
    assert.equal(s.requestTimeoutMs, 120_000);
    assert.equal(s.connectionTimeoutMs, 60_000);
    assert.equal(s.maxConnections, 4096);
    assert.equal(s.maxHeaderBytes, 16_384);
    assert.equal(s.maxKeysPerMessage, 10_000);
    assert.equal(s.maxStringBytes, 8 * 1024 * 1024);
    assert.equal(s.rateLimit, null);
  });

  test('TLS files go together; timeouts are consistent; the burst defaults to ten seconds', () => {
    assert.match(refusal(() => loadConfig({ TLS_CERT_FILE: 'a.crt' })).message, /TLS_KEY_FILE/);
    assert.match(refusal(() => loadConfig({ TLS_CLIENT_CA_FILE: 'ca.crt' })).message, /TLS_CLIENT_CA_FILE/);
    assert.deepEqual(loadConfig({ TLS_CERT_FILE: 'a.crt', TLS_KEY_FILE: 'a.key', TLS_CLIENT_CA_FILE: 'ca.crt' }, '/etc/m').server.tls, {
      certFile: '/etc/m/a.crt',
      keyFile: '/etc/m/a.key',
      clientCaFile: '/etc/m/ca.crt',
    });
    assert.match(refusal(() => loadConfig({ SERVER_HEADERS_TIMEOUT_MS: '5000', SERVER_REQUEST_TIMEOUT_MS: '4000' })).message, /SERVER_HEADERS_TIMEOUT_MS/);
    assert.deepEqual(loadConfig({ RATE_LIMIT_MESSAGES_PER_SECOND: '50' }).server.rateLimit, { messagesPerSecond: 50, burst: 500 });
    assert.deepEqual(loadConfig({ RATE_LIMIT_MESSAGES_PER_SECOND: '0.5', RATE_LIMIT_BURST: '100' }).server.rateLimit, { messagesPerSecond: 0.5, burst: 100 });
    assert.match(refusal(() => loadConfig({ MAX_KEYS_PER_MESSAGE: '0' })).message, /MAX_KEYS_PER_MESSAGE/);
  });

  test('describeConfig shows how auth is set up, never a token', () => {
    const c = loadConfig({ AUTH_TOKENS: 'edge-01:tok-secret-1,edge-02:tok-secret-2', ADMIN_TOKEN: 'adm-secret', AUTH_TOKENS_FILE: '/etc/m/tokens', RATE_LIMIT_MESSAGES_PER_SECOND: '100' });
    const text = JSON.stringify(describeConfig(c));
    assert.ok(!text.includes('secret'), text);
    assert.ok(!text.includes(tokenDigest('tok-secret-1')), 'not even the digest');
    assert.match(text, /2 token\(s\) for 2 node\(s\) \+ AUTH_TOKENS_FILE/);
    assert.match(text, /"rateLimit":\{"messagesPerSecond":100,"burst":1000\}/);
  });
});

describe('log scrubbing', () => {
  test('bearer and basic credentials, URL passwords and known secrets leave every line', () => {
    const scrub = scrubber(['s3cr3t-admin', 'pa"ss\\word']);
    const line = JSON.stringify({
      msg: 'connect failed: postgres://edgebot:hunter22@db:5432/x and https://u:p%40ss@loki.example/ ok',
      err: 'header was Bearer abc.def-ghi and Basic dXNlcjpwdw==',
      admin: 's3cr3t-admin',
      other: 'pa"ss\\word',
      address: 'https://127.0.0.1:8443',
    });
    const out = scrub(line);
    for (const secret of ['hunter22', 'p%40ss', 'abc.def-ghi', 'dXNlcjpwdw==', 's3cr3t-admin', 'ss\\\\word']) assert.ok(!out.includes(secret), `${secret} in ${out}`);
    assert.ok(out.includes('postgres://edgebot:***@db:5432/x'));
    assert.ok(out.includes('https://127.0.0.1:8443'));
    assert.doesNotThrow(() => JSON.parse(out));
  });
});
