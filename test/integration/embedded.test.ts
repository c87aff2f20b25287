import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { PgConnection } from '../../src/config/config.js';
import { startEmbeddedPostgres, type EmbeddedPostgresOptions } from '../../src/sinks/tsdb/embedded.js';
import { batchOf } from '../../src/sinks/sink.js';
import { createTsdbSink } from '../../src/sinks/tsdb/sink.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { connect, tempDataParent } from '../helpers/database.js';

function options(dataDir: string): EmbeddedPostgresOptions {
  return { dataDir, port: 0, database: 'edgebot', user: 'edgebot', password: `pw-${randomBytes(12).toString('hex')}` };
}

async function postmasterPid(dataDir: string): Promise<number> {
  return Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  for (let waited = 0; waited < timeoutMs; waited += 50) {
    if (condition()) return true;
    await sleep(50);
  }
  return condition();
}

async function rowCount(connection: PgConnection, table: string): Promise<number> {
  const db = await connect(connection);
  try {
    return Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n);
  } finally {
    await db.end();
  }
}

async function refused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 2_000 });
    socket.once('connect', () => { socket.destroy(); resolve(false); });
    socket.once('timeout', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(true));
  });
}

describe('embedded PostgreSQL', () => {
  let parent: string;
  before(async () => {
    parent = await tempDataParent();
  });
  after(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  it('keeps its data across restarts, listens only on 127.0.0.1 at a port of its own, never logs the password', async () => {
    const dataDir = path.join(parent, 'persist');
    const opts = options(dataDir);
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, new Writable({ write(chunk: Buffer, _enc, done) { lines.push(chunk.toString()); done(); } }));

    const first = await startEmbeddedPostgres(opts, logger);
    try {
      const { connection } = first;
      assert.equal(connection.host, '127.0.0.1');
      assert.notEqual(connection.port, 5432);
      const db = await connect(connection);
      try {
        const settings = await db.query<{ listen: string; sockets: string }>(
          `SELECT current_setting('listen_addresses') AS listen, current_setting('unix_socket_directories') AS sockets`,
        );
        assert.equal(settings.rows[0]?.listen, '127.0.0.1');
        assert.ok(settings.rows[0]?.sockets.includes(dataDir));
      } finally {
        await db.end();
      }
      assert.ok((await stat(path.join(dataDir, `.s.PGSQL.${connection.port}`))).isSocket(), 'the Unix socket is in the data folder');
      const external = Object.values(os.networkInterfaces()).flat().filter((a) => a !== undefined && !a.internal && a.family === 'IPv4');
      for (const address of external) assert.ok(await refused(address!.address, connection.port), `reachable on ${address!.address}`);

      const sink = createTsdbSink(
        { enabled: true, mode: 'embedded', connection, schema: 'public', poolMax: 2, writeTimeoutMs: 10_000, chunkInterval: '1 day', compressAfter: null, retentionDays: 0, embedded: { dataDir, port: 0 } },
        connection, silentLogger(),
      );
      await sink.start(AbortSignal.timeout(60_000));
      const data = { metric_name: 'ifInOctets', value: 1 };
      const batch = Array.from({ length: 10 }, (_, i) => ({
        id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, timeMs: Date.UTC(2025, 0, 1) + i, timeNanos: 0, receivedAtMs: Date.now(),
        source: 'edge', type: null, service: null, host: null, severity: null, message: null, data, dataJson: JSON.stringify(data),
      }));
      assert.deepEqual(await sink.send(batchOf(batch), AbortSignal.timeout(10_000)), { kind: 'delivered', written: 10, duplicates: 0, duplicatePositions: [] });
      await sink.shutdown();
    } finally {
      await Promise.all([first.stop(), first.stop()]);
      await first.stop();
    }

    const second = await startEmbeddedPostgres(opts, logger);
    try {
      assert.equal(await rowCount(second.connection, 'public.events'), 10);
    } finally {
      await second.stop();
    }
    const log = lines.join('');
    assert.equal(log.match(/initialising a new embedded PostgreSQL/g)?.length, 1, 'initialised once, reused after');
    assert.match(log, /embedded PostgreSQL started/);
    assert.ok(!log.includes(opts.password), 'the password reached the log');
  });

  it('starts again after its postgres process was killed with SIGKILL', async () => {
    const dataDir = path.join(parent, 'sigkill');
    const opts = options(dataDir);
    const first = await startEmbeddedPostgres(opts, silentLogger());
    const db = await connect(first.connection);
    await db.query('CREATE TABLE survivors (n int); INSERT INTO survivors VALUES (1), (2)');
    await db.end();
    const pid = await postmasterPid(dataDir);
    process.kill(pid, 'SIGKILL');
    assert.ok(await waitFor(() => !isAlive(pid), 5_000));
    const t0 = performance.now();
    await first.stop(); // the server is gone already: must not wait for an exit that happened
    assert.ok(performance.now() - t0 < 2_000);

    const second = await startEmbeddedPostgres(opts, silentLogger());
    try {
      assert.equal(await rowCount(second.connection, 'survivors'), 2);
    } finally {
      await second.stop();
    }
  });

  it('takes its data folder back from a server left running by a mothership killed with -9', async () => {
    const dataDir = path.join(parent, 'orphan');
    const opts = options(dataDir);
    const script = `
      const { startEmbeddedPostgres } = await import(process.env.EMBEDDED_MODULE);
      const { silentLogger } = await import(process.env.LOGGER_MODULE);
      const server = await startEmbeddedPostgres(JSON.parse(process.env.EMBEDDED_OPTIONS), silentLogger());
      process.stdout.write('READY ' + JSON.stringify(server.connection) + '\\n');
      setInterval(() => {}, 60_000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: {
        ...process.env,
        EMBEDDED_MODULE: new URL('../../src/sinks/tsdb/embedded.js', import.meta.url).href,
        LOGGER_MODULE: new URL('../../src/telemetry/logger.js', import.meta.url).href,
        EMBEDDED_OPTIONS: JSON.stringify(opts),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const connection = await new Promise<PgConnection>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const match = /READY (.*)\n/.exec(out);
          if (match?.[1] !== undefined) resolve(JSON.parse(match[1]) as PgConnection);
        });
        child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
      });
      const db = await connect(connection);
      await db.query('CREATE TABLE survivors (n int); INSERT INTO survivors VALUES (1)');
      await db.end();
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const orphan = await postmasterPid(dataDir);
    assert.ok(isAlive(orphan), 'postgres outlives a mothership killed with -9');

    const server = await startEmbeddedPostgres(opts, silentLogger());
    try {
      assert.ok(!isAlive(orphan), 'the orphan was stopped');
      assert.equal(await rowCount(server.connection, 'survivors'), 1);
    } finally {
      await server.stop();
    }
  });
});
