/**
 * A real Grafana Loki for the tests, when there is one: its base URL comes from TEST_LOKI_URL
 * (`.ci/run` starts Loki 3.4.6 and sets it; a clone without it skips these tests and says so).
 * Plus what the tests need to read back what Loki stored: query_range (polled with a deadline,
 * as entries are queryable from the ingester shortly after the push), labels, label values.
 *
 * The real Loki keeps its data across runs and tests: every test writes under label values of
 * its own (`uniqueName`) and reads back only those. Its queries read the ingesters for the last
 * 3 hours only (query_ingesters_within): an entry older than that cannot be read back until it
 * is flushed to the store, so tests keep what they read back within the last two hours. A run
 * of the suite opens some 200 streams; Loki keeps at most 5000 active streams per tenant by
 * default, and drops a stream from memory some 30 minutes after its last entry.
 */

import { after, before } from 'node:test';
import { LokiStandin, type StandinOptions } from './loki-standin.js';

export const LOKI_URL_VARIABLE = 'TEST_LOKI_URL';

export interface RealLoki {
  /** Base URL (what LOKI_URL would be); '' when there is none. */
  readonly url: string;
  /** Why the tests against it are skipped, or false when it answers /ready. */
  readonly skip: string | false;
}

/** One entry as Loki gives it back: stream labels, exact time, line, structured metadata. */
export interface SeenEntry {
  readonly labels: Readonly<Record<string, string>>;
  readonly tsNs: bigint;
  readonly line: string;
  readonly metadata: Readonly<Record<string, string>>;
}

export interface TimeRange {
  readonly startMs: number;
  readonly endMs: number;
}

const READY_WAIT_MS = 20_000;

let probed: Promise<RealLoki> | null = null;

/**
 * TEST_LOKI_URL and whether it answers /ready (Loki answers 503 for about 15 s after it starts:
 * waits up to 20 s for a 200). Probed once per process. When skipped, logs one line saying why.
 */
export function realLoki(): Promise<RealLoki> {
  probed ??= probe().then((result) => {
    if (result.skip !== false) console.log(result.skip);
    return result;
  });
  return probed;
}

async function probe(): Promise<RealLoki> {
  const raw = process.env[LOKI_URL_VARIABLE]?.trim() ?? '';
  if (raw === '') return { url: '', skip: `${LOKI_URL_VARIABLE} is not set: the tests against a real Grafana Loki are skipped (set it to a Loki base URL, e.g. http://127.0.0.1:3100)` };
  const url = raw.replace(/\/+$/, '');
  const deadline = Date.now() + READY_WAIT_MS;
  let last = '';
  for (;;) {
    try {
      const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2000) });
      const text = (await res.text()).trim();
      if (res.status === 200) return { url, skip: false };
      last = `/ready answered ${res.status} ${text.slice(0, 120)}`;
    } catch (err) {
      last = `unreachable (${(err as Error).message})`;
    }
    if (Date.now() > deadline) return { url, skip: `${LOKI_URL_VARIABLE}=${url}: Loki is not ready after ${READY_WAIT_MS / 1000} s (${last}): the tests against a real Grafana Loki are skipped` };
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A label value no other test or run uses: `prefix-<time>-<random>`. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

const ns = (ms: number): string => (BigInt(Math.floor(ms)) * 1_000_000n).toString();

interface QueryAnswer {
  status?: string;
  data?: { resultType?: string; result?: Array<{ stream?: Record<string, string>; values?: Array<[string, string, { structuredMetadata?: Record<string, string> }?]> }> };
}

/**
 * `/loki/api/v1/query_range` for a log selector, oldest first, at most `limit` entries (Loki's
 * own cap is 5000). With `categorize-labels`, so structured metadata comes apart from the
 * stream labels (without it Loki 3 merges them into the stream).
 */
export async function queryRange(url: string, selector: string, range: TimeRange, limit = 5000): Promise<SeenEntry[]> {
  const query = new URL(`${url}/loki/api/v1/query_range`);
  query.searchParams.set('query', selector);
  query.searchParams.set('start', ns(range.startMs));
  query.searchParams.set('end', ns(range.endMs));
  query.searchParams.set('limit', String(limit));
  query.searchParams.set('direction', 'forward');
  const res = await fetch(query, { headers: { 'X-Loki-Response-Encoding-Flags': 'categorize-labels' }, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`query_range ${selector}: ${res.status} ${text.slice(0, 300)}`);
  const answer = JSON.parse(text) as QueryAnswer;
  if (answer.status !== 'success' || answer.data?.resultType !== 'streams') throw new Error(`query_range ${selector}: unexpected answer ${text.slice(0, 300)}`);
  const out: SeenEntry[] = [];
  for (const stream of answer.data.result ?? []) {
    for (const [ts, line, extra] of stream.values ?? []) {
      out.push({ labels: stream.stream ?? {}, tsNs: BigInt(ts), line, metadata: extra?.structuredMetadata ?? {} });
    }
  }
  out.sort((a, b) => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : 0));
  if (out.length >= limit) throw new Error(`query_range ${selector}: ${out.length} entries reach the limit ${limit}; narrow the query`);
  return out;
}

/**
 * Polls query_range until at least `count` entries are there (or the deadline passes), and
 * returns what is there then: the caller asserts the exact number, so an entry too many (a
 * duplicate) fails as surely as one too few.
 */
export async function waitForEntries(url: string, selector: string, range: TimeRange, count: number, timeoutMs = 10_000): Promise<SeenEntry[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const entries = await queryRange(url, selector, range);
    if (entries.length >= count || Date.now() > deadline) return entries;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function getData(url: string): Promise<string[]> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${text.slice(0, 300)}`);
  const answer = JSON.parse(text) as { status?: string; data?: unknown };
  if (answer.status !== 'success' || !Array.isArray(answer.data)) throw new Error(`${url}: unexpected answer ${text.slice(0, 300)}`);
  return (answer.data as unknown[]).filter((v): v is string => typeof v === 'string').sort();
}

function labelsUrl(base: string, path: string, range: TimeRange, selector: string | undefined): string {
  const url = new URL(`${base}${path}`);
  url.searchParams.set('start', ns(range.startMs));
  url.searchParams.set('end', ns(range.endMs));
  if (selector !== undefined) url.searchParams.set('query', selector);
  return url.toString();
}

/** `/loki/api/v1/labels`: label names of the streams matching `selector` (all streams without one). */
export function labelNames(url: string, range: TimeRange, selector?: string): Promise<string[]> {
  return getData(labelsUrl(url, '/loki/api/v1/labels', range, selector));
}

/** `/loki/api/v1/label/<name>/values`, of the streams matching `selector` when given. */
export function labelValues(url: string, name: string, range: TimeRange, selector?: string): Promise<string[]> {
  return getData(labelsUrl(url, `/loki/api/v1/label/${encodeURIComponent(name)}/values`, range, selector));
}

/** A LogQL stream selector matching exactly these labels (values escaped). */
export function selectorOf(labels: Readonly<Record<string, string>>): string {
  return `{${Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}}`;
}

/** A Loki to run a suite against: our stand-in, or the real one. */
export interface LokiTarget {
  readonly name: string;
  /** Why the suite is skipped on this target, or false. */
  readonly skip: string | false;
  /** Base URL (inside tests). */
  url(): string;
  /** The stand-in, when this target is it (for what only it can tell: pushes, faults). */
  standin(): LokiStandin | null;
  /**
   * Entries of the streams with all of `labels` in `range`, oldest first. With `count`, waits
   * (bounded) until there are at least that many.
   */
  read(labels: Readonly<Record<string, string>>, range: TimeRange, count?: number): Promise<SeenEntry[]>;
}

/**
 * The targets of a suite: a stand-in (started before the file's tests, closed after, on the real
 * clock) and the real Loki of TEST_LOKI_URL (skipped when there is none). Call at the top level
 * of a test file, after `await realLoki()`.
 */
export function lokiTargets(real: RealLoki, options: StandinOptions = {}): LokiTarget[] {
  let standin: LokiStandin | null = null;
  before(async () => {
    standin = await LokiStandin.start(options);
  });
  after(async () => {
    await standin?.close();
  });
  const started = (): LokiStandin => {
    if (standin === null) throw new Error('the stand-in runs inside tests only');
    return standin;
  };
  return [
    {
      name: 'the stand-in',
      skip: false,
      url: () => started().url,
      standin: () => started(),
      read: async (labels, range) => {
        const lo = BigInt(Math.floor(range.startMs)) * 1_000_000n;
        const hi = BigInt(Math.floor(range.endMs)) * 1_000_000n;
        return started()
          .entries()
          .filter((e) => e.tsNs >= lo && e.tsNs <= hi && Object.entries(labels).every(([k, v]) => e.labels[k] === v))
          .map((e) => ({ labels: e.labels, tsNs: e.tsNs, line: e.line, metadata: e.metadata }))
          .sort((a, b) => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : 0));
      },
    },
    {
      name: 'a real Loki',
      skip: real.skip,
      url: () => real.url,
      standin: () => null,
      read: (labels, range, count) => (count === undefined ? queryRange(real.url, selectorOf(labels), range) : waitForEntries(real.url, selectorOf(labels), range, count)),
    },
  ];
}
