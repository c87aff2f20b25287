import { gzipSync } from 'node:zlib';
import pg from 'pg';
import type { PgConnection } from '../../src/config/config.js';
import { after, before } from 'node:test';
import { connect, databaseTargets, dropSchema, uniqueSchema, type DatabaseTarget } from './database.js';
import { tempDir } from './events.js';

/** The database an end-to-end suite runs its servers against: the machine's when it answers, else an embedded one. */
export async function e2eDatabase(): Promise<{ target: DatabaseTarget; connection: PgConnection; url: string; close: () => Promise<void> }> {
  const targets = await databaseTargets();
  const target = targets[0] as DatabaseTarget;
  const connection = await target.connection();
  return {
    target,
    connection,
    url: pgUrl(connection),
    close: async () => {
      for (const t of targets) await t.close();
    },
  };
}

export function pgUrl(c: PgConnection): string {
  const auth = c.password === '' ? encodeURIComponent(c.user) : `${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}`;
  return `postgres://${auth}@${c.host}:${c.port}/${encodeURIComponent(c.database)}`;
}

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

/** POSTs a batch (object → JSON, optionally gzip'd; Buffer/string as-is) to /ingest. */
export async function postIngest(
  baseUrl: string,
  body: unknown,
  options: { gzip?: boolean; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Answer> {
  let payload: string | Buffer = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
  if (options.gzip === true) {
    payload = gzipSync(payload);
    headers['content-encoding'] = 'gzip';
  }
  const init: RequestInit = { method: 'POST', headers, body: payload };
  if (options.signal !== undefined) init.signal = options.signal;
  const res = await fetch(`${baseUrl}/ingest`, init);
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // left empty: the assertion on `text` will show what came back
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

export async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function waitUntil(condition: () => Promise<boolean> | boolean, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `fn` with a short-lived client on `connection`. */
export async function withDb<T>(connection: PgConnection, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(connection);
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** The backlog of a sink as /health reports it. */
export async function backlogEvents(baseUrl: string, sink = 'tsdb'): Promise<number> {
  const { body } = await getJson(`${baseUrl}/health`);
  const sinks = body.sinks as Record<string, { backlog_events?: number }>;
  return sinks[sink]?.backlog_events ?? -1;
}

export interface E2eFixture {
  /** The database the servers write to (valid inside tests). */
  readonly db: Awaited<ReturnType<typeof e2eDatabase>>;
  /** A fresh schema for this file's servers, dropped afterwards. */
  readonly schema: string;
  /** A fresh DATA_DIR, removed afterwards. */
  readonly dataDir: string;
  /** Env that points a server at all of the above. */
  env(extra?: Record<string, string>): Record<string, string>;
  /** Runs `fn` at the end of the file, before the schema and folder go (stop servers here). */
  beforeTeardown(fn: () => Promise<void>): void;
}

/** Registers before/after hooks giving an end-to-end test file a database, a schema and a data folder. */
export function e2eFixture(prefix: string): E2eFixture {
  let db: Awaited<ReturnType<typeof e2eDatabase>> | null = null;
  let dir: { dir: string; remove: () => Promise<void> } | null = null;
  const schema = uniqueSchema();
  const first: Array<() => Promise<void>> = [];
  before(async () => {
    db = await e2eDatabase();
    dir = await tempDir(prefix);
  });
  after(async () => {
    for (const fn of first.splice(0)) await fn();
    if (db !== null) {
      await dropSchema(db.connection, schema);
      await db.close();
    }
    await dir?.remove();
  });
  const required = <T>(value: T | null, what: string): T => {
    if (value === null) throw new Error(`e2e fixture: ${what} is only available inside tests`);
    return value;
  };
  return {
    get db() {
      return required(db, 'db');
    },
    schema,
    get dataDir() {
      return required(dir, 'dataDir').dir;
    },
    env(extra = {}) {
      return { DATA_DIR: required(dir, 'dataDir').dir, TSDB_URL: required(db, 'db').url, TSDB_SCHEMA: schema, ...extra };
    },
    beforeTeardown(fn) {
      first.push(fn);
    },
  };
}
