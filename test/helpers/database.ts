/**
 * Real PostgreSQL servers for integration tests:
 * - `local`: the machine's server (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test),
 *   used when it answers within 2 s;
 * - `embedded`: our own embedded PostgreSQL (src/sinks/tsdb/embedded.ts) in a temp folder,
 *   started on first use, once per test file; `close()` it in `after`;
 * - `timescaledb`: a real TimescaleDB server (TEST_TIMESCALEDB_URL, set by .ci/run when the peers
 *   are beside the clone), used when set and answering; otherwise its tests are skipped, saying so.
 * So a machine with no PostgreSQL still runs every database test, on the embedded one.
 * Each test works in its own schema (`t_<random>`), dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { PgConnection } from '../../src/config/config.js';
import { freePort } from '../../src/lib/free-port.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/sinks/tsdb/embedded.js';
import { silentLogger } from '../../src/telemetry/logger.js';

export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface DatabaseTarget {
  readonly name: 'local' | 'embedded' | 'timescaledb';
  /** The server's connection (the embedded one starts on the first call). */
  connection(): Promise<PgConnection>;
  /** Stops what this target started. Idempotent. */
  close(): Promise<void>;
}

export function connectionFromUrl(url: string): PgConnection {
  const u = new URL(url);
  return {
    host: u.hostname === '' ? '127.0.0.1' : decodeURIComponent(u.hostname),
    port: u.port === '' ? 5432 : Number(u.port),
    database: u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : 'postgres',
    user: u.username === '' ? 'postgres' : decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    ssl: 'disable',
  };
}

/** null when the server answers `SELECT 1` within `timeoutMs`, else why not. */
export async function probe(connection: PgConnection, timeoutMs = 2_000): Promise<string | null> {
  const client = new pg.Client({ ...connection, ssl: false, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    return err instanceof Error ? err.message || err.name : String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The targets to run database suites against: `local` when reachable, and always `embedded`. */
export async function databaseTargets(): Promise<DatabaseTarget[]> {
  const url = process.env['TEST_DATABASE_URL'] ?? DEFAULT_TEST_DATABASE_URL;
  const local = connectionFromUrl(url);
  const problem = await probe(local);
  const targets: DatabaseTarget[] = [];
  if (problem === null) {
    targets.push({ name: 'local', connection: async () => local, close: async () => undefined });
  } else {
    console.log(`no PostgreSQL at ${local.host}:${local.port}/${local.database} (${problem}): database tests run on the embedded PostgreSQL only`);
  }
  targets.push(embeddedTarget());
  const timescale = await timescaleConnection();
  if (timescale.connection !== null) {
    const connection = timescale.connection;
    targets.push({ name: 'timescaledb', connection: async () => connection, close: async () => undefined });
  }
  return targets;
}

/**
 * The real TimescaleDB server of TEST_TIMESCALEDB_URL, or why there is none (printed once per
 * test file, so a run without the peers says what it did not test).
 */
export async function timescaleConnection(): Promise<{ connection: PgConnection | null; skip: string | null }> {
  const url = process.env['TEST_TIMESCALEDB_URL'];
  if (url === undefined || url === '') {
    const skip = 'TEST_TIMESCALEDB_URL is not set: the TimescaleDB tests are skipped (.ci/run sets it when the TimescaleDB peer is there)';
    console.log(skip);
    return { connection: null, skip };
  }
  const connection = connectionFromUrl(url);
  const problem = await probe(connection);
  if (problem !== null) {
    const skip = `no TimescaleDB at ${connection.host}:${connection.port}/${connection.database} (${problem}): the TimescaleDB tests are skipped`;
    console.log(skip);
    return { connection: null, skip };
  }
  return { connection, skip: null };
}

/** An embedded PostgreSQL in a fresh temp folder, started on first use. */
export function embeddedTarget(): DatabaseTarget {
  let started: Promise<{ server: EmbeddedPostgres; dir: string }> | null = null;
  return {
    name: 'embedded',
    async connection() {
      started ??= (async () => {
        const dir = await tempDataParent();
        const server = await startEmbeddedPostgres(
          { dataDir: path.join(dir, 'pg'), port: 0, database: 'test', user: 'mothership', password: randomBytes(9).toString('base64url') },
          silentLogger(),
        );
        return { server, dir };
      })();
      return (await started).server.connection;
    },
    async close() {
      if (started === null) return;
      const { server, dir } = await started;
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A temp folder to hold a data folder. As root the server runs as `postgres`, which must be
 * able to enter it (mkdtemp makes it 0700).
 */
export async function tempDataParent(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mothership-pg-'));
  await chmod(dir, 0o755);
  return dir;
}

export async function connect(connection: PgConnection): Promise<pg.Client> {
  const client = new pg.Client({ ...connection, ssl: false, application_name: 'mothership-test' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export function uniqueSchema(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

export async function dropSchema(connection: PgConnection, schema: string): Promise<void> {
  const client = await connect(connection);
  try {
    // On TimescaleDB the drop also deletes the schema's jobs, which the scheduler may be touching
    // at that moment ("tuple concurrently deleted", XX000; or a deadlock): a second try finds it done.
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
        return;
      } catch (err) {
        const raced = err instanceof pg.DatabaseError && (err.code === '40P01' || /concurrently/.test(err.message));
        if (!raced || attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  } finally {
    await client.end();
  }
}

/** A port nothing listens on (bound then released). */
export const closedPort = freePort;

export interface TcpProxy {
  readonly port: number;
  /** Stops listening and cuts every open connection, like a server that vanished. */
  cut(): Promise<void>;
  /** Holds every chunk this long in each direction from now on, like a server answering slowly (0: none). */
  setDelay(ms: number): void;
}

/** A TCP forwarder to `target`, to make a server disappear under a running client (and, on the same `listenPort`, come back). */
export async function tcpProxy(target: { host: string; port: number }, listenPort = 0): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let delayMs = 0;
  /** Forwards `from` to `to`, each chunk after the delay in force when it arrived, in order. */
  const forward = (from: net.Socket, to: net.Socket): void => {
    let chain = Promise.resolve();
    from.on('data', (chunk: Buffer) => {
      if (delayMs === 0) {
        chain = chain.then(() => void to.write(chunk));
        return;
      }
      const wait = delayMs;
      chain = chain.then(() => new Promise<void>((resolve) => setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
        resolve();
      }, wait)));
    });
    from.on('end', () => void chain.then(() => to.end()));
  };
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target.port, target.host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    forward(inbound, outbound);
    forward(outbound, inbound);
  });
  await new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('proxy has no port');
  return {
    port: address.port,
    async cut() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    setDelay(ms) {
      delayMs = ms;
    },
  };
}

/**
 * `CALL run_job(id)` on TimescaleDB, as its scheduler would run it. The scheduler may be running
 * the same job at that moment (a refresh then fails with "due to a concurrent refresh"): wait and
 * try again, a bounded number of times.
 */
export async function runTimescaleJob(client: pg.ClientBase, jobId: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.query('CALL run_job($1)', [jobId]);
      return;
    } catch (err) {
      const busy = err instanceof pg.DatabaseError && /concurrent/.test(err.message);
      if (!busy || attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
