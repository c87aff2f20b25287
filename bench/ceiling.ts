/**
 * The raw COPY ceiling: how fast this PostgreSQL takes the same rows with no server in between.
 * One connection, one COPY (text format) per chunk of rows, chunks sent one after another,
 * into a copy of the events table with all its indexes, then into one with none. Only the
 * COPY statements are timed; each chunk's text is built before its statement starts, with the
 * server's own normalization and encoder, so the rows are the ones the server writes.
 *
 * When the server's events table is a TimescaleDB hypertable, both copies are hypertables with
 * its chunk interval (rows routed to chunks, indexes per chunk): COPY into a plain table would
 * be a ceiling the server could never reach. The policies (compression, retention) are not
 * copied: they run as background jobs, not in the insert. Nor is the events_per_minute continuous
 * aggregate: whatever it adds to an insert (invalidation tracking) is in the server's figure only.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { parseEnvelope } from '../src/pipeline/envelope.js';
import { normalizeBatch } from '../src/pipeline/normalize.js';
import { COPY_COLUMNS, copyText as rowsOf } from '../src/pipeline/copy-text.js';
import { ident, type Db } from './db.js';
import { batchEnvelope, type RunSpec, type Samples } from './payloads.js';

export interface CopyFigure { readonly rows: number; readonly seconds: number; readonly rowsPerSecond: number }
/** The shape of the ceiling tables: plain, or hypertables like the server's (TimescaleDB mode). */
export type CeilingTable =
  | { readonly kind: 'plain' }
  | { readonly kind: 'hypertable'; readonly chunkInterval: string; readonly timescaledb: string };
export interface Ceiling { readonly indexed: CopyFigure; readonly noIndex: CopyFigure; readonly table: CeilingTable }

export async function copyCeiling(
  db: Db, sourceSchema: string, ceilingSchema: string, rows: number, chunkRows: number,
  samples: Samples, run: RunSpec, signal: AbortSignal,
): Promise<Ceiling> {
  const s = ident(ceilingSchema);
  const src = `${ident(sourceSchema)}.events`;
  const hyper = await hypertableOf(db, sourceSchema);
  await db.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
  // INCLUDING ALL copies the source's indexes, its time index too: the hypertables get no default one.
  await db.query(`CREATE TABLE ${s}.events (LIKE ${src} INCLUDING ALL)`);
  await db.query(`CREATE TABLE ${s}.events_noindex (LIKE ${src} INCLUDING DEFAULTS)`);
  if (hyper !== null) {
    for (const table of ['events', 'events_noindex']) {
      await db.query(
        `SELECT ${ident(hyper.schema)}.create_hypertable($1::regclass, 'time', chunk_time_interval => $2::interval, create_default_indexes => false)`,
        [`${s}.${table}`, hyper.chunkInterval],
      );
    }
  }
  const indexed = await copyRows(db, `${s}.events`, rows, chunkRows, samples, run, signal);
  const noIndex = await copyRows(db, `${s}.events_noindex`, rows, chunkRows, samples, run, signal);
  const table: CeilingTable = hyper === null ? { kind: 'plain' } : { kind: 'hypertable', chunkInterval: hyper.chunkInterval, timescaledb: hyper.version };
  return { indexed, noIndex, table };
}

/**
 * The source events table's hypertable settings, or null when it is a plain table. Asks the
 * catalog first: the `timescaledb_information` views call into the library, which ends the
 * session on a server where the extension is installed but not preloaded.
 */
async function hypertableOf(db: Db, schema: string): Promise<{ schema: string; version: string; chunkInterval: string } | null> {
  const ext = await db.query<{ schema: string; version: string }>(
    `SELECT n.nspname AS schema, e.extversion AS version FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'timescaledb'`,
  );
  const found = ext.rows[0];
  if (found === undefined) return null;
  const catalog = await db.query(`SELECT 1 FROM _timescaledb_catalog.hypertable WHERE schema_name = $1 AND table_name = 'events'`, [schema]);
  if ((catalog.rowCount ?? 0) === 0) return null;
  const dim = await db.query<{ interval: string | null }>(
    `SELECT time_interval::text AS interval FROM timescaledb_information.dimensions
      WHERE hypertable_schema = $1 AND hypertable_name = 'events' AND column_name = 'time'`,
    [schema],
  );
  const chunkInterval = dim.rows[0]?.interval;
  if (chunkInterval === undefined || chunkInterval === null) throw new Error(`COPY ceiling: ${schema}.events is a hypertable without a time dimension`);
  return { schema: found.schema, version: found.version, chunkInterval };
}

async function copyRows(
  db: Db, table: string, rows: number, chunkRows: number, samples: Samples, run: RunSpec, signal: AbortSignal,
): Promise<CopyFigure> {
  let copyMs = 0;
  let done = 0;
  const batchesPerCopy = Math.max(1, Math.round(chunkRows / run.batchSize));
  const receivedAtMs = Date.now();
  for (let index = 0; done < rows && !signal.aborted; index += batchesPerCopy) {
    const batches = Math.min(batchesPerCopy, Math.ceil((rows - done) / run.batchSize));
    const text = copyText(samples, run, index, batches, receivedAtMs);
    const t0 = performance.now();
    await pipeline(Readable.from([text]), db.query(copyFrom(`COPY ${table} (${COPY_COLUMNS}) FROM STDIN`)));
    copyMs += performance.now() - t0;
    done += batches * run.batchSize;
  }
  const seconds = copyMs / 1000;
  return { rows: done, seconds, rowsPerSecond: seconds > 0 ? done / seconds : 0 };
}

/**
 * Batches first…first+count-1 of the run, turned into rows by the server's own envelope parser,
 * normalization and COPY encoder: the very rows the server writes for them.
 */
function copyText(samples: Samples, run: RunSpec, first: number, count: number, receivedAtMs: number): string {
  let text = '';
  for (let index = first; index < first + count; index++) {
    const envelope = parseEnvelope(batchEnvelope(samples, run, index), { maxMessagesPerBatch: run.batchSize });
    text += rowsOf(normalizeBatch(envelope, { receivedAtMs, idempotencyKey: null, maxJsonDepth: 64 }).events);
  }
  return text;
}
