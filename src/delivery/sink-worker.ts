import type { DeadLetterStore } from '../deadletter/store.js';
import { deadlineSignal } from '../lib/deadline.js';
import { MothershipError } from '../lib/errors.js';
import { deliverIsolating, type PoisonEvent } from '../sinks/deliver.js';
import type { SendBatch, Sink } from '../sinks/sink.js';
import { SINK_BITS } from '../spool/spool.js';
import type { SpoolRecord } from '../spool/spool-reader.js';
import type { RecordReader, SinkFeed, SpoolStore } from '../spool/store.js';
import type { IngestEvent } from '../pipeline/event.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { AnswerWait } from './answer-wait.js';
import { backoffDelay, sleep, type BackoffPolicy } from './backoff.js';
import { BacklogTrend, DrainRate } from './drain-rate.js';
import { CircuitBreaker, type CircuitOptions, type CircuitState } from './circuit-breaker.js';

export interface WorkerOptions {
  /** Records delivered concurrently (at most one send each). */
  readonly window: number;
  /** An event still undelivered this long after it was received is dead-lettered. */
  readonly retryBudgetMs: number;
  readonly backoff: BackoffPolicy;
  readonly circuit: CircuitOptions;
  readonly now: () => number;
  readonly random: () => number;
  /**
   * Merge consecutive small records into one send of up to `maxEvents`, waiting at most
   * `maxWaitMs` for more to arrive (Loki's batching). Absent: one record per send.
   */
  readonly coalesce?: { readonly maxEvents: number; readonly maxWaitMs: number };
  readonly metrics?: Metrics;
}

/** Records sent together in one send; `offsets[i]` is where record i's events start in `batch`. */
interface Unit {
  readonly records: readonly SpoolRecord[];
  /** Decodes nothing until the sink asks for events (see SendBatch). */
  readonly batch: SendBatch;
  readonly offsets: readonly number[];
  /** When the unit's first batch was received, ms since the epoch; null for a unit without events. */
  readonly receivedAtMs: number | null;
}

/** What one record's delivery to this sink came to. */
export interface RecordOutcome {
  readonly written: number;
  readonly duplicates: number;
  readonly poison: readonly PoisonEvent[];
}

export interface WorkerStatus {
  readonly circuit: CircuitState;
  readonly healthy: boolean;
  readonly lastError: string | null;
  readonly inFlight: number;
  /** ms since the oldest event not yet delivered was received; 0 when caught up. */
  readonly oldestUndeliveredAgeMs: number;
  /** Events delivered per second, recently (0 when idle). */
  readonly drainRatePerSecond: number;
  /** Events per second the backlog shrinks by, net of new arrivals (negative while it grows). */
  readonly backlogShrinkPerSecond: number;
}

const RECENT_OUTCOMES = 4096;

/**
 * Delivers one sink's share of the spool, in seq order, from that sink's cursor: a window of
 * records in flight, each retried with jittered backoff behind a circuit breaker until it is
 * stored, refused for good (dead letters) or out of retry budget (dead letters). The cursor only
 * moves over records that are finished, so a crash or a stop can only cause resends.
 */
export class SinkWorker {
  private readonly breaker: CircuitBreaker;
  private readonly feed: SinkFeed;
  private readonly bit: number;
  private readonly stop = new AbortController();
  private readonly inFlight = new Map<number, { receivedAtMs: number; done: Promise<void> }>();
  private readonly finished = new Map<number, { events: number; bytes: number }>();
  private readonly waiters = new Map<number, Array<(o: RecordOutcome) => void>>();
  private readonly recent = new Map<number, RecordOutcome>();
  private acked: number;
  private lastError: string | null = null;
  private loop: Promise<void> | null = null;
  private drainTarget = Number.POSITIVE_INFINITY;
  private wake: (() => void) | null = null;
  private readonly answerWait = new AnswerWait();
  private readonly drainRate: DrainRate;
  private readonly backlogTrend: BacklogTrend;
  /** The highest seq handed to a send (or skipped): records after it wait in the spool. */
  private taken: number;

  constructor(
    readonly sink: Sink,
    spool: Pick<SpoolStore, 'feed'>,
    private readonly deadLetters: DeadLetterStore,
    private readonly logger: Logger,
    private readonly options: WorkerOptions,
  ) {
    this.breaker = new CircuitBreaker(options.circuit, options.now);
    this.bit = SINK_BITS[sink.name];
    this.feed = spool.feed(sink.name);
    this.acked = this.feed.ackedSeq();
    this.taken = this.acked;
    this.drainRate = new DrainRate(options.now);
    this.backlogTrend = new BacklogTrend(options.now);
  }

  start(): void {
    this.loop ??= this.run().catch((err: unknown) => {
      this.lastError = (err as Error).message;
      this.logger.fatal({ sink: this.sink.name, err: { message: (err as Error).message, stack: (err as Error).stack } }, 'sink worker stopped on an unexpected error');
    });
  }

  /**
   * Waits up to `timeoutMs` for the record `seq` to be finished by this sink; null when it is
   * still queued (it will be delivered later, from the spool).
   */
  waitFor(seq: number, timeoutMs: number): Promise<RecordOutcome | null> {
    const known = this.recent.get(seq);
    if (known !== undefined) return Promise.resolve(known);
    if (seq <= this.acked || timeoutMs <= 0) return Promise.resolve(null);
    return new Promise((resolve) => {
      const list = this.waiters.get(seq) ?? [];
      const onDone = (o: RecordOutcome): void => {
        clearTimeout(timer);
        resolve(o);
      };
      const timer = setTimeout(() => {
        const current = this.waiters.get(seq);
        if (current !== undefined) {
          const rest = current.filter((w) => w !== onDone);
          if (rest.length === 0) this.waiters.delete(seq);
          else this.waiters.set(seq, rest);
        }
        resolve(null);
      }, timeoutMs);
      list.push(onDone);
      this.waiters.set(seq, list);
    });
  }

  /**
   * How long the answer for record `seq` (of `events` events) may wait for this sink, at most `ceilingMs`: 0 (answer
   * `queued` at once) unless waiting can pay: the sink is healthy (circuit closed, last send
   * stored), caught up (no more than one window of records waits ahead of this one) and fast
   * (see AnswerWait).
   */
  answerWaitMs(seq: number, events: number, ceilingMs: number): number {
    if (this.breaker.state !== 'closed' || this.lastError !== null) return 0;
    if (seq - 1 - this.taken > this.options.window) return 0;
    return this.answerWait.waitMs(events, ceilingMs);
  }

  status(): WorkerStatus {
    let oldest = Number.POSITIVE_INFINITY;
    for (const f of this.inFlight.values()) oldest = Math.min(oldest, f.receivedAtMs);
    const circuit = this.breaker.state;
    return {
      circuit,
      healthy: circuit === 'closed' && this.lastError === null,
      lastError: this.lastError,
      inFlight: this.inFlight.size,
      oldestUndeliveredAgeMs: Number.isFinite(oldest) ? Math.max(0, this.options.now() - oldest) : 0,
      drainRatePerSecond: this.drainRate.perSecond(),
      backlogShrinkPerSecond: this.backlogTrend.shrinkPerSecond(),
    };
  }

  /**
   * Delivers what is in the spool now (a shared spool: what is in this process's sends), for at
   * most `timeoutMs`, then abandons in-flight sends. Unfinished records stay in the spool for the
   * next start (or, shared, for the other processes).
   */
  async drainAndStop(timeoutMs: number): Promise<void> {
    this.drainTarget = this.feed.stopTaking?.() ?? this.feed.readableSeq();
    this.wake?.();
    const timer = setTimeout(() => this.stop.abort(), timeoutMs);
    timer.unref();
    try {
      await this.loop;
    } finally {
      clearTimeout(timer);
      this.stop.abort();
    }
  }

  private async run(): Promise<void> {
    const reader = this.feed.reader();
    const signal = this.stop.signal;
    const stopped = aborted(signal);
    try {
      while (!signal.aborted) {
        if (reader.next > this.drainTarget) break;
        if (this.inFlight.size >= this.options.window) {
          await Promise.race([...[...this.inFlight.values()].map((f) => f.done), stopped]);
          continue;
        }
        const unit = await this.readUnit(reader, signal);
        if (unit === null) continue;
        this.taken = reader.next - 1;
        if (unit.batch.size === 0) {
          this.finishUnit(unit, { written: 0, duplicates: 0, poison: [] });
          continue;
        }
        const first = unit.records[0] as SpoolRecord;
        const receivedAtMs = unit.receivedAtMs ?? this.options.now();
        const done = this.deliver(unit, signal);
        this.inFlight.set(first.seq, { receivedAtMs, done });
      }
      await Promise.all([...this.inFlight.values()].map((f) => f.done));
    } finally {
      await reader.close();
    }
  }

  /** The next unit to send: one record, or several small ones when coalescing. Null when woken idle. */
  private async readUnit(reader: RecordReader, signal: AbortSignal): Promise<Unit | null> {
    const first = await this.readNext(reader, signal);
    if (first === null) return null;
    const records = [first];
    const coalesce = this.options.coalesce;
    if (coalesce !== undefined && this.wanted(first) > 0) {
      let count = this.wanted(first);
      // maxWaitMs 0: take only what is already durable (batching under load, no added latency).
      const deadline = coalesce.maxWaitMs > 0 ? deadlineSignal(signal, coalesce.maxWaitMs) : null;
      const until = deadline?.signal ?? signal;
      try {
        while (count < coalesce.maxEvents && !until.aborted && reader.next <= this.drainTarget) {
          if (reader.next > this.feed.readableSeq()) {
            if (coalesce.maxWaitMs === 0) break;
            await this.feed.waitForMore(reader.next - 1, until);
            continue;
          }
          const more = await reader.read(until);
          if (more === null) break;
          records.push(more);
          count += this.wanted(more);
        }
      } finally {
        deadline?.clear();
      }
    }
    const offsets: number[] = [];
    const sent: SpoolRecord[] = [];
    let size = 0;
    let rows: Buffer[] | undefined = [];
    let receivedAtMs: number | null = null;
    for (const r of records) {
      offsets.push(size);
      if (this.wanted(r) === 0) {
        if (r.decodeError !== undefined) this.logger.error({ sink: this.sink.name, seq: r.seq, reason: r.decodeError }, 'skipping an unreadable spool record');
        continue;
      }
      if (r.copyText === null) rows = undefined;
      else rows?.push(r.copyText);
      sent.push(r);
      size += r.eventCount;
      receivedAtMs ??= r.receivedAtMs;
    }
    // Kept once decoded: a retried send must hand the sink the same event objects.
    let events: readonly IngestEvent[] | null = null;
    const decode = (): readonly IngestEvent[] => (sent.length === 1 ? (sent[0] as SpoolRecord).events() : sent.flatMap((r) => r.events()));
    return { records, batch: { size, rows, events: () => (events ??= decode()) }, offsets, receivedAtMs };
  }

  /** Events of `record` this sink must deliver. */
  private wanted(record: SpoolRecord): number {
    return (record.targets & this.bit) === 0 ? 0 : record.eventCount;
  }

  /** Reads the next record, waking early when a drain target is set while idle. */
  private async readNext(reader: RecordReader, signal: AbortSignal): Promise<SpoolRecord | null> {
    const idle = new AbortController();
    const onAbort = (): void => idle.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.wake = onAbort;
    try {
      return await reader.read(idle.signal);
    } finally {
      this.wake = null;
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async deliver(unit: Unit, signal: AbortSignal): Promise<void> {
    const firstAttemptMs = this.options.now();
    const seq = (unit.records[0] as SpoolRecord).seq;
    let attempt = 0;
    try {
      while (!signal.aborted) {
        const wait = this.breaker.waitMs();
        if (wait > 0) {
          await sleep(wait, signal);
          continue;
        }
        const startedMs = this.options.now();
        const result = await deliverGuarded(this.sink, unit, signal);
        const tookMs = this.options.now() - startedMs;
        this.options.metrics?.sinkWriteSeconds(this.sink.name, tookMs / 1000);
        this.answerWait.recordWrite(tookMs, unit.batch.size, result.kind === 'delivered');
        if (result.kind === 'delivered') {
          this.breaker.success();
          this.lastError = null;
          this.feed.setDelivering?.(true);
          if (result.poison.length > 0 && !(await this.deadLetterSafely(unit, result.poison, firstAttemptMs, ''))) {
            await sleep(backoffDelay(this.options.backoff, attempt++, this.options.random), signal);
            continue;
          }
          this.finishUnit(unit, result);
          return;
        }
        if (signal.aborted) return;
        this.options.metrics?.sinkEventsCounted(this.sink.name, 'retried', unit.batch.size);
        this.breaker.failure();
        if (this.breaker.state === 'open') this.feed.setDelivering?.(false);
        this.noteFailure(result.error, seq);
        const ageMs = this.options.now() - (unit.receivedAtMs ?? firstAttemptMs);
        if (ageMs > this.options.retryBudgetMs) {
          const poison = Array.from({ length: unit.batch.size }, (_, position) => ({ position, error: result.error }));
          if (await this.deadLetterSafely(unit, poison, firstAttemptMs, `retry budget exhausted after ${Math.round(ageMs / 1000)} s: `)) {
            this.finishUnit(unit, { written: 0, duplicates: 0, poison });
            return;
          }
        }
        await sleep(backoffDelay(this.options.backoff, attempt++, this.options.random, result.retryAfterMs), signal);
      }
    } finally {
      this.inFlight.delete(seq);
      // Nothing left to probe the sink with (the last send went in, or to the dead letters):
      // a shared spool that stopped handing this process batches must give it one again, or a
      // sink that recovered meanwhile would never be tried from here.
      if (this.inFlight.size === 0 && !signal.aborted) this.feed.setDelivering?.(true);
    }
  }

  private noteFailure(error: MothershipError, seq: number): void {
    const first = this.lastError === null;
    this.lastError = error.message;
    const fields = { sink: this.sink.name, seq, err: { code: error.code, message: error.message }, circuit: this.breaker.state };
    // One warning when a sink starts failing, then debug: an outage must not flood the log.
    if (first) this.logger.warn(fields, 'sink delivery failing; events stay in the spool');
    else this.logger.debug(fields, 'sink delivery retry failed');
  }

  /** False when the dead letters could not be written: the record is then retried, never dropped. */
  private async deadLetterSafely(unit: Unit, poison: readonly PoisonEvent[], firstAttemptMs: number, prefix: string): Promise<boolean> {
    const seq = (unit.records[0] as SpoolRecord).seq;
    try {
      await this.deadLetter(unit, poison, firstAttemptMs, prefix);
      return true;
    } catch (err) {
      this.lastError = `dead-letter write failed: ${(err as Error).message}`;
      this.logger.error({ sink: this.sink.name, seq, err: { message: (err as Error).message } }, 'could not write dead letters; will retry the record');
      return false;
    }
  }

  private async deadLetter(unit: Unit, poison: readonly PoisonEvent[], firstAttemptMs: number, prefix: string): Promise<void> {
    const now = this.options.now();
    const entries = [];
    const events = unit.batch.events();
    for (const p of poison) {
      const event = events[p.position];
      if (event !== undefined) entries.push({ event, code: p.error.code, reason: prefix + p.error.message, firstAttemptMs, lastAttemptMs: now });
    }
    await this.deadLetters.add(this.sink.name, entries);
    this.logger.warn({ sink: this.sink.name, seq: unit.records[0]?.seq, events: entries.length, reason: entries[0]?.reason }, 'events moved to dead letters');
  }

  /**
   * Splits a unit's outcome over its records. Exact when the unit is one record, when the sink
   * said which events were duplicates (the tsdb sink does), or when the unit was all new or all
   * duplicates; otherwise a unit mixing resent and new events has its duplicates attributed to
   * its earliest records.
   */
  private finishUnit(unit: Unit, outcome: RecordOutcome & { readonly duplicatePositions?: readonly number[] | null }): void {
    const metrics = this.options.metrics;
    if (metrics !== undefined) {
      metrics.sinkEventsCounted(this.sink.name, 'written', outcome.written);
      metrics.sinkEventsCounted(this.sink.name, 'duplicate', outcome.duplicates);
      metrics.sinkEventsCounted(this.sink.name, 'dead_lettered', outcome.poison.length);
    }
    if (unit.records.length === 1) {
      this.finish(unit.records[0] as SpoolRecord, { written: outcome.written, duplicates: outcome.duplicates, poison: outcome.poison });
      return;
    }
    const positions = outcome.duplicatePositions ?? null;
    let duplicatesLeft = outcome.duplicates;
    for (let i = 0; i < unit.records.length; i++) {
      const record = unit.records[i] as SpoolRecord;
      const start = unit.offsets[i] as number;
      const count = this.wanted(record);
      const poison = outcome.poison.filter((p) => p.position >= start && p.position < start + count).map((p) => ({ position: p.position - start, error: p.error }));
      const stored = count - poison.length;
      const duplicates = positions === null
        ? Math.min(stored, duplicatesLeft)
        : positions.filter((p) => p >= start && p < start + count).length;
      duplicatesLeft -= duplicates;
      this.finish(record, { written: stored - duplicates, duplicates, poison });
    }
  }

  private finish(record: SpoolRecord, outcome: RecordOutcome): void {
    const events = this.wanted(record);
    this.finished.set(record.seq, { events, bytes: events === 0 ? 0 : record.bytes });
    this.recent.set(record.seq, outcome);
    if (this.recent.size > RECENT_OUTCOMES) {
      const oldest = this.recent.keys().next();
      if (oldest.done !== true) this.recent.delete(oldest.value);
    }
    for (const w of this.waiters.get(record.seq) ?? []) w(outcome);
    this.waiters.delete(record.seq);
    let doneEvents = 0;
    let bytes = 0;
    let next = this.acked + 1;
    for (let f = this.finished.get(next); f !== undefined; f = this.finished.get(next)) {
      doneEvents += f.events;
      bytes += f.bytes;
      this.finished.delete(next);
      next++;
    }
    if (next - 1 > this.acked) {
      this.drainRate.add(doneEvents);
      this.acked = next - 1;
      this.feed.ack(this.acked, doneEvents, bytes);
      this.backlogTrend.sample(this.feed.backlog().events);
    }
  }
}

/** A sink that throws instead of classifying is treated as retryable, never as a dead worker. */
async function deliverGuarded(sink: Sink, unit: Unit, signal: AbortSignal): ReturnType<typeof deliverIsolating> {
  try {
    return await deliverIsolating(sink, unit.batch, signal);
  } catch (err) {
    return { kind: 'retryable', error: new MothershipError('sink_unavailable', `${sink.name} failed unexpectedly: ${(err as Error).message}`, { cause: err }) };
  }
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
