import type pg from 'pg';

/**
 * What the server offers of TimescaleDB, and what the sink should do about it. Real servers are
 * in many states (package installed but not preloaded, an old extension, a role that may not
 * create it): each gets a plan with the exact fix, so an operator is never told the database is
 * down when one line of configuration is missing.
 */

/**
 * The oldest extension version our migrations work with: `timescaledb_information.hypertables`
 * with `compression_enabled`, `add_*_policy` and `timescaledb.materialized_only` came in 2.0.
 */
export const MIN_TIMESCALEDB = '2.0.0';
/** The newest version the suite has run against; a newer one is used, with a note in the log. */
export const TESTED_TIMESCALEDB = '2.28.3';

export interface TimescaleInfo {
  /** The server offers the extension (`pg_available_extensions`). */
  readonly available: boolean;
  /** The version `CREATE EXTENSION` would install. */
  readonly defaultVersion: string | null;
  /** The extension is installed in this database. */
  readonly installed: boolean;
  readonly version: string | null;
  /** Schema holding the extension's functions (`create_hypertable`, `time_bucket`, …). */
  readonly schema: string | null;
  /**
   * The library is loaded in every session (`shared_preload_libraries`). Read from the settings
   * the loaded library registers, which every role sees (the list itself is superuser-only).
   */
  readonly preloaded: boolean;
  /** The database's name and the server's configuration file, to write the fix exactly. */
  readonly database: string;
  readonly configFile: string | null;
}

export async function detectTimescale(client: pg.ClientBase): Promise<TimescaleInfo> {
  // pg_settings hides superuser-only rows (shared_preload_libraries, config_file) from other
  // roles instead of failing, so this never aborts the caller's transaction.
  const { rows } = await client.query<{
    available: boolean; default_version: string | null; version: string | null; schema: string | null;
    preload: string | null; loaded: boolean; database: string; config_file: string | null;
  }>(
    `SELECT a.name IS NOT NULL AS available, a.default_version, e.extversion AS version, n.nspname AS schema,
            (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload,
            EXISTS (SELECT 1 FROM pg_settings WHERE name = 'timescaledb.max_background_workers') AS loaded,
            current_database() AS database,
            (SELECT setting FROM pg_settings WHERE name = 'config_file') AS config_file
       FROM (SELECT 1) AS one
       LEFT JOIN pg_available_extensions a ON a.name = 'timescaledb'
       LEFT JOIN pg_extension e ON e.extname = 'timescaledb'
       LEFT JOIN pg_namespace n ON n.oid = e.extnamespace`,
  );
  const row = rows[0];
  const preload = row?.preload ?? null;
  return {
    available: row?.available ?? false,
    defaultVersion: row?.default_version ?? null,
    installed: row?.version != null,
    version: row?.version ?? null,
    schema: row?.schema ?? null,
    preloaded: row?.loaded === true || (preload !== null && preloadList(preload).includes('timescaledb')),
    database: row?.database ?? '',
    configFile: row?.config_file ?? null,
  };
}

/** `shared_preload_libraries` is a comma list whose items may be quoted. */
export function preloadList(setting: string): string[] {
  return setting.split(',').map((item) => item.trim().replace(/^"(.*)"$/, '$1').trim()).filter((item) => item !== '');
}

/** Why the sink stays on plain PostgreSQL; a stable word for logs, /health and tests. */
export type PlainReason = 'not_available' | 'not_preloaded' | 'version_too_old' | 'not_permitted';

export type TimescalePlan =
  | { readonly action: 'use'; readonly note: string | null }
  | { readonly action: 'create' }
  | { readonly action: 'plain'; readonly reason: PlainReason; readonly fix: string | null }
  /** The events table needs TimescaleDB (a hypertable) and the server cannot give it: start-up must stop. */
  | { readonly action: 'refuse'; readonly reason: PlainReason; readonly fix: string };

/**
 * What to do with TimescaleDB, from what the server offers. `hypertable` says whether our events
 * table already is one: then there is no plain fallback, only the fix.
 */
export function planTimescale(info: TimescaleInfo, hypertable: boolean): TimescalePlan {
  if (info.installed) {
    const version = info.version ?? '0';
    if (!info.preloaded) {
      // Without the library every call into the extension ends the session (FATAL).
      const fix = preloadFix(info);
      return hypertable ? { action: 'refuse', reason: 'not_preloaded', fix } : { action: 'plain', reason: 'not_preloaded', fix };
    }
    if (compareVersions(version, MIN_TIMESCALEDB) < 0) {
      const fix = `the timescaledb extension in database "${info.database}" is ${version}; the mothership needs ${MIN_TIMESCALEDB} or newer: install a newer TimescaleDB package, then run \`ALTER EXTENSION timescaledb UPDATE;\` in that database (first statement of a fresh session, e.g. psql -X)`;
      return hypertable ? { action: 'refuse', reason: 'version_too_old', fix } : { action: 'plain', reason: 'version_too_old', fix };
    }
    const note = compareVersions(version, TESTED_TIMESCALEDB) > 0
      ? `TimescaleDB ${version} is newer than the newest version this build was tested with (${TESTED_TIMESCALEDB}); a failing step is logged and skipped`
      : null;
    return { action: 'use', note };
  }
  if (!info.available) return { action: 'plain', reason: 'not_available', fix: null };
  if (!info.preloaded) return { action: 'plain', reason: 'not_preloaded', fix: preloadFix(info) };
  if (compareVersions(info.defaultVersion ?? '0', MIN_TIMESCALEDB) < 0) {
    return {
      action: 'plain',
      reason: 'version_too_old',
      fix: `the server offers TimescaleDB ${info.defaultVersion ?? '?'}; the mothership needs ${MIN_TIMESCALEDB} or newer: install a newer TimescaleDB package`,
    };
  }
  return { action: 'create' };
}

export function preloadFix(info: Pick<TimescaleInfo, 'configFile'>): string {
  const file = info.configFile ?? 'postgresql.conf';
  return `add timescaledb to shared_preload_libraries in ${file} (shared_preload_libraries = 'timescaledb', keeping any libraries already listed), or run \`ALTER SYSTEM SET shared_preload_libraries = 'timescaledb';\` as a superuser, then restart PostgreSQL`;
}

export function notPermittedFix(info: Pick<TimescaleInfo, 'database'>, role: string): string {
  return `role "${role}" may not create the timescaledb extension: a superuser runs \`CREATE EXTENSION IF NOT EXISTS timescaledb;\` in database "${info.database}", then restart the mothership (its events table is converted to a hypertable at start-up)`;
}

/** Compares dotted numeric versions ("2.28.3" vs "2.9"); a suffix such as "-dev" is ignored. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string): number[] => v.split('-')[0]?.split('.').map((p) => Number.parseInt(p, 10) || 0) ?? [];
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}
