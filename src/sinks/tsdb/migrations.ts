import type pg from 'pg';
import { MothershipError } from '../../lib/errors.js';
import type { Logger } from '../../telemetry/logger.js';
import { detectTimescale, notPermittedFix, planTimescale, type PlainReason, type TimescaleInfo } from './timescale.js';

/**
 * Versioned schema migrations plus the per-start reconciliation of TimescaleDB policies.
 *
 * Everything runs in one transaction holding a database-wide advisory lock, so several
 * instances starting at once apply each migration exactly once (the others wait, then find
 * it recorded in `<schema>.mothership_migrations`).
 */

export type TsdbMode = 'timescaledb' | 'postgresql';

export interface MigrationOptions {
  readonly schema: string;
  readonly chunkInterval: string;
  readonly compressAfter: string | null;
  readonly retentionDays: number;
}

export interface MigrationResult {
  readonly mode: TsdbMode;
  readonly timescale: TimescaleInfo;
  /** Versions applied by this call (empty when the schema was already current). */
  readonly applied: readonly number[];
  /** How old events are deleted: a TimescaleDB policy, the sink's periodic DELETE, or never. */
  readonly retention: 'policy' | 'job' | 'none';
  /** Why TimescaleDB is offered but not used, and the exact fix; null when there is nothing to fix. */
  readonly plainBecause: { readonly reason: PlainReason | 'too_large_to_convert'; readonly fix: string } | null;
}

/**
 * A plain events table found when TimescaleDB has become usable is converted at start-up up to
 * this many rows (estimated): `create_hypertable(migrate_data)` rewrites the table under an
 * exclusive lock, which takes seconds at this size. A larger table is left to the operator, with
 * the statement to run in the log.
 */
export const CONVERT_MAX_ROWS = 1_000_000;

/** 0x4D6F7468 = 'Moth': one lock for every mothership migration in the database. */
const LOCK_SQL = 'SELECT pg_advisory_xact_lock(1299149928, 1)';

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

interface Context {
  readonly client: pg.ClientBase;
  readonly logger: Logger;
  readonly options: MigrationOptions;
  /** Quoted schema. */
  readonly s: string;
  readonly mode: TsdbMode;
  /** Quoted TimescaleDB function schema (timescaledb mode only). */
  readonly ts: string;
}

interface Migration {
  readonly version: number;
  readonly name: string;
  up(ctx: Context): Promise<void>;
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'events table, indexes, Grafana views',
    async up(ctx) {
      const { client, s } = ctx;
      await client.query(`
        CREATE TABLE IF NOT EXISTS ${s}.events (
          time timestamptz NOT NULL,
          received_at timestamptz NOT NULL,
          source text,
          type text,
          service text,
          host text,
          severity text,
          message text,
          data jsonb NOT NULL,
          id uuid NOT NULL
        )`);
      if (ctx.mode === 'timescaledb') {
        // Also creates the default (time DESC) index.
        await client.query(
          `SELECT ${ctx.ts}.create_hypertable($1::regclass, 'time', chunk_time_interval => $2::interval, if_not_exists => true)`,
          [`${s}.events`, ctx.options.chunkInterval],
        );
      } else {
        await client.query(`CREATE INDEX IF NOT EXISTS events_time_brin ON ${s}.events USING brin (time) WITH (autosummarize = on)`);
      }
      // Idempotency key. Hypertables require the partition column in unique indexes; we keep
      // the same rule on plain PostgreSQL so both modes behave alike.
      await client.query(`CREATE UNIQUE INDEX IF NOT EXISTS events_id_time_key ON ${s}.events (id, time)`);
      await client.query(`CREATE INDEX IF NOT EXISTS events_service_time_idx ON ${s}.events (service, time DESC)`);
      await createViews(ctx);
      await createEventsPerMinute(ctx);
    },
  },
];

export const LATEST_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/** A jsonb string that is safe to cast to numeric (bounded exponent, no NaN/Infinity). */
const NUMERIC_TEXT = `'^[[:space:]]*[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]{1,3})?[[:space:]]*$'`;

async function createViews({ client, s }: Context): Promise<void> {
  // CASE keeps the cast safe even when a caller's predicate on `value` is evaluated first.
  await client.query(`
    CREATE OR REPLACE VIEW ${s}.metrics AS
    SELECT time, source, host, service, type,
           COALESCE(data->>'metric_name', data->>'name') AS metric_name,
           CASE
             WHEN jsonb_typeof(data->'value') = 'number' THEN (data->'value')::numeric
             WHEN jsonb_typeof(data->'value') = 'string' AND data->>'value' ~ ${NUMERIC_TEXT}
               THEN btrim(data->>'value')::numeric
           END AS value,
           data->>'unit' AS unit,
           data->>'instance' AS instance,
           data->>'interface' AS interface
      FROM ${s}.events
     WHERE jsonb_typeof(data->'value') = 'number'
        OR (jsonb_typeof(data->'value') = 'string' AND data->>'value' ~ ${NUMERIC_TEXT})`);
  await client.query(`
    CREATE OR REPLACE VIEW ${s}.logs AS
    SELECT time, source, host, service, severity, message, type
      FROM ${s}.events
     WHERE message IS NOT NULL`);
}

async function createEventsPerMinute(ctx: Context): Promise<void> {
  const { client, s, logger } = ctx;
  if (ctx.mode === 'timescaledb') {
    const failed = await attempt(client, 'events_per_minute', async () => {
      await client.query(`
        CREATE MATERIALIZED VIEW ${s}.events_per_minute
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT ${ctx.ts}.time_bucket(INTERVAL '1 minute', time) AS time, source, service, severity, count(*) AS count
          FROM ${s}.events
         GROUP BY ${ctx.ts}.time_bucket(INTERVAL '1 minute', time), source, service, severity
        WITH NO DATA`);
      await ensureAggregatePolicy(ctx);
    });
    if (failed === null) return;
    logger.warn({ err: pgErrorSummary(failed) }, 'tsdb: could not create the events_per_minute continuous aggregate; using a plain view');
  }
  await client.query(`
    CREATE OR REPLACE VIEW ${s}.events_per_minute AS
    SELECT date_trunc('minute', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS time,
           source, service, severity, count(*) AS count
      FROM ${s}.events
     GROUP BY 1, source, service, severity`);
}

/**
 * The refresh policy of events_per_minute. Its window is open at the start (NULL: from the oldest
 * event): a node replaying data older than any bounded window (a ship back from a month at sea)
 * would otherwise never be aggregated once the refresh watermark has passed it (seen on the real
 * TimescaleDB: 2025 samples missing from the aggregate after a refresh). Each run refreshes only
 * the invalidated buckets, so the open window costs nothing when no old data arrives. Replaces a
 * policy with a bounded window, as created by earlier versions.
 */
async function ensureAggregatePolicy({ client, s, ts, options }: Context): Promise<void> {
  const { rows } = await client.query<{ open: boolean }>(
    `SELECT config->>'start_offset' IS NULL AS open FROM timescaledb_information.jobs
      WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_schema = $1 AND hypertable_name = 'events_per_minute'`,
    [options.schema],
  );
  if (rows[0]?.open === true) return;
  const aggregate = `${s}.events_per_minute`;
  await client.query(`SELECT ${ts}.remove_continuous_aggregate_policy($1::regclass, if_exists => true)`, [aggregate]);
  await client.query(
    `SELECT ${ts}.add_continuous_aggregate_policy($1::regclass,
       start_offset => NULL, end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute')`,
    [aggregate],
  );
}

/**
 * Applies pending migrations and reconciles policies, in one locked transaction on `client`
 * (a dedicated connection, not in a transaction).
 */
export async function migrate(client: pg.ClientBase, options: MigrationOptions, logger: Logger): Promise<MigrationResult> {
  const s = quoteIdent(options.schema);
  await client.query('BEGIN');
  try {
    await client.query('SET LOCAL statement_timeout = 0');
    await client.query(LOCK_SQL);
    // CREATE SCHEMA checks the database-level CREATE privilege even when the schema exists, so a
    // role that only owns its schema would fail: create it only when it is missing.
    const present = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [options.schema]);
    if ((present.rowCount ?? 0) === 0) await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${s}.mothership_migrations (
        version int PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const done = new Set(
      (await client.query<{ version: number }>(`SELECT version FROM ${s}.mothership_migrations`)).rows.map((r) => r.version),
    );
    const newest = Math.max(0, ...done);
    if (newest > LATEST_VERSION) {
      logger.warn({ schema: options.schema, database: newest, known: LATEST_VERSION }, 'tsdb: the database schema is newer than this build');
    }

    const found = await chooseMode(client, options, done.has(1), logger);
    const { timescale, plainBecause } = found;
    let mode = found.mode;
    let ctx: Context = { client, logger, options, s, mode, ts: quoteIdent(timescale.schema ?? 'public') };
    let converted = false;
    if (found.convert) {
      converted = await convertToHypertable({ ...ctx, mode: 'timescaledb' });
      if (converted) ctx = { ...ctx, mode: (mode = 'timescaledb') };
    }
    const applied: number[] = [];
    for (const migration of MIGRATIONS) {
      if (done.has(migration.version)) continue;
      await migration.up(ctx);
      await client.query(`INSERT INTO ${s}.mothership_migrations (version, name, applied_at) VALUES ($1, $2, now())`, [
        migration.version,
        `${migration.name} (${mode})`,
      ]);
      applied.push(migration.version);
    }
    const retention = mode === 'timescaledb' ? await reconcileTimescale(ctx) : options.retentionDays > 0 ? 'job' : 'none';
    await client.query('COMMIT');
    if (applied.length > 0) logger.info({ schema: options.schema, applied, mode }, 'tsdb: migrations applied');
    if (converted) logger.info({ schema: options.schema }, 'tsdb: the plain events table was converted to a TimescaleDB hypertable');
    const tooLarge = found.convert && !converted
      ? { reason: 'too_large_to_convert' as const, fix: convertFix(options) }
      : null;
    return { mode, timescale, applied, retention, plainBecause: plainBecause ?? tooLarge };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

interface ModeChoice {
  readonly mode: TsdbMode;
  readonly timescale: TimescaleInfo;
  readonly plainBecause: MigrationResult['plainBecause'];
  /** The events table exists as a plain table and TimescaleDB is now usable: convert it. */
  readonly convert: boolean;
}

/** Decides plain PostgreSQL or TimescaleDB from what the server offers, enabling the extension when it may. */
async function chooseMode(client: pg.ClientBase, options: MigrationOptions, tableExists: boolean, logger: Logger): Promise<ModeChoice> {
  let timescale = await detectTimescale(client);
  const hypertable = tableExists && timescale.installed && (await isHypertable(client, options.schema));
  const plan = planTimescale(timescale, hypertable);
  let plainBecause: MigrationResult['plainBecause'] = null;
  switch (plan.action) {
    case 'refuse':
      throw new MothershipError('sink_misconfigured', `tsdb: the events table is a TimescaleDB hypertable but ${plan.reason === 'not_preloaded' ? 'the library is not preloaded' : 'the extension is too old'}: ${plan.fix}`);
    case 'plain':
      if (plan.fix !== null) {
        plainBecause = { reason: plan.reason, fix: plan.fix };
        logger.warn({ reason: plan.reason, fix: plan.fix }, 'tsdb: TimescaleDB is installed on the server but cannot be used; storing in plain PostgreSQL');
      }
      break;
    case 'create': {
      const created = await createExtension(client);
      if (created === null) timescale = await detectTimescale(client);
      else {
        plainBecause = created;
        logger.warn({ reason: created.reason, fix: created.fix }, 'tsdb: TimescaleDB is available but could not be enabled; storing in plain PostgreSQL');
      }
      break;
    }
    case 'use':
      if (plan.note !== null) logger.info({ version: timescale.version }, `tsdb: ${plan.note}`);
      break;
  }
  const usable = timescale.installed && plainBecause === null;
  return {
    mode: usable && (!tableExists || hypertable) ? 'timescaledb' : 'postgresql',
    timescale,
    plainBecause,
    convert: usable && tableExists && !hypertable,
  };
}

/**
 * From the catalog table, not the `timescaledb_information` views: those call into the library,
 * which ends the session when it is installed but not preloaded.
 */
async function isHypertable(client: pg.ClientBase, schema: string): Promise<boolean> {
  const { rowCount } = await client.query(
    `SELECT 1 FROM _timescaledb_catalog.hypertable WHERE schema_name = $1 AND table_name = 'events'`,
    [schema],
  );
  return (rowCount ?? 0) > 0;
}

async function createExtension(client: pg.ClientBase): Promise<{ reason: PlainReason; fix: string } | null> {
  const failed = await attempt(client, 'timescaledb_extension', async () => {
    await client.query('CREATE EXTENSION IF NOT EXISTS timescaledb');
  });
  if (failed === null) return null;
  const summary = pgErrorSummary(failed);
  if (summary.code === '42501') {
    const role = (await client.query<{ role: string }>('SELECT current_user AS role')).rows[0]?.role ?? '?';
    const database = (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db ?? '?';
    return { reason: 'not_permitted', fix: notPermittedFix({ database }, role) };
  }
  // Anything else the server said is not ours to hide: start-up fails with it, and is retried.
  throw failed;
}

/** Converts the plain events table to a hypertable when it is small enough; false when left to the operator. */
async function convertToHypertable(ctx: Context): Promise<boolean> {
  const { client, s, ts, options, logger } = ctx;
  const { rows } = await client.query<{ estimate: number }>(
    `SELECT greatest(reltuples, 0)::float8 AS estimate FROM pg_class WHERE oid = $1::regclass`,
    [`${s}.events`],
  );
  const estimate = rows[0]?.estimate ?? 0;
  if (estimate > CONVERT_MAX_ROWS) {
    logger.warn({ schema: options.schema, estimatedRows: Math.round(estimate), fix: convertFix(options) }, 'tsdb: TimescaleDB is now usable but the plain events table is too large to convert at start-up; staying in plain PostgreSQL mode');
    return false;
  }
  await client.query(
    `SELECT ${ts}.create_hypertable($1::regclass, 'time', chunk_time_interval => $2::interval, migrate_data => true)`,
    [`${s}.events`, options.chunkInterval],
  );
  // The hypertable's own time index replaces the plain mode's BRIN index; the continuous
  // aggregate replaces the plain view in `reconcileTimescale`.
  await client.query(`DROP INDEX IF EXISTS ${s}.events_time_brin`);
  return true;
}

function convertFix(options: MigrationOptions): string {
  const events = `${quoteIdent(options.schema)}.events`;
  return `to convert, stop the mothership and run in its database: SELECT create_hypertable('${events}', 'time', chunk_time_interval => INTERVAL '${options.chunkInterval}', migrate_data => true); DROP INDEX IF EXISTS ${quoteIdent(options.schema)}.events_time_brin; then start it again: it sets up compression, retention and the events_per_minute continuous aggregate`;
}

/** Settings that follow the configuration at every start (chunk size, compression, retention, the aggregate). */
async function reconcileTimescale(ctx: Context): Promise<'policy' | 'job' | 'none'> {
  const { client, s, ts, options, logger } = ctx;
  const events = `${s}.events`;
  // A table converted from plain mode (here or by the operator) still has the plain view.
  const aggregate = await client.query(
    `SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_schema = $1 AND view_name = 'events_per_minute'`,
    [options.schema],
  );
  if ((aggregate.rowCount ?? 0) === 0) {
    const failed = await attempt(client, 'events_per_minute_view', async () => {
      await client.query(`DROP VIEW IF EXISTS ${s}.events_per_minute`);
      await createEventsPerMinute(ctx);
    });
    if (failed !== null) logger.warn({ err: pgErrorSummary(failed) }, 'tsdb: could not replace the events_per_minute view by a continuous aggregate');
  } else {
    const failed = await attempt(client, 'events_per_minute_policy', () => ensureAggregatePolicy(ctx));
    if (failed !== null) logger.warn({ err: pgErrorSummary(failed) }, 'tsdb: could not set the refresh policy of events_per_minute');
  }
  const chunk = await attempt(client, 'chunk_interval', async () => {
    await client.query(`SELECT ${ts}.set_chunk_time_interval($1::regclass, $2::interval)`, [events, options.chunkInterval]);
  });
  if (chunk !== null) logger.warn({ err: pgErrorSummary(chunk) }, 'tsdb: could not set the chunk time interval');

  if (options.compressAfter !== null) {
    const compressAfter = options.compressAfter;
    const failed = await attempt(client, 'compression', async () => {
      const { rows } = await client.query<{ enabled: boolean }>(
        `SELECT compression_enabled AS enabled FROM timescaledb_information.hypertables
          WHERE hypertable_schema = $1 AND hypertable_name = 'events'`,
        [options.schema],
      );
      // Changing settings is refused once chunks are compressed, so only enable them once.
      if (rows[0]?.enabled !== true) {
        await client.query(
          `ALTER TABLE ${events} SET (timescaledb.compress, timescaledb.compress_segmentby = 'source', timescaledb.compress_orderby = 'time DESC')`,
        );
      }
      await client.query(`SELECT ${ts}.remove_compression_policy($1::regclass, if_exists => true)`, [events]);
      await client.query(`SELECT ${ts}.add_compression_policy($1::regclass, compress_after => $2::interval)`, [events, compressAfter]);
    });
    if (failed !== null) logger.warn({ err: pgErrorSummary(failed) }, 'tsdb: could not set up compression; events stay uncompressed');
  } else {
    await attempt(client, 'no_compression', async () => {
      await client.query(`SELECT ${ts}.remove_compression_policy($1::regclass, if_exists => true)`, [events]);
    });
  }

  if (options.retentionDays <= 0) {
    await attempt(client, 'no_retention', async () => {
      await client.query(`SELECT ${ts}.remove_retention_policy($1::regclass, if_exists => true)`, [events]);
    });
    return 'none';
  }
  const failed = await attempt(client, 'retention', async () => {
    await client.query(`SELECT ${ts}.remove_retention_policy($1::regclass, if_exists => true)`, [events]);
    await client.query(`SELECT ${ts}.add_retention_policy($1::regclass, drop_after => make_interval(days => $2::int))`, [
      events,
      options.retentionDays,
    ]);
  });
  if (failed === null) return 'policy';
  logger.warn({ err: pgErrorSummary(failed) }, 'tsdb: no TimescaleDB retention policy; the sink deletes old events itself');
  return 'job';
}

/** Runs `fn` inside a savepoint; returns the error (after rolling back to the savepoint) or null. */
async function attempt(client: pg.ClientBase, name: string, fn: () => Promise<void>): Promise<unknown> {
  await client.query(`SAVEPOINT ${name}`);
  try {
    await fn();
    await client.query(`RELEASE SAVEPOINT ${name}`);
    return null;
  } catch (err) {
    try {
      await client.query(`ROLLBACK TO SAVEPOINT ${name}`);
    } catch {
      // The session is gone (a FATAL error ends it): what the server said first is the news.
      throw err;
    }
    return err ?? new Error('unknown error');
  }
}

function pgErrorSummary(err: unknown): { code?: string; message: string } {
  const message = err instanceof Error ? err.message : String(err);
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return { code: err.code, message };
  return { message };
}
