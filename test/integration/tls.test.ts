import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { assembleApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { CLIENT_EXTENSIONS, makeCa, SERVER_EXTENSIONS, type CertificateAuthority, type KeyPair } from '../helpers/certs.js';
import { tempDir } from '../helpers/events.js';
import { MemorySink } from '../helpers/memory-sink.js';

let dir = '';
let removeDir: () => Promise<void> = async () => {};
let ca: CertificateAuthority;
let server: KeyPair;
const clients = new Map<string, KeyPair>();
const client = (name: string): KeyPair => {
  const pair = clients.get(name);
  assert.ok(pair !== undefined, name);
  return pair;
};
const running: App[] = [];

before(async () => {
  const t = await tempDir('tls-test-');
  dir = t.dir;
  removeDir = t.remove;
  ca = await makeCa(dir, 'fleet-ca');
  server = await ca.issue('server', '/CN=localhost', SERVER_EXTENSIONS);
  clients.set('edge-01', await ca.issue('edge-01', '/CN=edge-01', CLIENT_EXTENSIONS));
  clients.set('edge-02', await ca.issue('edge-02', '/CN=edge-02', CLIENT_EXTENSIONS));
  clients.set('spiffe', await ca.issue('spiffe', '/O=Fleet', `${CLIENT_EXTENSIONS}\nsubjectAltName=URI:spiffe://fleet/edge-03`));
  const rogue = await makeCa(dir, 'rogue-ca');
  clients.set('rogue', await rogue.issue('rogue-edge-01', '/CN=edge-01', CLIENT_EXTENSIONS));
});

after(async () => {
  for (const app of running) await app.close();
  await removeDir();
});

async function start(env: Record<string, string>, files: { cert?: string; key?: string } = {}): Promise<{ app: App; url: string; sink: MemorySink }> {
  const sub = await tempDir('tls-app-');
  const certFile = files.cert ?? server.certFile;
  const keyFile = files.key ?? server.keyFile;
  const config = loadConfig({ DATA_DIR: sub.dir, SPOOL_FSYNC: 'never', SHUTDOWN_TIMEOUT_MS: '500', SERVER_HOST: '127.0.0.1', SERVER_PORT: '0', TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, ...env });
  const sink = new MemorySink();
  const app = await assembleApp(config, { logger: silentLogger(), defaultMetrics: false }, [{ sink, window: 1, waitMs: 2000 }]);
  running.push(app);
  const url = await app.listen();
  return { app, url, sink };
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  peer: X509Certificate | null;
  reused: boolean;
}

function send(url: string, body: unknown, options: { client?: KeyPair; token?: string; agent?: https.Agent; method?: string; path?: string } = {}): Promise<Answer> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${url}${options.path ?? '/ingest'}`,
      {
        method: options.method ?? 'POST',
        ca: ca.cert,
        ...(options.client === undefined ? {} : { cert: options.client.cert, key: options.client.key }),
        agent: options.agent ?? false,
        headers: { 'content-type': 'application/json', ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }) },
      },
      (res) => {
        // Read now: once the answer ends, the socket goes back to the agent.
        const peer = (res.socket as TLSSocket).getPeerX509Certificate() ?? null;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>, peer, reused: req.reusedSocket });
        });
      },
    );
    req.on('error', reject);
    req.end(options.method === 'GET' ? undefined : payload);
  });
}

describe('HTTPS with mutual TLS', () => {
  test('the client certificate names the node: its CN (or SAN) is the stamped source', async () => {
    const { url, sink } = await start({ TLS_CLIENT_CA_FILE: ca.certFile });
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const one = await send(url, { messages: ['hello'], source: 'edge-02' }, { client: client('edge-01') });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    const spiffe = await send(url, { messages: ['hi'] }, { client: client('spiffe') });
    assert.equal(spiffe.status, 200);
    const events = [...sink.stored.values()];
    assert.deepEqual(events.map((e) => e.source).sort(), ['edge-01', 'spiffe://fleet/edge-03']);
    assert.equal(events.find((e) => e.source === 'edge-01')?.data['claimed_source'], 'edge-02');
    // /health needs a certificate too (the TLS layer asks every client for one).
    assert.equal((await send(url, null, { client: client('edge-02'), method: 'GET', path: '/health' })).status, 200);
  });

  test('no client certificate, or one signed by another CA, is refused during the handshake', async () => {
    const { url, sink } = await start({ TLS_CLIENT_CA_FILE: ca.certFile });
    // The server ends the handshake (TLS 1.3 alert "certificate required", or a reset after "unknown CA").
    const refusedHandshake = (err: NodeJS.ErrnoException): boolean => /^(ERR_SSL_|ECONNRESET$|EPIPE$)/.test(err.code ?? '');
    await assert.rejects(send(url, { messages: ['anon'] }), refusedHandshake);
    await assert.rejects(send(url, { messages: ['rogue'] }, { client: client('rogue') }), refusedHandshake);
    assert.equal(sink.stored.size, 0);
  });

  test('a token and a certificate must name the same node', async () => {
    const { url, sink } = await start({ TLS_CLIENT_CA_FILE: ca.certFile, AUTH_TOKENS: 'edge-01:tok-one-aaaa,edge-02:tok-two-bbbb' });
    assert.equal((await send(url, { messages: ['a'] }, { client: client('edge-01'), token: 'tok-one-aaaa' })).status, 200);
    const mismatch = await send(url, { messages: ['b'] }, { client: client('edge-01'), token: 'tok-two-bbbb' });
    assert.equal(mismatch.status, 401);
    assert.equal(mismatch.body['error'], 'unauthorized');
    assert.equal((await send(url, { messages: ['c'] }, { client: client('edge-01') })).status, 401);
    assert.deepEqual([...sink.stored.values()].map((e) => e.source), ['edge-01']);
  });
});

describe('HTTPS without client certificates', () => {
  test('bearer tokens over TLS; certificate reload on SIGHUP keeps open connections; a bad file keeps the old one', async () => {
    const certFile = path.join(dir, 'live.crt');
    const keyFile = path.join(dir, 'live.key');
    await copyFile(server.certFile, certFile);
    await copyFile(server.keyFile, keyFile);
    const { app, url } = await start({ AUTH_TOKENS: 'edge-01:tok-one-aaaa' }, { cert: certFile, key: keyFile });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: ca.cert });
    try {
      const first = await send(url, { messages: ['a'] }, { token: 'tok-one-aaaa', agent });
      assert.equal(first.status, 200);
      assert.equal((await send(url, { messages: ['x'] }, { token: 'nope' })).status, 401);
      const oldSerial = first.peer?.serialNumber;

      const renewed = await ca.issue('server-renewed', '/CN=localhost', SERVER_EXTENSIONS);
      await copyFile(renewed.certFile, certFile);
      await copyFile(renewed.keyFile, keyFile);
      assert.deepEqual(await app.reload(), { tokens: 'off', tls: 'reloaded' });
      const kept = await send(url, { messages: ['b'] }, { token: 'tok-one-aaaa', agent });
      assert.equal(kept.status, 200);
      assert.equal(kept.reused, true, 'the open connection was kept');
      const fresh = await send(url, { messages: ['c'] }, { token: 'tok-one-aaaa' });
      assert.equal(fresh.status, 200);
      assert.notEqual(fresh.peer?.serialNumber, oldSerial);
      assert.equal(fresh.peer?.serialNumber, new X509Certificate(renewed.cert).serialNumber);

      await writeFile(keyFile, 'not a key');
      assert.deepEqual(await app.reload(), { tokens: 'off', tls: 'failed' });
      const still = await send(url, { messages: ['d'] }, { token: 'tok-one-aaaa' });
      assert.equal(still.status, 200);
      assert.equal(still.peer?.serialNumber, fresh.peer?.serialNumber);
    } finally {
      agent.destroy();
    }
  });

  test('a key that does not match the certificate stops start-up, naming the variables', async () => {
    await assert.rejects(start({}, { key: client('edge-01').keyFile }), /TLS_CERT_FILE\/TLS_KEY_FILE: not a usable/);
    await assert.rejects(start({}, { cert: path.join(dir, 'missing.crt') }), /TLS_CERT_FILE: cannot read .*ENOENT/);
  });
});
