import pg from 'pg';
import type { PgConnection } from '../../config/config.js';
import type { Logger } from '../../telemetry/logger.js';

export const APPLICATION_NAME = 'edgebot-mothership';

export interface PoolOptions {
  readonly max: number;
  /** How long opening a connection (or waiting for a free one) may take. */
  readonly connectionTimeoutMs?: number;
  /** Idle connections are closed after this long. */
  readonly idleTimeoutMs?: number;
  /** Server-side limit of every statement on these connections (a transaction may lower it). */
  readonly statementTimeoutMs?: number;
}

/** `host:port/database`, never the user's password: for logs and /health. */
export function describePgTarget(connection: PgConnection): string {
  const host = connection.host.includes(':') ? `[${connection.host}]` : connection.host;
  return `${host}:${connection.port}/${connection.database}`;
}

/** node-postgres `ssl` option for our three modes. */
export function sslOption(connection: PgConnection): pg.PoolConfig['ssl'] {
  switch (connection.ssl) {
    case 'disable':
      return false;
    case 'require':
      // Encrypted, but the certificate is not checked (libpq's sslmode=require).
      return { rejectUnauthorized: false };
    case 'verify-full':
      // Certificate chain against the system CAs (plus NODE_EXTRA_CA_CERTS) and the host name
      // (node-postgres passes the host as SNI/servername when it is not an IP address).
      return { rejectUnauthorized: true };
  }
}

/**
 * The sink's connection pool. An error on an idle connection (server restart, network drop)
 * is logged and the connection discarded; it never reaches the process as an uncaught error.
 */
export function createPool(connection: PgConnection, options: PoolOptions, logger: Logger): pg.Pool {
  const pool = new pg.Pool({
    host: connection.host,
    port: connection.port,
    database: connection.database,
    user: connection.user,
    password: connection.password,
    ssl: sslOption(connection),
    max: options.max,
    application_name: APPLICATION_NAME,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5_000,
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...(options.statementTimeoutMs === undefined ? {} : { statement_timeout: options.statementTimeoutMs }),
    // A session of ours stuck inside a transaction (process frozen, network gone) must not hold
    // locks for long: the server ends it.
    idle_in_transaction_session_timeout: 60_000,
  });
  pool.on('error', (err: Error) => {
    logger.warn(
      { target: describePgTarget(connection), err: { message: err.message, code: errorCode(err) } },
      'tsdb: an idle PostgreSQL connection failed; it was discarded',
    );
  });
  return pool;
}

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/** Why `withClient` gave up before `fn` finished. */
export class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
  constructor(readonly reason: 'timeout' | 'aborted') {
    super(reason === 'timeout' ? 'deadline exceeded' : 'aborted');
  }
}

export interface ClientDeadline {
  /** Absolute deadline, in the clock of `now`. */
  readonly deadline: number;
  readonly signal?: AbortSignal | undefined;
  readonly now?: () => number;
}

/**
 * Runs `fn` with a pooled client, bounded by a deadline and an AbortSignal.
 * - Past the deadline (or on abort), the caller gets a `DeadlineError` at once and the client is
 *   destroyed, never returned to the pool: it may be mid-transaction or mid-COPY.
 * - When `fn` fails with a server error (the connection itself is fine), any open transaction is
 *   rolled back and the client is reused; if that fails too, the client is destroyed.
 * - A socket error while the client is checked out is absorbed here (the query rejects with it);
 *   without a listener node-postgres would emit it as an uncaught 'error'.
 * `fn` receives `remainingMs()` so it can set `statement_timeout` for the server side.
 */
export async function withClient<T>(
  pool: pg.Pool,
  limits: ClientDeadline,
  fn: (client: pg.PoolClient, remainingMs: () => number) => Promise<T>,
): Promise<T> {
  const now = limits.now ?? Date.now;
  const remainingMs = (): number => Math.max(0, limits.deadline - now());
  const { signal } = limits;
  if (signal?.aborted === true) throw new DeadlineError('aborted');
  if (remainingMs() <= 0) throw new DeadlineError('timeout');

  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError('timeout')), remainingMs());
    onAbort = () => reject(new DeadlineError('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  stop.catch(() => undefined);
  const cleanupTimers = (): void => {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  };

  const acquiring = pool.connect();
  let client: pg.PoolClient;
  try {
    client = await Promise.race([acquiring, stop]);
  } catch (err) {
    cleanupTimers();
    // A connection that arrives after we gave up goes straight back.
    acquiring.then((late) => late.release(), () => undefined);
    throw err;
  }

  const absorb = (): void => undefined;
  client.on('error', absorb);
  let destroy = false;
  try {
    const running = fn(client, remainingMs);
    running.catch(() => undefined);
    return await Promise.race([running, stop]);
  } catch (err) {
    destroy = true;
    if (!(err instanceof DeadlineError) && isServerError(err) && remainingMs() > 0) {
      destroy = !(await rollback(client, Math.min(remainingMs(), 2_000)));
    }
    throw err;
  } finally {
    cleanupTimers();
    client.removeListener('error', absorb);
    if (destroy) {
      client.on('error', absorb); // the socket may still report its end; nobody else listens now
      client.release(new Error('tsdb: connection discarded after a failed or abandoned operation'));
    } else {
      client.release();
    }
  }
}

/** An ErrorResponse from the server (it carries a SQLSTATE), not a broken socket. */
export function isServerError(err: unknown): boolean {
  return err instanceof pg.DatabaseError && typeof err.code === 'string' && !err.code.startsWith('08');
}

async function rollback(client: pg.PoolClient, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    return await Promise.race([client.query('ROLLBACK').then(() => true, () => false), expired]);
  } finally {
    clearTimeout(timer);
  }
}
