import { gzipSync } from 'node:zlib';
import pg from 'pg';
import type { PgConnection } from '../../src/config/config.js';
import { connect, databaseTargets, type DatabaseTarget } from './database.js';

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
