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
  /** Give up on one batch after this long (retrying 429/503/network errors meanwhile); 0: no retries. */
  readonly maxRetryMs: number;
  /** All the messages in `files` (from `countMessages`), for progress; null when not counted. */
  readonly total?: number | null;
  /** Called after every batch and before every retry. */
  readonly onProgress?: (progress: SendProgress) => void;
  /** Called for each message the mothership rejected (its number is 1-based within its file). */
  readonly onRejected?: (rejection: SendRejection) => void;
  readonly fetch?: typeof fetch;
  readonly sleep?: (ms: number) => Promise<void>;
  /** The clock (ms) for the retry budget and progress; Date.now by default. */
  readonly now?: () => number;
  /** For the backoff's jitter; Math.random by default. */
  readonly random?: () => number;
}

export interface SendSummary {
  files: number;
  messages: number;
  batches: number;
  accepted: number;
  rejected: number;
  duplicates: number;
  /** Batches sent again after a 429, a 503 or a network error. */
  retries: number;
}

/** Where a send is: what progress lines are drawn from (see progress.ts). */
export interface SendProgress {
  /** The file being sent, as given. */
  readonly file: string;
  readonly messagesSent: number;
  readonly messagesTotal: number | null;
  readonly batches: number;
  readonly retries: number;
  /** When the send started, on the `now` clock. */
  readonly startedAt: number;
  /** While waiting to send a batch again: why (a status or a network error); else null. */
  readonly retrying: string | null;
}

export interface SendRejection {
  readonly file: string;
  /** 1-based, within the file. */
  readonly message: number;
  /** 0-based, within its batch (what the server's detail counts in). */
  readonly index: number;
  readonly error: string;
  readonly detail: string;
}

/** A file that cannot be read or parsed; nothing is sent when `countMessages` finds one. */
export class InputError extends Error {
  constructor(
    message: string,
    /** The file is missing or unreadable (not: it is there, but not valid JSON/CSV). */
    readonly unreadable: boolean,
  ) {
    super(message);
    this.name = 'InputError';
  }
}

/** A batch could not be delivered; `summary` says what was sent before. */
export class SendFailed extends Error {
  constructor(
    message: string,
    readonly summary: SendSummary,
  ) {
    super(message);
    this.name = 'SendFailed';
  }
}

/** Reads and parses every file once, so that a bad one is found before anything is sent; the total of messages. */
export async function countMessages(files: readonly string[]): Promise<number> {
  let total = 0;
  for (const file of files) total += (await readMessages(file)).length;
  return total;
}

async function readMessages(file: string): Promise<unknown[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new InputError(`cannot read '${file}': ${why}`, true);
  }
  try {
    return parseFile(file, text);
  } catch (err) {
    const message = (err as Error).message;
    throw new InputError(message.startsWith(`${file}:`) ? message : `${file}: ${message}`, false);
  }
}

/**
 * Ships files to a mothership as EdgeBot batches (the backfill after an outage): JSON Lines,
 * a JSON array (or an envelope with "messages"), or CSV with a header row. Batches are gzip'd and
 * retried on 429/503/network errors with backoff and Retry-After; resending is always safe.
 * Throws SendFailed (with the summary so far) when a batch is refused or the retry budget runs out.
 */
export async function sendFiles(files: readonly string[], options: SendOptions): Promise<SendSummary> {
  const now = options.now ?? Date.now;
  const summary: SendSummary = { files: 0, messages: 0, batches: 0, accepted: 0, rejected: 0, duplicates: 0, retries: 0 };
  const startedAt = now();
  let file = files[0] ?? '';
  const report = (retrying: string | null): void =>
    options.onProgress?.({ file, messagesSent: summary.messages, messagesTotal: options.total ?? null, batches: summary.batches, retries: summary.retries, startedAt, retrying });
  report(null);
  for (file of files) {
    const messages = await readMessages(file);
    summary.files++;
    for (let start = 0; start < messages.length; start += options.batchSize) {
      const batch = messages.slice(start, start + options.batchSize);
      let answer: BatchAnswer;
      try {
        answer = await sendBatch(batch, options, now, (problem) => {
          summary.retries++;
          report(problem);
        });
      } catch (err) {
        throw new SendFailed(`${path.basename(file)}, messages ${start + 1}-${start + batch.length}: ${(err as Error).message}`, { ...summary });
      }
      summary.batches++;
      summary.messages += batch.length;
      summary.accepted += answer.written;
      summary.rejected += answer.errors;
      summary.duplicates += answer.duplicates;
      for (const r of answer.rejected) options.onRejected?.({ file, message: start + r.index + 1, index: r.index, error: r.error, detail: r.message });
      report(null);
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
  rejected: Array<{ index: number; error: string; message: string }>;
}

async function sendBatch(messages: unknown[], options: SendOptions, now: () => number, onRetry: (problem: string) => void): Promise<BatchAnswer> {
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = options.random ?? Math.random;
  const body = await gzip(JSON.stringify({ messages, batch_size: messages.length, timestamp: new Date().toISOString(), source: options.source, is_retry: false }));
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-encoding': 'gzip' };
  if (options.token !== null) headers.authorization = `Bearer ${options.token}`;
  const url = `${options.url.replace(/\/+$/, '')}/ingest`;
  const started = now();
  for (let attempt = 0; ; attempt++) {
    let retryAfterMs = 0;
    let problem = '';
    let res: Response | null = null;
    try {
      res = await doFetch(url, { method: 'POST', headers, body });
    } catch (err) {
      problem = networkProblem(err);
    }
    if (res !== null) {
      const text = await res.text();
      if (res.status === 200) {
        const answer = JSON.parse(text) as { written: number; errors: number; rejected?: BatchAnswer['rejected']; sink_results?: Record<string, { duplicates?: number }> };
        const duplicates = Math.max(0, ...Object.values(answer.sink_results ?? {}).map((r) => r.duplicates ?? 0));
        return { written: answer.written, errors: answer.errors, duplicates, rejected: answer.rejected ?? [] };
      }
      if (res.status !== 429 && res.status !== 503) throw new Error(refusal(res.status, text));
      retryAfterMs = 1000 * (Number(res.headers.get('retry-after') ?? '0') || 0);
      problem = `${res.status} ${errorCode(text) ?? ''}`.trim();
    }
    const elapsed = now() - started;
    const left = options.maxRetryMs - elapsed;
    if (left <= 0) {
      const tries = attempt === 0 ? 'no retries allowed' : `gave up after ${attempt} ${attempt === 1 ? 'retry' : 'retries'} in ${elapsed < 10_000 ? (elapsed / 1000).toFixed(1) : Math.round(elapsed / 1000)} s`;
      throw new Error(`could not deliver to ${options.url} (${tries}): ${problem}`);
    }
    const backoff = Math.min(30_000, 500 * 2 ** attempt) * random();
    onRetry(problem);
    await sleep(Math.min(left, Math.max(retryAfterMs, backoff)));
  }
}

/** `fetch failed` says nothing; its cause (ECONNREFUSED, ENOTFOUND, a TLS error) does. */
function networkProblem(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (cause.message !== '') return cause.message;
    if (code !== undefined) return code;
  }
  return err.message;
}

function errorCode(text: string): string | null {
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    return typeof parsed.error === 'string' ? parsed.error : null;
  } catch {
    return null;
  }
}

function refusal(status: number, text: string): string {
  let detail = text.slice(0, 300);
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof parsed.error === 'string') detail = typeof parsed.message === 'string' ? `${parsed.error}: ${parsed.message}` : parsed.error;
  } catch {
    // not JSON: the text as it came
  }
  const hint = status === 401 ? ' (pass --token or set AUTH_TOKEN)' : status === 413 ? ' (try a smaller --batch)' : '';
  return `the mothership refused the batch with ${status}: ${detail}${hint}`;
}
