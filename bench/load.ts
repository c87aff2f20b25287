/**
 * The load: `connections` keep-alive clients, each sending batches back-to-back, like a fleet
 * of edge nodes flushing their spools at once. Rates count requests *completed* inside the
 * measured window [warm-up end, end], so the window is exactly --duration seconds.
 */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BatchPool } from './batch-pool.js';

export interface LoadTarget {
  readonly host: string;
  readonly port: number;
  readonly gzip: boolean;
  readonly token: string | null;
  readonly batchSize: number;
  readonly connections: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /**
   * Open loop: messages/s offered on a fixed schedule (batch i is due at start + i × batch/rate),
   * whatever the answers; null: closed loop (each client sends its next batch when answered).
   * Latency is then counted from the due time, so a send delayed by busy connections counts
   * its wait (no coordinated omission).
   */
  readonly rate?: number | null;
  /**
   * Share of answered batches sent once more, right after their 2xx (a node whose answer was
   * lost on the link): the server must store nothing new and answer them as duplicates. They are
   * counted apart (`resent`), never in `okMessages`. Picked by batch index, deterministically.
   */
  readonly resend?: number;
}

/** Counts for one phase (warm-up + measured = all). */
export interface Counts {
  requests: number;
  ok: number;
  unavailable: number;
  otherStatus: number;
  networkErrors: number;
  okMessages: number;
}

/** What the 200 answers said, summed; a healthy server reports written + duplicates = sent. */
export interface AnswerTotals {
  received: number;
  written: number;
  errors: number;
  tsdbWritten: number;
  tsdbDuplicates: number;
  tsdbErrors: number;
  /** Stored later from the spool: the answer did not wait (the sink was behind, slow or down). */
  tsdbQueued: number;
  unparsable: number;
}

export interface LoadResult {
  /** performance.now() of the first send and of the last answer. */
  readonly firstSendAt: number;
  readonly lastDoneAt: number;
  readonly measuredSeconds: number;
  readonly measured: Counts;
  readonly all: Counts;
  /** Latencies (ms) of requests completed in the measured window, sorted ascending. */
  readonly latenciesMs: Float64Array;
  readonly answers: AnswerTotals;
  /** The resends (see LoadTarget.resend): requests, 2xx, and the duplicates their answers reported. */
  readonly resent: { requests: number; ok: number; duplicates: number; written: number; queued: number };
  /** Batch indices whose request did not get a 2xx (their messages are not "accepted"). */
  readonly failedBatches: number[];
  /** A few distinct non-2xx answers / errors, for the report. */
  readonly samples: string[];
  readonly aborted: boolean;
}

export interface Reply { readonly status: number; readonly body: string; readonly retryAfter: string | undefined }

const REQUEST_TIMEOUT_MS = 30_000;
const MAX_RETRY_AFTER_MS = 1_000;

const newCounts = (): Counts => ({ requests: 0, ok: 0, unavailable: 0, otherStatus: 0, networkErrors: 0, okMessages: 0 });

/** POST /ingest of one body over `agent`; resolves with the answer, rejects on a network error or after 30 s. */
export function ingestPoster(
  agent: http.Agent,
  target: Pick<LoadTarget, 'host' | 'port' | 'gzip' | 'token'>,
): (body: Uint8Array) => Promise<Reply> {
  const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
  if (target.gzip) headers['content-encoding'] = 'gzip';
  if (target.token !== null) headers['authorization'] = `Bearer ${target.token}`;
  return (body) => new Promise((resolve, reject) => {
    const req = http.request({ agent, host: target.host, port: target.port, path: '/ingest', method: 'POST',
      headers: { ...headers, 'content-length': body.byteLength } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const ra = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), retryAfter: ra });
      });
      res.on('error', reject);
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export async function runLoad(
  target: LoadTarget,
  pool: BatchPool,
  signal: AbortSignal,
  onSecond: (secondsIn: number, okMessagesThisSecond: number, all: Counts) => void,
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: target.connections });
  const post = ingestPoster(agent, target);

  const all = newCounts();
  const measured = newCounts();
  const answers = noAnswers();
  const latencies: number[] = [];
  const failedBatches: number[] = [];
  const resent = { requests: 0, ok: 0, duplicates: 0, written: 0, queued: 0 };
  const resendShare = target.resend ?? 0;
  const samples = new Set<string>();
  const firstSendAt = performance.now();
  const warmEnd = firstSendAt + target.warmupMs;
  const endAt = warmEnd + target.durationMs;
  let lastDoneAt = firstSendAt;
  let secondOk = 0;
  let seconds = 0;
  const ticker = setInterval(() => { onSecond(++seconds, secondOk, all); secondOk = 0; }, 1000);

  const count = (c: Counts, status: number | null, messages: number): void => {
    c.requests++;
    if (status === null) c.networkErrors++;
    else if (status >= 200 && status < 300) { c.ok++; c.okMessages += messages; }
    else if (status === 503) c.unavailable++;
    else c.otherStatus++;
  };

  const rate = target.rate ?? null;
  const intervalMs = rate === null ? 0 : (1000 * target.batchSize) / rate;
  let ticket = 0;
  const client = async (): Promise<void> => {
    while (!signal.aborted && performance.now() < endAt) {
      let due: number | null = null;
      if (rate !== null) {
        due = firstSendAt + ticket++ * intervalMs;
        if (due >= endAt) return;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
        if (signal.aborted) return;
      }
      const batch = await pool.next();
      if (batch === null) return;
      const t0 = due ?? performance.now();
      let reply: Reply | null = null;
      try { reply = await post(batch.body); } catch (err) {
        if (samples.size < 5) samples.add(`network: ${err instanceof Error ? err.message : String(err)}`);
      }
      const t1 = performance.now();
      const status = reply?.status ?? null;
      const ok = status !== null && status >= 200 && status < 300;
      count(all, status, target.batchSize);
      if (t1 >= warmEnd && t1 <= endAt) { count(measured, status, target.batchSize); latencies.push(t1 - t0); }
      lastDoneAt = Math.max(lastDoneAt, t1);
      if (ok && reply !== null) {
        secondOk += target.batchSize;
        addAnswer(answers, reply.body);
        // Golden-ratio spacing spreads the resent batches evenly over the indexes.
        if (resendShare > 0 && (batch.index * 0.6180339887) % 1 < resendShare) {
          const t2 = performance.now();
          resent.requests++;
          const again = await post(batch.body).catch(() => null);
          const t3 = performance.now();
          if (t3 >= warmEnd && t3 <= endAt) latencies.push(t3 - t2);
          lastDoneAt = Math.max(lastDoneAt, t3);
          if (again !== null && again.status >= 200 && again.status < 300) {
            resent.ok++;
            const totals = noAnswers();
            addAnswer(totals, again.body);
            resent.duplicates += totals.tsdbDuplicates;
            resent.written += totals.tsdbWritten;
            resent.queued += totals.tsdbQueued;
          }
        }
        continue;
      }
      failedBatches.push(batch.index);
      if (reply !== null && samples.size < 5) samples.add(`${reply.status}: ${reply.body.slice(0, 200)}`);
      // Back off like a node would: honour Retry-After (capped so the run stays bounded), and
      // do not spin on a dead socket. The failed batch is not resent: it is simply not accepted.
      const waitMs = Math.min(status === 503 || status === 429 ? retryAfterMs(reply?.retryAfter) : 100, endAt - performance.now());
      if (waitMs > 0) await sleep(waitMs, undefined, { signal }).catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: target.connections }, client));
  clearInterval(ticker);
  agent.destroy();

  // The window ends at the deadline, or earlier when the --messages cap ran out.
  const measuredEnd = Math.min(endAt, performance.now());
  const sorted = Float64Array.from(latencies).sort();
  return {
    firstSendAt, lastDoneAt,
    measuredSeconds: Math.max(0, measuredEnd - warmEnd) / 1000,
    measured, all, latenciesMs: sorted, answers, resent, failedBatches, samples: [...samples], aborted: signal.aborted,
  };
}

function noAnswers(): AnswerTotals {
  return { received: 0, written: 0, errors: 0, tsdbWritten: 0, tsdbDuplicates: 0, tsdbErrors: 0, tsdbQueued: 0, unparsable: 0 };
}

function addAnswer(t: AnswerTotals, body: string): void {
  try {
    const a = JSON.parse(body) as { received?: unknown; written?: unknown; errors?: unknown;
      sink_results?: { tsdb?: { written?: unknown; duplicates?: unknown; errors?: unknown; queued?: unknown } } };
    const n = (v: unknown): number => (typeof v === 'number' ? v : 0);
    t.received += n(a.received);
    t.written += n(a.written);
    t.errors += n(a.errors);
    t.tsdbWritten += n(a.sink_results?.tsdb?.written);
    t.tsdbDuplicates += n(a.sink_results?.tsdb?.duplicates);
    t.tsdbErrors += n(a.sink_results?.tsdb?.errors);
    t.tsdbQueued += n(a.sink_results?.tsdb?.queued);
  } catch {
    t.unparsable++;
  }
}

function retryAfterMs(header: string | undefined): number {
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(MAX_RETRY_AFTER_MS, seconds * 1000) : MAX_RETRY_AFTER_MS;
}

/** Value at quantile q (0..1) of an ascending array; NaN when empty. */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}
