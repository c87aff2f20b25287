import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';

const gzip = promisify(gzipCb);

export interface SendOptions {
  readonly url: string;
  readonly token: string | null;
  readonly source: string;
  readonly batchSize: number;
  /** Give up on one batch after this long (retrying 429/503/network errors meanwhile). */
  readonly maxRetryMs: number;
  readonly progress: (line: string) => void;
  readonly fetch?: typeof fetch;
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface SendSummary {
  files: number;
  messages: number;
  batches: number;
  accepted: number;
  rejected: number;
  duplicates: number;
}

/**
 * Ships files to a mothership as EdgeBot batches (the backfill after an outage): JSON Lines,
 * a JSON array (or an envelope with "messages"), or CSV with a header row. Batches are gzip'd and
 * retried on 429/503/network errors with backoff and Retry-After; resending is always safe.
 */
export async function sendFiles(files: readonly string[], options: SendOptions): Promise<SendSummary> {
  const summary: SendSummary = { files: 0, messages: 0, batches: 0, accepted: 0, rejected: 0, duplicates: 0 };
  for (const file of files) {
    const messages = parseFile(file, await readFile(file, 'utf8'));
    summary.files++;
    for (let start = 0; start < messages.length; start += options.batchSize) {
      const batch = messages.slice(start, start + options.batchSize);
      const answer = await sendBatch(batch, options);
      summary.batches++;
      summary.messages += batch.length;
      summary.accepted += answer.written;
      summary.rejected += answer.errors;
      summary.duplicates += answer.duplicates;
      options.progress(`${path.basename(file)}: ${Math.min(start + batch.length, messages.length)}/${messages.length} messages`);
    }
  }
  return summary;
}

export function parseFile(file: string, text: string): unknown[] {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return parseCsv(text);
  if (ext === '.json') {
    const parsed = JSON.parse(text) as unknown;
    if (Array.isArray(parsed)) return parsed;
    if (parsed !== null && typeof parsed === 'object' && Array.isArray((parsed as { messages?: unknown }).messages)) return (parsed as { messages: unknown[] }).messages;
    return [parsed];
  }
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as unknown;
      } catch (err) {
        throw new Error(`${file}:${i + 1}: not JSON (${(err as Error).message})`);
      }
    });
}

/** CSV with a header row; numbers become numbers; quoted fields with "" escapes are handled. */
export function parseCsv(text: string): Array<Record<string, unknown>> {
  const rows = csvRows(text);
  const header = rows.shift() ?? [];
  return rows
    .filter((r) => r.length > 1 || (r[0] ?? '') !== '')
    .map((r) => {
      const message: Record<string, unknown> = {};
      header.forEach((name, i) => {
        const cell = r[i] ?? '';
        const n = Number(cell);
        message[name] = cell !== '' && Number.isFinite(n) ? n : cell;
      });
      return message;
    });
}

function csvRows(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

interface BatchAnswer {
  written: number;
  errors: number;
  duplicates: number;
}

async function sendBatch(messages: unknown[], options: SendOptions): Promise<BatchAnswer> {
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const body = await gzip(JSON.stringify({ messages, batch_size: messages.length, timestamp: new Date().toISOString(), source: options.source, is_retry: false }));
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-encoding': 'gzip' };
  if (options.token !== null) headers.authorization = `Bearer ${options.token}`;
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    let retryAfterMs = 0;
    let problem: string;
    try {
      const res = await doFetch(`${options.url.replace(/\/+$/, '')}/ingest`, { method: 'POST', headers, body });
      const text = await res.text();
      if (res.status === 200) {
        const answer = JSON.parse(text) as { written: number; errors: number; sink_results?: Record<string, { duplicates?: number }> };
        const duplicates = Math.max(0, ...Object.values(answer.sink_results ?? {}).map((r) => r.duplicates ?? 0));
        return { written: answer.written, errors: answer.errors, duplicates };
      }
      if (res.status !== 429 && res.status !== 503) throw new Error(`the mothership refused a batch with ${res.status}: ${text.slice(0, 300)}`);
      retryAfterMs = 1000 * Number(res.headers.get('retry-after') ?? '0');
      problem = `${res.status}`;
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('the mothership refused')) throw err;
      problem = (err as Error).message;
    }
    if (Date.now() - started > options.maxRetryMs) throw new Error(`gave up on a batch after ${Math.round((Date.now() - started) / 1000)} s: ${problem}`);
    const backoff = Math.min(30_000, 500 * 2 ** attempt) * Math.random();
    options.progress(`retrying (${problem})`);
    await sleep(Math.max(retryAfterMs, backoff));
  }
}
