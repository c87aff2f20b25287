import { MothershipError } from '../lib/errors.js';
import type { IngestEvent } from '../pipeline/event.js';
import type { SinkName } from '../sinks/sink.js';
import type { Logger } from '../telemetry/logger.js';
import { CursorStore } from './cursor-store.js';
import { FRAME_HEADER_BYTES, MAX_EVENTS_PER_RECORD } from './frame.js';
import { encodeEvents, wholeRecordEvents, type RecordEvents } from './record-codec.js';
import { SegmentLog, type RecoveryReport, type Segment } from './segment-log.js';
import { SpoolReader } from './spool-reader.js';
import { nearlyFull, secondsToFree, type AppendOptions, type SinkBacklog, type SinkFeed, type SpoolStore } from './store.js';

export const SINK_BITS: Readonly<Record<SinkName, number>> = { tsdb: 1, loki: 2 };

export interface SpoolOptions {
  readonly dir: string;
  readonly maxBytes: number;
  readonly segmentBytes: number;
  readonly fsync: boolean;
  /** Recent records kept in memory, so caught-up sinks never read them back from disk. */
  readonly memoryBytes: number;
  /**
   * Keep the cached records' events as objects, for a sink that reads events (Loki). Without
   * one, the cache keeps each record's bytes only: ~3.5× more records in the same memory, and
   * no event object outlives its request.
   */
  readonly cacheEvents: boolean;
  readonly sinks: readonly SinkName[];
  readonly logger: Logger;
  readonly now: () => number;
}

export interface CachedRecord extends RecordEvents {
  readonly targets: number;
  readonly segment: Segment;
  readonly offset: number;
  readonly length: number;
}

export type { SinkBacklog } from './store.js';

interface PendingAppend {
  readonly targets: number;
  readonly eventCount: number;
  readonly payload: Buffer;
  /** Whether the record goes to the cache once written (its room is reserved at append). */
  readonly cached: boolean;
  /**
   * The events, kept only for a record the cache will hold with its events: a burst that
   * outruns the disk then queues payload bytes, not decoded objects.
   */
  readonly events: readonly IngestEvent[] | null;
  readonly receivedAtMs: number | null;
  readonly resolve: (seq: number) => void;
  readonly reject: (err: unknown) => void;
}

const CURSOR_PERSIST_MS = 200;
/**
 * Memory of a cached record per byte of its frame: the payload itself, plus its events as
 * objects with their parsed data, about 2.5× the payload. Measured on the bench's 1000-message
 * batches (node --expose-gc, heapUsed around each step): per byte of JSON, the parsed messages
 * take 0.9, the events 2.9 and the payload 1.5. SPOOL_MEMORY_BYTES bounds this estimate, so an
 * outage that fills the cache holds about SPOOL_MEMORY_BYTES of heap, not 3.5× that.
 */
const CACHED_RECORD_WEIGHT = 3.5;
/** A record cached as its bytes only: the payload, and a few small objects. */
const CACHED_BYTES_WEIGHT = 1.1;

/**
 * The durable hand-off between ingestion and delivery. `append` resolves only once the record
 * is written (on disk, with fsync on); concurrent appends share one write (group commit). Each
 * sink reads from its own cursor and acknowledges in order; segments go once every sink has
 * passed them. Disk use is capped by `maxBytes`.
 */
export class Spool implements SpoolStore {
  readonly backend = 'disk';
  readonly shared = false;
  /** Seq of the last record that is durable and readable. */
  durableSeq: number;
  readonly recovery: RecoveryReport;
  private readonly acked = new Map<SinkName, number>();
  private readonly backlog = new Map<SinkName, { events: number; bytes: number }>();
  private readonly cache = new Map<number, CachedRecord>();
  private cacheBytes = 0;
  private released: number;
  private queue: PendingAppend[] = [];
  private queuedBytes = 0;
  private flushing: Promise<void> | null = null;
  private appendWaiters: Array<() => void> = [];
  private persistTimer: NodeJS.Timeout | null = null;
  private persisting: Promise<void> = Promise.resolve();
  private closed = false;
  private drain = { bytes: 0, sinceMs: 0, bytesPerSecond: 0 };

  private constructor(
    private readonly options: SpoolOptions,
    readonly log: SegmentLog,
    recovery: RecoveryReport,
    private readonly cursors: CursorStore,
    acked: Map<SinkName, number>,
    backlog: Map<SinkName, { events: number; bytes: number }>,
  ) {
    this.recovery = recovery;
    this.durableSeq = log.nextSeq - 1;
    this.acked = acked;
    this.backlog = backlog;
    this.released = Math.min(...acked.values());
    this.drain.sinceMs = options.now();
  }

  static async open(options: SpoolOptions): Promise<Spool> {
    const cursors = new CursorStore(options.dir, options.logger);
    const stored = new Map<SinkName, number | null>();
    for (const sink of options.sinks) stored.set(sink, await cursors.read(sink));
    const known = [...stored.values()].filter((v): v is number => v !== null);
    const backlog = new Map<SinkName, { events: number; bytes: number }>(options.sinks.map((s) => [s, { events: 0, bytes: 0 }]));
    const { log, report } = await SegmentLog.open({
      dir: options.dir,
      segmentBytes: options.segmentBytes,
      fsync: options.fsync,
      logger: options.logger,
      minNextSeq: (known.length > 0 ? Math.max(...known) : 0) + 1,
      onRecoveredRecord: (seq, targets, eventCount) => {
        for (const sink of options.sinks) {
          const cursor = stored.get(sink);
          if (cursor !== null && cursor !== undefined && seq > cursor && (targets & SINK_BITS[sink]) !== 0) {
            const b = backlog.get(sink);
            if (b !== undefined) b.events += eventCount;
          }
        }
      },
    });
    const acked = new Map<SinkName, number>();
    const oldestHeld = (log.segments[0]?.firstSeq ?? log.nextSeq) - 1;
    for (const sink of options.sinks) {
      // A sink without a cursor was just enabled: it starts with what arrives from now on.
      let cursor = Math.min(stored.get(sink) ?? log.nextSeq - 1, log.nextSeq - 1);
      if (cursor < oldestHeld) {
        // The sink was disabled while the others drained: what it missed is no longer held.
        options.logger.warn({ sink, from: cursor + 1, to: oldestHeld }, 'spool records were deleted while this sink was disabled; it resumes with the oldest record held');
        cursor = oldestHeld;
      }
      acked.set(sink, cursor);
      await cursors.write(sink, cursor);
    }
    if (report.tornBytes > 0 || report.quarantined.length > 0) {
      options.logger.warn({ tornBytes: report.tornBytes, quarantined: report.quarantined }, 'spool recovered from a crash');
    }
    const spool = new Spool(options, log, report, cursors, acked, backlog);
    spool.estimateBacklogBytes();
    return spool;
  }

  get sinks(): readonly SinkName[] {
    return this.options.sinks;
  }

  get totalBytes(): number {
    return this.log.totalBytes + this.queuedBytes;
  }

  get maxBytes(): number {
    return this.options.maxBytes;
  }

  /**
   * Durably appends one batch of events; resolves with its seq. Throws `spool_full` when over
   * the limit. `targets` (a number, or in the options) defaults to every sink.
   */
  append(events: readonly IngestEvent[], options: AppendOptions | number = {}): Promise<number> {
    const targets = (typeof options === 'number' ? options : options.targets) ?? this.allTargets();
    if (this.closed) return Promise.reject(new MothershipError('shutting_down', 'The spool is closed'));
    if (events.length > MAX_EVENTS_PER_RECORD) return Promise.reject(new MothershipError('too_many_messages', `A record holds at most ${MAX_EVENTS_PER_RECORD} events`));
    const payload = encodeEvents(events);
    if (this.totalBytes + payload.length > this.options.maxBytes) {
      return Promise.reject(
        new MothershipError('spool_full', `The spool is full (${this.totalBytes} of ${this.options.maxBytes} bytes, SPOOL_MAX_BYTES) while sinks catch up`, {
          retryAfterSeconds: this.retryAfterSeconds(payload.length),
        }),
      );
    }
    const weight = this.cacheWeight(FRAME_HEADER_BYTES + payload.length);
    const cached = this.cacheBytes + weight <= this.options.memoryBytes;
    if (cached) this.cacheBytes += weight;
    const kept = cached && this.options.cacheEvents ? events : null;
    const receivedAtMs = events[0]?.receivedAtMs ?? null;
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ targets, eventCount: events.length, payload, cached, events: kept, receivedAtMs, resolve, reject });
      this.queuedBytes += payload.length;
      this.flushing ??= this.flush();
    });
  }

  /** The cached record with this seq, if still in memory. */
  cached(seq: number): CachedRecord | undefined {
    return this.cache.get(seq);
  }

  segments(): readonly Segment[] {
    return this.log.segments;
  }

  reader(sink: SinkName): SpoolReader {
    return new SpoolReader(this, this.ackedSeq(sink) + 1);
  }

  ackedSeq(sink: SinkName): number {
    return this.acked.get(sink) ?? 0;
  }

  /** Resolves once a record with seq > `afterSeq` is durable, or the signal aborts. */
  waitForAppend(afterSeq: number, signal: AbortSignal): Promise<void> {
    if (this.durableSeq > afterSeq || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      this.appendWaiters.push(done);
    });
  }

  /**
   * Records that `sink` has handled every record through `seq`; `events`/`bytes` are what those
   * records held for it. The cursor is persisted shortly after, and passed segments deleted.
   */
  ack(sink: SinkName, seq: number, events: number, bytes: number): void {
    const previous = this.acked.get(sink);
    if (previous === undefined || seq <= previous) return;
    this.acked.set(sink, seq);
    const b = this.backlog.get(sink);
    if (b !== undefined) {
      b.events = Math.max(0, b.events - events);
      b.bytes = Math.max(0, b.bytes - bytes);
    }
    this.drain.bytes += bytes;
    this.releaseCache();
    this.schedulePersist();
  }

  /** Logged once per gap a reader meets (records lost with a quarantined segment). */
  reportLost(from: number, to: number): void {
    this.options.logger.error({ from, to, records: to - from + 1 }, 'spool records lost with a quarantined segment are skipped');
  }

  backlogOf(sink: SinkName): SinkBacklog {
    const acked = this.ackedSeq(sink);
    const b = this.backlog.get(sink) ?? { events: 0, bytes: 0 };
    return { ackedSeq: acked, records: Math.max(0, this.durableSeq - acked), events: b.events, bytes: b.bytes };
  }

  feed(sink: SinkName): SinkFeed {
    return {
      ackedSeq: () => this.ackedSeq(sink),
      reader: () => this.reader(sink),
      readableSeq: () => this.durableSeq,
      waitForMore: (afterSeq, signal) => this.waitForAppend(afterSeq, signal),
      ack: (seq, events, bytes) => this.ack(sink, seq, events, bytes),
      backlog: () => this.backlogOf(sink),
    };
  }

  refusal(): string | null {
    return nearlyFull(this.totalBytes, this.options.maxBytes) ? 'spool full: sinks are behind; batches are refused with 503 until they catch up' : null;
  }

  healthView(): Readonly<Record<string, unknown>> {
    return { bytes: this.totalBytes, max_bytes: this.options.maxBytes, full: this.refusal() !== null, segments: this.log.segments.length, fsync: this.options.fsync };
  }

  adminView(): Readonly<Record<string, unknown>> {
    return {
      bytes: this.totalBytes,
      max_bytes: this.options.maxBytes,
      durable_seq: this.durableSeq,
      segments: this.log.segments.map((s) => ({ first_seq: s.firstSeq, last_seq: s.lastSeq, bytes: s.size })),
      recovery: { torn_bytes: this.recovery.tornBytes, quarantined_segments: this.recovery.quarantined.length },
    };
  }

  /** Persists cursors and closes the log. Appends after this are refused. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing !== null) await this.flushing;
    if (this.persistTimer !== null) clearTimeout(this.persistTimer);
    this.persistTimer = null;
    await this.persistCursors();
    await this.log.close();
    for (const wake of this.appendWaiters.splice(0)) wake();
  }

  private allTargets(): number {
    let mask = 0;
    for (const sink of this.options.sinks) mask |= SINK_BITS[sink];
    return mask;
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        let appended;
        try {
          appended = await this.log.append(batch);
        } catch (err) {
          this.options.logger.error({ err: { message: (err as Error).message } }, 'spool write failed');
          for (const p of batch) {
            this.queuedBytes -= p.payload.length;
            this.returnCacheRoom(p);
            p.reject(new MothershipError('storage_unavailable', `The spool could not write the batch: ${(err as Error).message}`, { cause: err, retryAfterSeconds: 5 }));
          }
          continue;
        }
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i] as PendingAppend;
          const a = appended[i];
          if (a === undefined) {
            // Not written (cannot happen: the log answers every record or throws).
            this.returnCacheRoom(p);
            continue;
          }
          this.queuedBytes -= p.payload.length;
          this.durableSeq = a.seq;
          for (const sink of this.options.sinks) {
            if ((p.targets & SINK_BITS[sink]) === 0) continue;
            const b = this.backlog.get(sink);
            if (b !== undefined) {
              b.events += p.eventCount;
              b.bytes += a.length;
            }
          }
          if (p.cached) {
            const events = wholeRecordEvents(p.payload, p.eventCount, p.receivedAtMs, p.events);
            this.cache.set(a.seq, { ...events, targets: p.targets, segment: a.segment, offset: a.offset, length: a.length });
          }
          p.resolve(a.seq);
        }
        for (const wake of this.appendWaiters.splice(0)) wake();
      }
    } finally {
      this.flushing = null;
    }
  }

  /** What a cached record of `frameLength` bytes on disk is taken to hold in memory. */
  private cacheWeight(frameLength: number): number {
    return frameLength * (this.options.cacheEvents ? CACHED_RECORD_WEIGHT : CACHED_BYTES_WEIGHT);
  }

  /** A pending record that will not be cached after all gives back the room reserved at append. */
  private returnCacheRoom(p: PendingAppend): void {
    if (p.cached) this.cacheBytes -= this.cacheWeight(FRAME_HEADER_BYTES + p.payload.length);
  }

  private releaseCache(): void {
    let floor = Number.POSITIVE_INFINITY;
    for (const seq of this.acked.values()) floor = Math.min(floor, seq);
    for (let seq = this.released + 1; seq <= floor; seq++) {
      const entry = this.cache.get(seq);
      if (entry !== undefined) {
        this.cacheBytes -= this.cacheWeight(entry.length);
        this.cache.delete(seq);
      }
    }
    if (floor > this.released) this.released = floor;
  }

  private schedulePersist(): void {
    if (this.persistTimer !== null || this.closed) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = null;
      this.persistCursors().catch((err: unknown) => {
        this.options.logger.error({ err: { message: (err as Error).message } }, 'could not persist spool cursors');
      });
    }, CURSOR_PERSIST_MS);
    this.persistTimer.unref();
  }

  /** Serialized: the timer and `close` may both ask, and two writers would race on the same files. */
  private persistCursors(): Promise<void> {
    const run = this.persisting.then(async () => {
      for (const [sink, seq] of this.acked) await this.cursors.write(sink, seq);
      const removed = await this.log.removeThrough(this.released);
      if (removed > 0) this.options.logger.debug({ removed }, 'spool segments deleted');
    });
    this.persisting = run.catch(() => undefined);
    return run;
  }

  /** After recovery the byte backlog is estimated from segment sizes (exact bytes are only known per record read). */
  private estimateBacklogBytes(): void {
    for (const sink of this.options.sinks) {
      const acked = this.ackedSeq(sink);
      let bytes = 0;
      for (const s of this.log.segments) {
        if (s.lastSeq <= acked) continue;
        const records = s.lastSeq - s.firstSeq + 1;
        const unacked = s.lastSeq - Math.max(acked, s.firstSeq - 1);
        bytes += records > 0 ? Math.round((s.size * unacked) / records) : 0;
      }
      const b = this.backlog.get(sink);
      if (b !== undefined) b.bytes = bytes;
    }
  }

  /** Seconds until the slowest drain would free `needed` bytes more than are over the limit. */
  private retryAfterSeconds(needed: number): number {
    const now = this.options.now();
    const elapsed = (now - this.drain.sinceMs) / 1000;
    if (elapsed >= 1) {
      const rate = this.drain.bytes / elapsed;
      this.drain.bytesPerSecond = this.drain.bytesPerSecond === 0 ? rate : 0.5 * this.drain.bytesPerSecond + 0.5 * rate;
      this.drain.bytes = 0;
      this.drain.sinceMs = now;
    }
    return secondsToFree(this.totalBytes + needed - this.options.maxBytes, this.drain.bytesPerSecond);
  }
}
