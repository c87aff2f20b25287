// Docker HEALTHCHECK for the mothership image: exit 0 when GET /health answers 200, else 1.
// Plain node (slim images have no curl). Reads the same variables as the server:
// SERVER_HOST, SERVER_PORT, TLS_CERT_FILE/TLS_KEY_FILE (then HTTPS; the certificate is not
// checked: this is our own server on loopback). With TLS_CLIENT_CA_FILE (mutual TLS) the probe
// has no client certificate to show, so it only checks that the port completes a TCP connect.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

const TIMEOUT_MS = 4_000;
const env = process.env;
const set = (name) => (env[name] ?? '').trim() !== '';

const bound = (env.SERVER_HOST ?? '').trim();
const host = bound === '' || bound === '0.0.0.0' || bound === '::' || bound === '[::]' ? '127.0.0.1' : bound.replace(/^\[(.*)\]$/, '$1');
const port = Number((env.SERVER_PORT ?? '').trim() || 8080);
const tls = set('TLS_CERT_FILE') && set('TLS_KEY_FILE');

function finish(ok, why) {
  if (!ok) process.stderr.write(`healthcheck: ${why}\n`);
  process.exit(ok ? 0 : 1);
}

setTimeout(() => finish(false, `no answer from ${host}:${port} within ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();

if (tls && set('TLS_CLIENT_CA_FILE')) {
  const socket = net.connect({ host, port }, () => {
    socket.destroy();
    finish(true, '');
  });
  socket.on('error', (err) => finish(false, `${host}:${port}: ${err.message}`));
} else {
  const client = tls ? https : http;
  const request = client.get(
    { host, port, path: '/health', timeout: TIMEOUT_MS, ...(tls ? { rejectUnauthorized: false } : {}) },
    (res) => {
      res.resume();
      finish(res.statusCode === 200, `GET /health answered ${res.statusCode}`);
    },
  );
  request.on('timeout', () => request.destroy(new Error('timed out')));
  request.on('error', (err) => finish(false, `${tls ? 'https' : 'http'}://${host}:${port}/health: ${err.message}`));
}
