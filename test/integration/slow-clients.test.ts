import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { assembleApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { tempDir } from '../helpers/events.js';
import { MemorySink } from '../helpers/memory-sink.js';

const running: Array<{ app: App; remove: () => Promise<void> }> = [];
after(async () => {
  for (const r of running) {
    await r.app.close();
    await r.remove();
  }
});

async function start(env: Record<string, string>, waitMs = 2000): Promise<{ port: number; url: string; sink: MemorySink }> {
  const dir = await tempDir('slow-test-');
  const config = loadConfig({ DATA_DIR: dir.dir, SPOOL_FSYNC: 'never', SHUTDOWN_TIMEOUT_MS: '500', SERVER_HOST: '127.0.0.1', SERVER_PORT: '0', ...env });
  const sink = new MemorySink();
  const app = await assembleApp(config, { logger: silentLogger(), defaultMetrics: false }, [{ sink, window: 1, waitMs }]);
  running.push({ app, remove: dir.remove });
  const url = await app.listen();
  return { port: Number(new URL(url).port), url, sink };
}

interface Dripped {
  /** Bytes the client got to send before the server closed the connection. */
  sent: number;
  /** What the server wrote back. */
  answer: string;
}

/**
 * Opens a raw connection, writes `head` at once, then `drip` one byte every `everyMs` until
 * the server closes the connection (or everything is sent, which the tests treat as a failure).
 */
function drip(port: number, head: string, dripText: string, everyMs: number): Promise<Dripped> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let sent = 0;
    let answer = '';
    let timer: NodeJS.Timeout | undefined;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ sent, answer });
    });
    socket.on('connect', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (sent >= dripText.length) {
          clearInterval(timer);
          socket.destroy();
          reject(new Error('the server let a slow client send everything'));
          return;
        }
        if (!socket.destroyed) socket.write(dripText[sent++] as string);
      }, everyMs);
    });
  });
}

/** Sends `request` at once on a raw connection and collects the answer until the server closes. */
function exchange(port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(answer));
  });
}

async function postBatch(url: string, text: string): Promise<number> {
  const res = await fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [text] }) });
  await res.arrayBuffer();
  return res.status;
}

function errorBody(answer: string): { status: number; error: unknown } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  return { status, error: (JSON.parse(body) as { error?: unknown }).error };
}

describe('slow and oversized requests', () => {
  test('slow-loris (headers one byte per second), a silent connection and a dripping body are cut off with 408, while normal clients are served', async () => {
    const { port, url, sink } = await start({ SERVER_HEADERS_TIMEOUT_MS: '1500', SERVER_REQUEST_TIMEOUT_MS: '3000' });
    const headers = 'Host: mothership\r\nContent-Type: application/json\r\nX-Padding: ' + 'a'.repeat(60) + '\r\n\r\n';
    const slowHeaders = drip(port, 'POST /ingest HTTP/1.1\r\n', headers, 1000);
    const body = JSON.stringify({ messages: ['never arrives'] });
    // A connection that sends nothing at all is cut the same way.
    const silent = drip(port, '', 'GET / HTTP/1.1\r\n\r\n', 60_000);
    const slowBody = drip(port, `POST /ingest HTTP/1.1\r\nHost: mothership\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, body, 1000);
    // While both crawl, ordinary nodes get their answers.
    for (let i = 0; i < 5; i++) {
      assert.equal(await postBatch(url, `fast ${i}`), 200);
      await new Promise((r) => setTimeout(r, 100));
    }
    const [h, b, quiet] = await Promise.all([slowHeaders, slowBody, silent]);
    assert.deepEqual([quiet.sent, errorBody(quiet.answer)], [0, { status: 408, error: 'request_timeout' }]);
    assert.ok(h.sent < headers.length, `sent ${h.sent} of ${headers.length}`);
    assert.deepEqual(errorBody(h.answer), { status: 408, error: 'request_timeout' });
    assert.ok(b.sent < body.length, `sent ${b.sent} of ${body.length}`);
    assert.match(b.answer, /^HTTP\/1\.1 408 /);
    assert.equal(await postBatch(url, 'after'), 200);
    assert.deepEqual([...sink.stored.values()].map((e) => e.message).filter((m) => m?.startsWith('never')), []);
    assert.equal(sink.stored.size, 6);
  });

  test('a header block over MAX_HEADER_BYTES gets 431 and the connection is closed; normal requests pass', async () => {
    const { port, url } = await start({ MAX_HEADER_BYTES: '4096' });
    const answer = await exchange(port, `GET /health HTTP/1.1\r\nHost: m\r\nX-Big: ${'b'.repeat(8192)}\r\n\r\n`);
    assert.deepEqual(errorBody(answer), { status: 431, error: 'headers_too_large' });
    assert.match(answer, /MAX_HEADER_BYTES/);
    const garbage = await exchange(port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.deepEqual(errorBody(garbage), { status: 400, error: 'bad_request' });
    assert.equal(await postBatch(url, `fine ${'c'.repeat(2000)}`), 200);
  });

  test('an answer that takes longer than SERVER_CONNECTION_TIMEOUT_MS still arrives (the server waiting on a sink is not idleness)', async () => {
    const { url, sink } = await start({ SERVER_CONNECTION_TIMEOUT_MS: '1000' }, 1800);
    sink.down = true;
    assert.equal(await postBatch(url, 'slow sink'), 200);
  });

  test('connections past SERVER_MAX_CONNECTIONS are closed as they arrive', async () => {
    const { port, url } = await start({ SERVER_MAX_CONNECTIONS: '2' });
    const open = await Promise.all([0, 1].map(() => new Promise<net.Socket>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', () => undefined);
    })));
    await new Promise((r) => setTimeout(r, 100));
    const extra = await exchange(port, 'GET /health HTTP/1.1\r\nHost: m\r\n\r\n');
    assert.equal(extra, '', 'the extra connection got an answer');
    for (const s of open) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await postBatch(url, 'room again'), 200);
  });
});
