/**
 * Which database the bench measured: the mode the server chose at start-up (its /health:
 * `sinks.tsdb.details.mode` and `details.timescaledb`, the extension's version or why it is not
 * used) and the PostgreSQL version (`SHOW server_version`). A TimescaleDB figure and a plain one
 * are different measurements; every report says which it is.
 */
import http from 'node:http';
import type { Db } from './db.js';

export interface DatabaseMode {
  /** What the server said it writes to; `unknown` when its /health has no tsdb details. */
  readonly mode: 'timescaledb' | 'postgresql' | 'unknown';
  /** "TimescaleDB 2.28.3 on PostgreSQL 15.20" or "plain PostgreSQL 15.20". */
  readonly label: string;
  /** `SHOW server_version` as the server gives it (e.g. "15.20 (Debian 15.20-0+deb12u1)"). */
  readonly postgresql: string;
  /** The server's `details.timescaledb`: the version in use, or why it is not used ("2.28.3 not used: not preloaded"). */
  readonly timescaledb: string | null;
  /** The server's hint for using TimescaleDB (`details.timescaledb_fix`), when it offers one. */
  readonly timescaledbFix: string | null;
}

/** Asks the running server (/health) and the database (SHOW server_version). */
export async function databaseMode(db: Db, host: string, port: number): Promise<DatabaseMode> {
  const version = (await db.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '?';
  const details = tsdbDetails(await healthBody(host, port));
  return describeMode(version, details);
}

export function describeMode(serverVersion: string, details: Readonly<Record<string, unknown>> | null): DatabaseMode {
  const pgVersion = serverVersion.split(' ')[0] ?? serverVersion;
  const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
  const timescaledb = text(details?.['timescaledb']);
  const timescaledbFix = text(details?.['timescaledb_fix']);
  const said = details?.['mode'];
  if (said === 'timescaledb') {
    return { mode: 'timescaledb', label: `TimescaleDB ${timescaledb ?? '(version not reported)'} on PostgreSQL ${pgVersion}`, postgresql: serverVersion, timescaledb, timescaledbFix };
  }
  if (said === 'postgresql') {
    return { mode: 'postgresql', label: `plain PostgreSQL ${pgVersion}`, postgresql: serverVersion, timescaledb, timescaledbFix };
  }
  return { mode: 'unknown', label: `PostgreSQL ${pgVersion} (the server's /health did not say its mode)`, postgresql: serverVersion, timescaledb, timescaledbFix };
}

/** One line for a report: the label, plus what the server said of TimescaleDB when it is not used. */
export function formatMode(m: DatabaseMode): string {
  if (m.mode === 'timescaledb' || m.timescaledb === null) return m.label;
  return `${m.label}   (timescaledb: ${m.timescaledb})`;
}

function tsdbDetails(body: unknown): Readonly<Record<string, unknown>> | null {
  const sinks = isRecord(body) ? body['sinks'] : undefined;
  const tsdb = isRecord(sinks) ? sinks['tsdb'] : undefined;
  const details = isRecord(tsdb) ? tsdb['details'] : undefined;
  return isRecord(details) ? details : null;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** GET /health's JSON body, whatever its status (a degraded server still says its mode); null if unreadable. */
export function healthBody(host: string, port: number): Promise<unknown> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/health', agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
        } catch {
          resolve(null);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}
