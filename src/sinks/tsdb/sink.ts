import pg from 'pg';
import type { PgConnection, TsdbConfig } from '../../config/config.js';
import { MothershipError } from '../../lib/errors.js';
import type { Logger } from '../../telemetry/logger.js';
import type { SendBatch, SendOutcome, Sink, SinkHealth } from '../sink.js';
import { migrate, quoteIdent, type MigrationResult } from './migrations.js';
import { createPool, DeadlineError, describePgTarget, withClient } from './pool.js';
import { TsdbWriter, type WritePathCounts } from './writer.js';

export interface TimerHandle {
  cancel(): void;
}

export interface TsdbSinkDeps {
  /**
   * Runs `task` every `intervalMs` (the plain-PostgreSQL retention job). The default waits one
   * minute for the first run, then `intervalMs` between runs; its timers never keep the process up.
   */
  readonly setTimer?: (task: () => Promise<void>, intervalMs: number) => TimerHandle;
  readonly now?: () => number;
}

/** For /health and logs; never holds the password. */
export type TsdbDescription = {
  readonly target: string;
  readonly schema: string;
  readonly deployment: TsdbConfig['mode'];
  /** Known once the sink has started. */
  readonly mode?: MigrationResult['mode'];
  readonly timescaledb?: string;
  /** How to make TimescaleDB usable, when the server offers it but the sink could not use it. */
  readonly timescaledb_fix?: string;
  readonly retention?: MigrationResult['retention'];
};

export interface TsdbSink extends Sink {
  readonly name: 'tsdb';
  describe(): TsdbDescription;
  /** Writes per path since start (zeros before start). */
  writePaths(): Readonly<WritePathCounts>;
}

export const RETENTION_INTERVAL_MS = 60 * 60 * 1000;
const START_TIMEOUT_MS = 120_000;
const HEALTH_TIMEOUT_MS = 2_000;
const RETENTION_TIMEOUT_MS = 10 * 60 * 1000;

export function describeTsdb(config: TsdbConfig, connection: PgConnection, sink?: TsdbSink): TsdbDescription {
  return sink?.describe() ?? { target: describePgTarget(connection), schema: config.schema, deployment: config.mode };
}

export function createTsdbSink(config: TsdbConfig, connection: PgConnection, logger: Logger, deps: TsdbSinkDeps = {}): TsdbSink {
  const now = deps.now ?? Date.now;
  const setTimer = deps.setTimer ?? defaultSetTimer;
  const target = describePgTarget(connection);
  const log = logger.child({ sink: 'tsdb' });

  let pool: pg.Pool | null = null;
  let writer: TsdbWriter | null = null;
  let migration: MigrationResult | null = null;
  let retentionTimer: TimerHandle | null = null;
  let retentionRunning = false;
  let stopping: Promise<void> | null = null;
  // Kept across restarts of the writer, so the counters only grow.
  const paths: WritePathCounts = { copy: 0, conflicts: 0, skipDuplicates: 0 };

  async function runRetention(): Promise<void> {
    const current = pool;
    if (current === null || stopping !== null || retentionRunning) return;
    retentionRunning = true;
    try {
      const deleted = await withClient(current, { deadline: now() + RETENTION_TIMEOUT_MS, now }, async (client) => {
        await client.query(`BEGIN; SET LOCAL statement_timeout = ${RETENTION_TIMEOUT_MS}`);
        // BRIN (plain) or chunk exclusion (hypertable) keeps this cheap when nothing is old enough.
        const result = await client.query(
          `DELETE FROM ${quoteIdent(config.schema)}.events WHERE time < now() - make_interval(days => $1::int)`,
          [config.retentionDays],
        );
        await client.query('COMMIT');
        return result.rowCount ?? 0;
      });
      if (deleted > 0) log.info({ deleted, retentionDays: config.retentionDays }, 'tsdb: retention deleted old events');
    } catch (err) {
      log.warn({ err: { message: safeMessage(err) } }, 'tsdb: retention run failed; will try again');
    } finally {
      retentionRunning = false;
    }
  }

  return {
    name: 'tsdb',

    async start(signal) {
      if (stopping !== null) throw new MothershipError('shutting_down', 'tsdb sink is shut down');
      if (writer !== null) return;
      const candidate = createPool(
        connection,
        { max: config.poolMax, connectionTimeoutMs: Math.min(10_000, config.writeTimeoutMs), statementTimeoutMs: config.writeTimeoutMs },
        log,
      );
      let canStage: boolean;
      try {
        const options = { schema: config.schema, chunkInterval: config.chunkInterval, compressAfter: config.compressAfter, retentionDays: config.retentionDays };
        const prepared = await withClient(candidate, { deadline: now() + START_TIMEOUT_MS, signal, now }, async (client) => {
          const result = await migrate(client, options, log);
          const { rows } = await client.query<{ temp: boolean }>(`SELECT has_database_privilege(current_database(), 'TEMPORARY') AS temp`);
          return { result, canStage: rows[0]?.temp === true };
        });
        migration = prepared.result;
        canStage = prepared.canStage;
      } catch (err) {
        await candidate.end().catch(() => undefined);
        const outcome = classifyTsdbError(err, { target, timeoutMs: START_TIMEOUT_MS });
        throw new MothershipError(outcome.kind === 'retryable' ? outcome.error.code : 'startup_failed', `tsdb start-up failed: ${outcome.error.message}`);
      }
      pool = candidate;
      // COPY stages rows in a temp table; a role without TEMPORARY writes every batch with unnest.
      if (!canStage) log.info('tsdb: this role may not create temp tables; large batches use INSERT … unnest instead of COPY');
      const copy = canStage ? {} : { copyThreshold: Number.POSITIVE_INFINITY };
      writer = new TsdbWriter(candidate, { schema: config.schema, timeoutMs: config.writeTimeoutMs, now, paths, ...copy });
      if (migration.retention === 'job') retentionTimer = setTimer(runRetention, RETENTION_INTERVAL_MS);
      log.info(
        {
          target,
          schema: config.schema,
          mode: migration.mode,
          timescaledb: timescaleState(migration),
          ...(migration.plainBecause === null ? {} : { fix: migration.plainBecause.fix }),
          retention: migration.retention,
          applied: migration.applied,
        },
        `tsdb sink ready (${migration.mode === 'timescaledb' ? 'TimescaleDB' : 'plain PostgreSQL'})`,
      );
    },

    async send(batch: SendBatch, signal: AbortSignal): Promise<SendOutcome> {
      if (stopping !== null) return { kind: 'retryable', error: new MothershipError('sink_unavailable', 'tsdb sink is shutting down') };
      if (writer === null) return { kind: 'retryable', error: new MothershipError('sink_unavailable', 'tsdb sink is not started') };
      try {
        const { inserted, duplicates, duplicatePositions } = await writer.write(batch, signal);
        return { kind: 'delivered', written: inserted, duplicates, duplicatePositions };
      } catch (err) {
        return classifyTsdbError(err, { target, timeoutMs: config.writeTimeoutMs });
      }
    },

    async healthcheck(signal: AbortSignal): Promise<SinkHealth> {
      if (stopping !== null) return { healthy: false, reason: 'shut down' };
      if (pool === null) return { healthy: false, reason: 'not started' };
      try {
        const timeoutMs = Math.min(HEALTH_TIMEOUT_MS, config.writeTimeoutMs);
        await withClient(pool, { deadline: now() + timeoutMs, signal, now }, (client) => client.query('SELECT 1'));
        return { healthy: true };
      } catch (err) {
        return { healthy: false, reason: classifyTsdbError(err, { target, timeoutMs: HEALTH_TIMEOUT_MS }).error.message };
      }
    },

    shutdown() {
      stopping ??= (async () => {
        retentionTimer?.cancel();
        retentionTimer = null;
        const current = pool;
        pool = null;
        writer = null;
        // Waits for checked-out connections; every operation on them is bounded by a deadline.
        await current?.end().catch((err: unknown) => log.warn({ err: { message: safeMessage(err) } }, 'tsdb: closing the pool failed'));
      })();
      return stopping;
    },

    writePaths() {
      return { ...paths };
    },

    describe() {
      const base = { target, schema: config.schema, deployment: config.mode };
      if (migration === null) return base;
      return {
        ...base,
        mode: migration.mode,
        retention: migration.retention,
        timescaledb: timescaleState(migration),
        ...(migration.plainBecause === null ? {} : { timescaledb_fix: migration.plainBecause.fix }),
      };
    },
  };
}

/** The extension's version in use, or why it is not used: for the start-up log and /health. */
function timescaleState({ timescale, plainBecause, mode }: MigrationResult): string {
  if (mode === 'timescaledb') return timescale.version ?? 'installed';
  if (plainBecause !== null) return `${timescale.version ?? timescale.defaultVersion ?? ''} not used: ${plainBecause.reason.replaceAll('_', ' ')}`.trim();
  return timescale.available ? 'available, not enabled' : 'not available';
}

function defaultSetTimer(task: () => Promise<void>, intervalMs: number): TimerHandle {
  let interval: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    void task();
    interval = setInterval(() => void task(), intervalMs);
    interval.unref();
  }, Math.min(60_000, intervalMs));
  first.unref();
  return {
    cancel() {
      clearTimeout(first);
      clearInterval(interval);
    },
  };
}

/** SQLSTATE classes whose errors are about the data itself: retrying the same rows cannot help. */
const DATA_CLASSES = new Set(['22', '23', '54']);

/**
 * Sorts a failure into retryable (the link, the server or our deadline: the data may be fine)
 * and rejected (PostgreSQL refuses these rows for good). Unknown failures are retryable: the
 * spool keeps the data, and an operator sees the error, rather than losing good data.
 * Messages carry the SQLSTATE and never parameters, values or passwords.
 */
export function classifyTsdbError(err: unknown, context: { target: string; timeoutMs: number }): Exclude<SendOutcome, { kind: 'delivered' }> {
  const retry = (code: 'sink_unavailable' | 'sink_timeout' | 'sink_misconfigured', message: string): Exclude<SendOutcome, { kind: 'delivered' }> => ({
    kind: 'retryable',
    error: new MothershipError(code, message),
  });
  if (err instanceof MothershipError) return { kind: 'retryable', error: err };
  if (err instanceof DeadlineError) {
    return err.reason === 'timeout'
      ? retry('sink_timeout', `tsdb: PostgreSQL at ${context.target} did not finish within ${context.timeoutMs} ms`)
      : retry('sink_timeout', 'tsdb: the write was abandoned (aborted)');
  }
  if (err instanceof pg.DatabaseError && typeof err.code === 'string') {
    const sqlstate = err.code;
    if (sqlstate === '57014') return retry('sink_timeout', `tsdb: PostgreSQL canceled the statement (SQLSTATE 57014, ${err.message})`);
    if (DATA_CLASSES.has(sqlstate.slice(0, 2))) {
      return {
        kind: 'rejected',
        error: new MothershipError('sink_rejected', `tsdb: PostgreSQL refused the data (SQLSTATE ${sqlstate}: ${withoutValues(err.message)})`),
      };
    }
    const said = serverSaid(err);
    if (CONFIGURATION_CLASSES.has(sqlstate.slice(0, 2)) || sqlstate === '42501' || err.severity === 'FATAL' || err.severity === 'PANIC') {
      return retry('sink_misconfigured', `tsdb: PostgreSQL at ${context.target} refused: ${said}`);
    }
    return retry('sink_unavailable', `tsdb: PostgreSQL at ${context.target} failed: ${said}`);
  }
  if (err instanceof RangeError) {
    // Thrown while encoding a row (e.g. a time outside what Date can represent): bad data.
    return { kind: 'rejected', error: new MothershipError('sink_rejected', `tsdb: an event could not be encoded (${err.message})`) };
  }
  const code = systemErrorCode(err);
  const message = safeMessage(err);
  if (code === 'ETIMEDOUT' || /timeout|timed out/i.test(message)) {
    return retry('sink_timeout', `tsdb: PostgreSQL at ${context.target} timed out (${code ?? message})`);
  }
  return retry('sink_unavailable', `tsdb: PostgreSQL at ${context.target} is unreachable (${code ?? message})`);
}

/**
 * SQLSTATE classes that say the server is up and refuses us until someone changes its
 * configuration, our credentials or the database (28 authorization, 3D no such database,
 * 42501 insufficient privilege, and any FATAL such as an extension that must be preloaded).
 */
const CONFIGURATION_CLASSES = new Set(['28', '3D']);

/** `FATAL XX000: message (hint: …)`: what the server said, as it said it, minus row values. */
function serverSaid(err: pg.DatabaseError): string {
  const hint = err.hint === undefined ? '' : ` (hint: ${withoutValues(err.hint.replace(/\s+/g, ' ').trim())})`;
  return `${err.severity ?? 'ERROR'} ${err.code ?? '?'}: ${withoutValues(err.message)}${hint}`;
}

/** Quoted fragments of server messages may echo row values; keep the words, drop the values. */
function withoutValues(message: string): string {
  return message.replace(/"(?:[^"]|"")*"/g, '"…"').slice(0, 300);
}

function systemErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  if ('code' in err && typeof err.code === 'string') return err.code;
  if (err instanceof AggregateError) return err.errors.map(systemErrorCode).find((c) => c !== undefined);
  return undefined;
}

function safeMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return withoutValues(message);
}
