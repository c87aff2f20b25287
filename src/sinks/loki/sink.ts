import type { LokiConfig } from '../../config/config.js';
import { MothershipError } from '../../lib/errors.js';
import type { IngestEvent } from '../../pipeline/event.js';
import type { Logger } from '../../telemetry/logger.js';
import type { SendBatch, SendOutcome, Sink, SinkHealth } from '../sink.js';
import { bodyExcerpt, classifyAnswer } from './answer.js';
import { entryBytes, groupStreams, planPushes, type LokiEntry } from './batch.js';
import { encodePush } from './encode.js';
import { HEALTH_TIMEOUT_MS, probeReady } from './health.js';
import { exchange, resolveTarget, type FetchLike, type LokiTarget } from './http.js';
import { LabelPolicy } from './labels.js';
import { buildEntryContent, type LineOptions } from './line.js';
import { mapRejections, type SentStream } from './rejections.js';
import { StreamHeads } from './stream-heads.js';

export interface LokiSinkDeps {
  /** Wall clock (ms since the epoch) for the age filter and Retry-After dates. */
  readonly now?: () => number;
  /** Defaults to the global fetch (undici). */
  readonly fetch?: FetchLike;
}

/** Running totals since start-up, for /metrics. */
export interface LokiCounters {
  /** Pushes Loki answered 2xx or 400 (partly stored). */
  readonly pushes: number;
  /** Entries Loki stored (accepted in those pushes). */
  readonly entriesStored: number;
  /** Entries Loki refused for good (they go to the dead letters). */
  readonly entriesRefused: number;
  /** Events older than LOKI_MAX_AGE_HOURS: not pushed, reported delivered (they are in PostgreSQL). */
  readonly skippedTooOld: number;
  readonly truncatedLines: number;
  /** Pushes split in two after a 413 or a 400 that named no entries. */
  readonly splitPushes: number;
  /** Pushes that failed in a retryable way (429, 5xx, network, timeout). */
  readonly retryableFailures: number;
  readonly rateLimited: number;
  /** Label values not made labels because their label was over budget, per label. */
  readonly overBudget: Readonly<Record<string, number>>;
}

export interface LokiSink extends Sink {
  readonly name: 'loki';
  readonly counters: LokiCounters;
  describe(): Readonly<Record<string, unknown>>;
}

type Rejection = { readonly position: number; readonly error: MothershipError };
/** Records the final answer for a pushed part: `rejected` entries refused, the others stored. */
type Settle = (entries: readonly LokiEntry[], rejected: readonly Rejection[]) => void;
type PushResult =
  | { readonly kind: 'done'; readonly rejected: readonly Rejection[] }
  | { readonly kind: 'retry'; readonly error: MothershipError; readonly retryAfterMs?: number };

const MAX_REASON_CHARS = 500;

/**
 * The Loki sink: turns events into stream entries (labels from an allow-list with a value
 * budget, a JSON or message line, optional structured metadata), pushes them in batches bounded
 * by count and bytes, and classifies Loki's answers. Retries, backoff, the circuit breaker and
 * dead letters belong to the SinkWorker that drives it.
 */
export function createLokiSink(config: LokiConfig, logger: Logger, deps: LokiSinkDeps = {}): LokiSink {
  const now = deps.now ?? Date.now;
  const fetchFn: FetchLike = deps.fetch ?? ((input, init) => fetch(input, init));
  const log = logger.child({ sink: 'loki' });
  const target: LokiTarget = resolveTarget(config);
  const stopper = new AbortController();
  let stopping: Promise<void> | null = null;
  const lineOptions: LineOptions = { format: config.lineFormat, maxLineBytes: config.maxLineBytes, structuredMetadata: config.structuredMetadata };
  const policy = new LabelPolicy({ fields: config.labels, staticLabels: config.staticLabels, maxValuesPerLabel: config.maxLabelValues }, ({ label, limit }) => {
    if (label === 'source') {
      log.warn({ label, limit }, `loki: more than ${limit} distinct sources; source stays a label (each edge node keeps its own streams)`);
    } else {
      log.warn({ label, limit }, `loki: label "${label}" reached ${limit} distinct values; new values stay in the line and are not made labels (LOKI_MAX_LABEL_VALUES)`);
    }
  });
  const counts = { pushes: 0, entriesStored: 0, entriesRefused: 0, skippedTooOld: 0, truncatedLines: 0, splitPushes: 0, retryableFailures: 0, rateLimited: 0 };
  let loggedSkip = false;
  // What became of events already handled in this process. The worker retries a send with the
  // very same event objects, so a retry resumes where the last attempt stopped: entries Loki
  // stored are not pushed again, refused ones keep their answer. (After a restart the spool
  // holds new objects; a resend is then an exact duplicate, which Loki drops — unless it is more
  // than an hour behind the newest entry of its stream: Loki then refuses it as too far behind,
  // and it is dead-lettered although Loki has it.) Weak: no growth.
  const settled = new WeakMap<IngestEvent, MothershipError | null>();
  const heads = new StreamHeads();

  function toEntries(events: readonly IngestEvent[]): LokiEntry[] {
    const cutoff = config.maxAgeMs > 0 ? now() - config.maxAgeMs : Number.NEGATIVE_INFINITY;
    const entries: LokiEntry[] = [];
    let skipped = 0;
    for (let position = 0; position < events.length; position++) {
      const event = events[position] as IngestEvent;
      if (settled.has(event)) continue;
      if (event.timeMs < cutoff) {
        settled.set(event, null);
        skipped++;
        continue;
      }
      const labels = policy.labelsFor(event);
      const content = buildEntryContent(event, labels.carried, lineOptions);
      if (content.truncated) counts.truncatedLines++;
      entries.push({
        position,
        labelsText: labels.text,
        labels: labels.pairs,
        timeMs: event.timeMs,
        timeNanos: event.timeNanos,
        line: content.line,
        metadata: content.metadata,
        bytes: entryBytes(labels.text, content.line, content.metadata),
      });
    }
    if (skipped > 0) {
      counts.skippedTooOld += skipped;
      const fields = { skipped, maxAgeHours: config.maxAgeMs / 3_600_000 };
      if (!loggedSkip) log.info(fields, 'loki: events older than LOKI_MAX_AGE_HOURS are not pushed (Loki would refuse them); they count as delivered and are counted (skippedTooOld)');
      else log.debug(fields, 'loki: skipped events too old for Loki');
      loggedSkip = true;
    }
    return entries;
  }

  /** Pushes `entries`; every part Loki answered for good is passed to `settle` as soon as it is known. */
  async function push(entries: readonly LokiEntry[], signal: AbortSignal, settle: Settle): Promise<PushResult> {
    const encoded = encodePush(entries, config.encoding);
    const result = await exchange({
      method: 'POST',
      url: target.pushUrl,
      headers: { ...target.headers, 'Content-Type': encoded.contentType },
      body: encoded.body,
      timeoutMs: config.timeoutMs,
      signal: AbortSignal.any([signal, stopper.signal]),
      fetch: fetchFn,
    });
    const verdict = classifyAnswer(result, now(), target.shown);
    // What Loki may now hold: a lost answer may hide a stored push; a 400 is noted below.
    if (verdict.kind === 'stored' || verdict.kind === 'retry') heads.note(entries);
    switch (verdict.kind) {
      case 'stored':
        counts.pushes++;
        counts.entriesStored += entries.length;
        settle(entries, []);
        return { kind: 'done', rejected: [] };
      case 'retry':
        counts.retryableFailures++;
        if (verdict.error.code === 'sink_rate_limited') counts.rateLimited++;
        return verdict;
      case 'refused':
        log.error({ err: { code: verdict.error.code, message: verdict.error.message }, entries: entries.length }, 'loki refused a push for good; its entries go to the dead letters');
        return refuseAll(entries, verdict.error, settle);
      case 'too_large':
        if (entries.length === 1) return refuseAll(entries, new MothershipError('loki_payload_too_large', `loki answered 413 to a single entry${bodyExcerpt(verdict.body)}`), settle);
        log.debug({ entries: entries.length }, 'loki answered 413; splitting the push');
        return pushHalves(entries, signal, settle);
      case 'partial': {
        const mapped = mapRejections(verdict.body, sentStreams(entries));
        if (mapped !== null && mapped.length > 0) {
          counts.pushes++;
          counts.entriesRefused += mapped.length;
          const rejected = mapped.map((r) => ({ position: r.position, error: new MothershipError(r.code, `loki refused the entry: ${clip(r.reason)}`) }));
          const named = new Set(mapped.map((r) => r.position));
          settle(entries.filter((e) => named.has(e.position)), rejected);
          const rest = entries.filter((e) => !named.has(e.position));
          heads.note(rest);
          if (rest.length === 0) return { kind: 'done', rejected };
          // Loki stored the entries it did not name, unless its answer left some out: Loki
          // 3.4.6 names the ingester's refusals of one stream only, and the distributor's and
          // the ingester's refusals hide each other. Pushing the rest again tells: what Loki
          // stored is an exact duplicate, which it drops (and, the push spanning less than the
          // out-of-order window, cannot be refused as too far behind); the rest is named now.
          log.debug({ entries: rest.length, refused: rejected.length }, 'loki answered 400; pushing the entries it did not name again to confirm them');
          const after = await push(rest, signal, settle);
          if (after.kind === 'retry') return after;
          return { kind: 'done', rejected: [...rejected, ...after.rejected] };
        }
        if (entries.length === 1) return refuseAll(entries, new MothershipError('loki_rejected', `loki refused the entry: 400${bodyExcerpt(verdict.body)}`), settle);
        log.warn({ entries: entries.length, answer: bodyExcerpt(verdict.body).slice(2) }, 'loki answered 400 naming no entry we can match; splitting the push to find the refused ones');
        return pushHalves(entries, signal, settle);
      }
    }
  }

  function refuseAll(entries: readonly LokiEntry[], error: MothershipError, settle: Settle): PushResult {
    counts.entriesRefused += entries.length;
    const rejected = entries.map((e) => ({ position: e.position, error }));
    settle(entries, rejected);
    return { kind: 'done', rejected };
  }

  /** Pushes each half in turn (entries stay in time order); a retryable half stops the rest. */
  async function pushHalves(entries: readonly LokiEntry[], signal: AbortSignal, settle: Settle): Promise<PushResult> {
    counts.splitPushes++;
    const mid = Math.ceil(entries.length / 2);
    const rejected: Rejection[] = [];
    for (const half of [entries.slice(0, mid), entries.slice(mid)]) {
      const result = await push(half, signal, settle);
      if (result.kind === 'retry') return result;
      rejected.push(...result.rejected);
    }
    return { kind: 'done', rejected };
  }

  const sink: LokiSink = {
    name: 'loki',

    get counters(): LokiCounters {
      return { ...counts, overBudget: Object.fromEntries(policy.overBudget) };
    },

    async start(signal: AbortSignal): Promise<void> {
      if (stopping !== null) throw new MothershipError('shutting_down', 'loki sink is shut down');
      // Loki being down must not stop the mothership: events wait in the spool. One probe, for the log.
      const health = await probeReady(target, fetchFn, Math.min(HEALTH_TIMEOUT_MS, config.timeoutMs), AbortSignal.any([signal, stopper.signal]));
      const fields = { target: target.shown, tenant: config.tenantId, encoding: config.encoding, labels: ['source', ...config.labels.filter((l) => l !== 'source')] };
      if (health.healthy) log.info(fields, 'loki sink ready');
      else log.warn({ ...fields, reason: health.reason }, 'loki is not ready yet; events wait in the spool until it is');
    },

    async send(sent: SendBatch, signal: AbortSignal): Promise<SendOutcome> {
      if (stopping !== null) return { kind: 'retryable', error: new MothershipError('sink_unavailable', 'loki sink is shutting down') };
      const events = sent.events();
      const entries = toEntries(events);
      const settle: Settle = (batch, rejected) => {
        const refused = new Map(rejected.map((r) => [r.position, r.error]));
        for (const e of batch) settled.set(events[e.position] as IngestEvent, refused.get(e.position) ?? null);
      };
      // Entries Loki may refuse as too far behind their stream go first, each stream in pushes
      // of its own: only then does Loki's answer name them if it refuses them (see StreamHeads).
      const { behind, rest } = heads.split(entries);
      const pushes = behind.flatMap((group) => planPushes(group, config.batchSize, config.batchMaxBytes));
      pushes.push(...planPushes(rest, config.batchSize, config.batchMaxBytes));
      for (const batch of pushes) {
        const result = await push(batch, signal, settle);
        // What this send already settled stays settled: the retry pushes only the rest.
        if (result.kind === 'retry') return result.retryAfterMs === undefined ? { kind: 'retryable', error: result.error } : { kind: 'retryable', error: result.error, retryAfterMs: result.retryAfterMs };
      }
      const rejected: Rejection[] = [];
      for (let position = 0; position < events.length; position++) {
        const error = settled.get(events[position] as IngestEvent);
        if (error !== undefined && error !== null) rejected.push({ position, error });
      }
      if (rejected.length === 0) return { kind: 'delivered', written: events.length, duplicates: 0 };
      return { kind: 'delivered', written: events.length - rejected.length, duplicates: 0, rejected };
    },

    async healthcheck(signal: AbortSignal): Promise<SinkHealth> {
      if (stopping !== null) return { healthy: false, reason: 'shut down' };
      return probeReady(target, fetchFn, Math.min(HEALTH_TIMEOUT_MS, config.timeoutMs), AbortSignal.any([signal, stopper.signal]));
    },

    shutdown(): Promise<void> {
      stopping ??= Promise.resolve().then(() => stopper.abort());
      return stopping;
    },

    describe() {
      return {
        target: target.shown,
        tenant: config.tenantId,
        encoding: config.encoding,
        lineFormat: config.lineFormat,
        labelValues: policy.distinctValues(),
        ...sink.counters,
      };
    },
  };
  return sink;
}

function sentStreams(entries: readonly LokiEntry[]): SentStream[] {
  return groupStreams(entries).map((s) => ({
    labelsText: s.labelsText,
    labels: new Map(s.labels),
    entries: s.entries.map((e) => ({ position: e.position, timeMs: e.timeMs, timeNanos: e.timeNanos, lineBytes: Buffer.byteLength(e.line), hasMetadata: e.metadata.length > 0 })),
  }));
}

function clip(text: string): string {
  return text.length > MAX_REASON_CHARS ? `${text.slice(0, MAX_REASON_CHARS)}…` : text;
}
