/**
 * The raw COPY ceiling: how fast this PostgreSQL takes the same rows with no server in between.
 * One connection, one COPY (text format) per chunk of rows, chunks sent one after another,
 * into a copy of the events table with all its indexes, then into one with none. Only the
 * COPY statements are timed; each chunk's text is built before its statement starts, with the
 * server's own normalization and encoder, so the rows are the ones the server writes.
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
export interface Ceiling { readonly indexed: CopyFigure; readonly noIndex: CopyFigure }

export async function copyCeiling(
  db: Db, sourceSchema: string, ceilingSchema: string, rows: number, chunkRows: number,
  samples: Samples, run: RunSpec, signal: AbortSignal,
): Promise<Ceiling> {
  const s = ident(ceilingSchema);
  const src = `${ident(sourceSchema)}.events`;
  await db.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
  await db.query(`CREATE TABLE ${s}.events (LIKE ${src} INCLUDING ALL)`);
  await db.query(`CREATE TABLE ${s}.events_noindex (LIKE ${src} INCLUDING DEFAULTS)`);
  const indexed = await copyRows(db, `${s}.events`, rows, chunkRows, samples, run, signal);
  const noIndex = await copyRows(db, `${s}.events_noindex`, rows, chunkRows, samples, run, signal);
  return { indexed, noIndex };
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
