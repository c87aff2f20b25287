import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { IngestEvent } from '../../pipeline/event.js';
import { COPY_COLUMNS, copyText } from '../../pipeline/copy-text.js';
import { formatPgTimestamp } from '../../pipeline/time.js';
import type { SendBatch } from '../sink.js';
import { quoteIdent } from './migrations.js';
import { withClient } from './pool.js';

export interface WriteResult {
  /** Rows that were new. */
  readonly inserted: number;
  /** Events already stored (a retried batch) or repeated inside this batch. */
  readonly duplicates: number;
  /** Their positions in the batch, ascending (a repeat inside the batch: the later occurrences). */
  readonly duplicatePositions: readonly number[];
}

/** How many writes took each path since start (metrics: mothership_tsdb_writes_total). */
export interface WritePathCounts {
  /** Plain COPY, every row new. */
  copy: number;
  /** Plain COPYs refused because a row was already stored (each then written conflict-safe). */
  conflicts: number;
  /** Writes that skipped stored rows: after a conflict, or while duplicates keep coming. */
  skipDuplicates: number;
}

export interface WriterOptions {
  readonly schema: string;
  /** Deadline of one write, from the call to the commit. */
  readonly timeoutMs: number;
  /** When a write must skip stored rows: batches of at least this many events go through COPY-staging, smaller ones through unnest. */
  readonly copyThreshold?: number;
  /**
   * Try a plain COPY into the table first and take a conflict-safe path only when it meets a
   * stored row (default). False: every write takes a conflict-safe path (the bench compares them).
   */
  readonly optimistic?: boolean;
  /** Counted into (a sink keeps one object across writers); default: the writer's own. */
  readonly paths?: WritePathCounts;
  readonly now?: () => number;
}

/**
 * Where COPY-via-staging overtakes unnest (bench/tsdb-write.ts on PostgreSQL 15, 2 cores):
 * unnest is ~2.5× faster for 1-event batches and ~1.5× for 10 (a single autocommit statement,
 * no staging table to fill and truncate), the two meet around 200–300, and from 500 up COPY is
 * ~1.3–1.5× faster (no array literals to build and parse).
 */
export const DEFAULT_COPY_THRESHOLD = 250;

/** COPY rows per chunk handed to the socket: big enough to amortize, small enough to stream. */
const ROWS_PER_CHUNK = 512;

/** SQLSTATE of a unique index refusing a row: here, an event whose (id, time) is already stored. */
const UNIQUE_VIOLATION = '23505';

/**
 * Bulk, idempotent writes of events: one transaction per batch, and a retried batch adds nothing.
 *
 * Almost every batch is new, so the first try is a plain `COPY` into the events table: the
 * cheapest way PostgreSQL has to take rows (bench/tsdb-write.ts: 1.3–1.6× the conflict-safe
 * paths from 10 rows up, equal at 1). COPY cannot skip rows, so when one is already stored
 * (a node resent a batch, the spool replays after a crash) the unique index refuses it and the
 * whole COPY rolls back; the batch is then written again on a conflict-safe path, where rows
 * whose (id, time) is stored are skipped (`ON CONFLICT DO NOTHING RETURNING id`, so the caller
 * learns which events were the duplicates, not only how many):
 * `INSERT … SELECT FROM unnest(…)` for small batches, `COPY` into a per-connection temp staging
 * table then `INSERT … SELECT` for large ones (see DEFAULT_COPY_THRESHOLD). Duplicates come in
 * runs (a replayed backlog), so after a conflict the writer keeps to the conflict-safe path
 * until a write there finds no duplicate.
 */
export class TsdbWriter {
  private readonly events: string;
  private readonly staging: string;
  private readonly now: () => number;
  private readonly copyThreshold: number;
  /** Connections whose session already has the temp staging table. */
  private readonly staged = new WeakSet<pg.ClientBase>();
  /** The last conflict-safe write met stored rows: more are likely, skip the plain COPY. */
  private expectDuplicates: boolean;
  readonly paths: WritePathCounts;

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: WriterOptions,
  ) {
    this.events = `${quoteIdent(options.schema)}.events`;
    this.staging = quoteIdent(`mothership_staging_${options.schema}`);
    this.now = options.now ?? Date.now;
    this.copyThreshold = options.copyThreshold ?? DEFAULT_COPY_THRESHOLD;
    this.expectDuplicates = options.optimistic === false;
    this.paths = options.paths ?? { copy: 0, conflicts: 0, skipDuplicates: 0 };
  }

  /**
   * Throws `DeadlineError` past `timeoutMs` or on abort (the connection is discarded), or the
   * driver/server error otherwise; the sink classifies them.
   */
  async write(batch: SendBatch, signal?: AbortSignal): Promise<WriteResult> {
    if (batch.size === 0) return { inserted: 0, duplicates: 0, duplicatePositions: [] };
    const limits = { deadline: this.now() + this.options.timeoutMs, signal, now: this.now };
    return withClient(this.pool, limits, async (client, remaining): Promise<WriteResult> => {
      if (!this.expectDuplicates) {
        try {
          await this.writePlainCopy(client, batch);
          this.paths.copy++;
          return { inserted: batch.size, duplicates: 0, duplicatePositions: [] };
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
          this.paths.conflicts++;
          this.expectDuplicates = true;
        }
      }
      // Only here are the events needed: for unnest's arrays and to match the ids returned.
      const events = batch.events();
      const insertedIds = events.length >= this.copyThreshold ? await this.writeCopy(client, batch, remaining) : await this.writeUnnest(client, events);
      this.paths.skipDuplicates++;
      this.expectDuplicates = this.options.optimistic === false || insertedIds.length < events.length;
      const duplicatePositions = positionsNotIn(events, insertedIds);
      return { inserted: events.length - duplicatePositions.length, duplicates: duplicatePositions.length, duplicatePositions };
    });
  }

  /**
   * One autocommit `COPY` into the events table. Its server-side limit is the pool's
   * `statement_timeout`; our own timer still ends it at the deadline. Fails as a whole, with
   * SQLSTATE 23505, if any row is already stored: when it succeeds, every row is new.
   */
  private async writePlainCopy(client: pg.PoolClient, batch: SendBatch): Promise<void> {
    await pipeline(copySource(batch), client.query(copyFrom(`COPY ${this.events} (${COPY_COLUMNS}) FROM STDIN`)));
  }

  /**
   * `BEGIN; SET LOCAL statement_timeout; COPY staging FROM STDIN` (the rows streamed), then
   * `INSERT … SELECT FROM staging ON CONFLICT DO NOTHING RETURNING id`, then `COMMIT`: three
   * round trips, on the conflict path only. Returns the ids of the rows inserted.
   */
  private async writeCopy(client: pg.PoolClient, batch: SendBatch, remaining: () => number): Promise<string[]> {
    const create = this.staged.has(client)
      ? ''
      : `CREATE TEMP TABLE IF NOT EXISTS ${this.staging} (LIKE ${this.events}) ON COMMIT DELETE ROWS;`;
    try {
      const copy = copyFrom(`BEGIN; ${create} SET LOCAL statement_timeout = ${serverTimeout(remaining())}; COPY ${this.staging} (${COPY_COLUMNS}) FROM STDIN`);
      await pipeline(copySource(batch), client.query(copy));
      const result = await client.query<{ id: string }>(
        `INSERT INTO ${this.events} (${COPY_COLUMNS}) SELECT ${COPY_COLUMNS} FROM ${this.staging} ON CONFLICT DO NOTHING RETURNING id`,
      );
      await client.query('COMMIT');
      this.staged.add(client);
      return result.rows.map((r) => r.id);
    } catch (err) {
      // The staging table may be gone (rolled back with its creating transaction, DISCARD TEMP,
      // a transaction-mode pooler): the next attempt on this connection creates it again.
      this.staged.delete(client);
      throw err;
    }
  }

  /**
   * One autocommit statement. Its server-side limit is the pool's `statement_timeout` (set to
   * the write timeout when the connection opens); our own timer still ends it at the deadline.
   */
  private async writeUnnest(client: pg.PoolClient, events: readonly IngestEvent[]): Promise<string[]> {
    const n = events.length;
    const time = new Array<string>(n);
    const receivedAt = new Array<string>(n);
    const source = new Array<string | null>(n);
    const type = new Array<string | null>(n);
    const service = new Array<string | null>(n);
    const host = new Array<string | null>(n);
    const severity = new Array<string | null>(n);
    const message = new Array<string | null>(n);
    const data = new Array<string>(n);
    const id = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const e = events[i]!;
      time[i] = formatPgTimestamp(e.timeMs, e.timeNanos);
      receivedAt[i] = formatPgTimestamp(e.receivedAtMs, 0);
      source[i] = e.source;
      type[i] = e.type;
      service[i] = e.service;
      host[i] = e.host;
      severity[i] = e.severity;
      message[i] = e.message;
      data[i] = e.dataJson;
      id[i] = e.id;
    }
    const result = await client.query<{ id: string }>(
      `INSERT INTO ${this.events} (${COPY_COLUMNS})
       SELECT * FROM unnest($1::timestamptz[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                            $7::text[], $8::text[], $9::jsonb[], $10::uuid[])
       ON CONFLICT DO NOTHING RETURNING id`,
      [time, receivedAt, source, type, service, host, severity, message, data, id],
    );
    return result.rows.map((r) => r.id);
  }
}

/**
 * Positions of the events not among `insertedIds` (each inserted id taken once, by its first
 * occurrence). An id with two times in one batch is two rows; matching by id alone then may
 * swap which of the two is called the duplicate, never how many there are.
 */
function positionsNotIn(events: readonly IngestEvent[], insertedIds: readonly string[]): number[] {
  const inserted = new Map<string, number>();
  for (const id of insertedIds) inserted.set(id, (inserted.get(id) ?? 0) + 1);
  const positions: number[] = [];
  for (let i = 0; i < events.length; i++) {
    const id = (events[i] as IngestEvent).id;
    const left = inserted.get(id) ?? 0;
    if (left > 0) inserted.set(id, left - 1);
    else positions.push(i);
  }
  return positions;
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof pg.DatabaseError && err.code === UNIQUE_VIOLATION;
}

/**
 * The server-side `statement_timeout` for what is left of the deadline, a little shorter so the
 * server usually cancels first (clean error, connection reusable) before our own timer fires
 * and discards the connection. Never 0, which would mean "no limit".
 */
function serverTimeout(remainingMs: number): number {
  return Math.max(1, Math.floor(remainingMs - Math.min(100, remainingMs / 4)));
}


/** The COPY payload of `events`, in chunks of `ROWS_PER_CHUNK` rows. */
export function* copyChunks(events: readonly IngestEvent[]): Generator<string> {
  for (let start = 0; start < events.length; start += ROWS_PER_CHUNK) {
    yield copyText(events.slice(start, start + ROWS_PER_CHUNK));
  }
}

/** The rows already encoded (the spool's bytes, sent as they are) or, without them, encoded now. */
function copySource(batch: SendBatch): Readable {
  return Readable.from(batch.rows ?? copyChunks(batch.events()));
}
