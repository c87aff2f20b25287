import type { Consumer, JsMsg } from '@nats-io/jetstream';
import type { SinkName } from '../../sinks/sink.js';
import type { Logger } from '../../telemetry/logger.js';
import type { SpoolRecord } from '../spool-reader.js';
import type { RecordReader, SinkBacklog, SinkFeed } from '../store.js';
import type { ConnectionState } from './connection.js';
import { messageRecord } from './message.js';

export interface FeedOptions {
  readonly sink: SinkName;
  /** The sink's durable consumer (fetched again after an error). */
  readonly consumer: () => Promise<Consumer>;
  /** Records fetched ahead of the worker. */
  readonly prefetch: number;
  /** Bytes of records fetched ahead of the worker (a batch larger than this still comes alone). */
  readonly prefetchBytes: number;
  /** The stream's average batch, in bytes (0 when not known). */
  readonly averageBytes: () => number;
  readonly ackWaitMs: number;
  /** Acks and naks wait while it is down: the client drops what it would send then. */
  readonly connection: ConnectionState;
  readonly backlog: () => SinkBacklog;
  /** Told the event count of each batch taken (the spool's estimate of events per batch). */
  readonly observe: (eventCount: number) => void;
  readonly logger: Logger;
}

const RECENT_SIZES = 64;
/** How long closing waits for the pull to end before it hands back what it holds anyway. */
const CLOSE_WAIT_MS = 2_000;
/** Life of one fetch when fewer batches are waiting than it asks for: short, because closing waits it out. */
const PULL_EXPIRES_MS = 1_000;
const NO_EVENTS = { eventCount: 0, events: () => [], copyText: null, receivedAtMs: null } as const;

/**
 * One sink's share of the JetStream spool on this instance. Messages come from the sink's durable
 * consumer, which every instance shares, so each batch goes to one instance at a time; this feed
 * numbers the ones it gets 1, 2, 3… (the worker's seqs), acknowledges each once the worker has
 * finished it, and keeps telling JetStream it is working on the others so a sink that retries
 * for hours does not see its batches handed elsewhere. A batch whose instance dies is
 * redelivered to another after SPOOL_NATS_ACK_WAIT_SECONDS; event ids make the second write a
 * no-op where the first one went in.
 */
export class JetStreamFeed implements SinkFeed {
  private readonly queue: SpoolRecord[] = [];
  /** Messages taken and not yet acknowledged, by local seq. */
  private readonly held = new Map<number, JsMsg>();
  private queuedBytes = 0;
  /** Bytes of the last batches taken: fetches are sized by the largest. */
  private readonly recentSizes: number[] = [];
  private lastSeq = 0;
  /** The seq of the last record handed to the reader. */
  private readCount = 0;
  private acked = 0;
  private waiters: Array<() => void> = [];
  private readerWaiters: Array<() => void> = [];
  private resumeWaiters: Array<() => void> = [];
  private pump: Promise<void> | null = null;
  private paused = false;
  private draining = false;
  /** Acks and naks made while the connection was down. */
  private readonly unsent: Array<{ m: JsMsg; how: 'ack' | 'nak' }> = [];
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly options: FeedOptions) {
    options.connection.onBack(() => this.flushUnsent());
    this.heartbeat = setInterval(() => {
      for (const m of this.held.values()) m.working();
    }, Math.max(250, Math.floor(options.ackWaitMs / 3)));
    this.heartbeat.unref();
  }

  ackedSeq(): number {
    return this.acked;
  }

  readableSeq(): number {
    return this.lastSeq;
  }

  /** Batches this instance holds for the sink (fetched, not yet acknowledged). */
  get holding(): number {
    return this.held.size;
  }

  reader(): RecordReader {
    this.pump ??= this.run();
    const next = (): number => this.readCount + 1;
    return {
      get next() {
        return next();
      },
      read: (signal) => this.read(signal),
      close: async () => undefined,
    };
  }

  waitForMore(afterSeq: number, signal: AbortSignal): Promise<void> {
    if (this.lastSeq > afterSeq || signal.aborted || this.closed) return Promise.resolve();
    return waitOn(this.waiters, signal);
  }

  ack(seq: number, _events: number, _bytes: number): void {
    for (let s = this.acked + 1; s <= seq; s++) {
      const m = this.held.get(s);
      if (m !== undefined) this.settle(m, 'ack');
      this.held.delete(s);
    }
    if (seq > this.acked) this.acked = seq;
  }

  backlog(): SinkBacklog {
    return this.options.backlog();
  }

  /**
   * The worker's word on its sink: while it fails here (circuit open), this instance takes no new
   * batches and hands back those it fetched but did not start, so an instance whose sink works
   * delivers them instead of this one retrying them for days. The batches already in its sends
   * stay with it; it retries them, and fetching resumes when one goes in.
   */
  setDelivering(delivering: boolean): void {
    if (delivering === !this.paused) return;
    this.paused = !delivering;
    if (this.paused) {
      this.handBackQueue();
      this.options.logger.info({ sink: this.options.sink, holding: this.held.size }, 'the sink fails here: this instance takes no new batches from the spool stream meanwhile; other instances deliver them');
    } else {
      this.options.logger.info({ sink: this.options.sink }, 'taking batches from the spool stream again');
      for (const wake of this.resumeWaiters.splice(0)) wake();
    }
  }

  /** Shutting down: no more fetches; what the worker has not read goes back to the stream. */
  stopTaking(): number {
    this.draining = true;
    this.handBackQueue();
    for (const wake of [...this.resumeWaiters.splice(0), ...this.readerWaiters.splice(0)]) wake();
    return this.readCount;
  }

  /** Hands back the batches fetched that the worker has not read; their seqs are numbered again. */
  private handBackQueue(): void {
    this.handBack(this.queue.splice(0).map((r) => r.seq));
    this.queuedBytes = 0;
    this.lastSeq = this.readCount;
  }

  /**
   * Stops fetching and hands back what this instance took but did not finish (nak: another
   * instance gets it now, not after the ack wait).
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const wake of [...this.waiters.splice(0), ...this.readerWaiters.splice(0), ...this.resumeWaiters.splice(0)]) wake();
    // The fetch in progress ends first (at its expiry at the latest): a batch handed back while the
    // server still serves that pull could be sent to it again, and would wait out the ack wait.
    await Promise.race([this.pump?.catch(() => undefined), new Promise((r) => setTimeout(r, CLOSE_WAIT_MS).unref())]);
    this.handBack([...this.held.keys()]);
  }

  private handBack(seqs: readonly number[]): void {
    for (const seq of seqs) {
      const m = this.held.get(seq);
      if (m !== undefined) this.settle(m, 'nak');
      this.held.delete(seq);
    }
  }

  /**
   * Acks (the sink stored it) or naks (hand it to another instance) a batch. While the
   * connection is down the client would drop either (it clears what it had to send when it
   * reconnects), and a JsMsg settles once: they wait and go when it is back. Not confirmed
   * (ackAck): one lost with a NATS node means a redelivery after the ack wait, whose events the
   * sink skips as duplicates.
   */
  private settle(m: JsMsg, how: 'ack' | 'nak'): void {
    if (!this.options.connection.connected) {
      this.unsent.push({ m, how });
      return;
    }
    if (how === 'ack') m.ack();
    else m.nak();
  }

  private flushUnsent(): void {
    for (const { m, how } of this.unsent.splice(0)) {
      if (how === 'ack') m.ack();
      else m.nak();
    }
  }

  private async read(signal: AbortSignal): Promise<SpoolRecord | null> {
    for (;;) {
      if (signal.aborted) return null;
      const record = this.queue.shift();
      if (record !== undefined) {
        this.queuedBytes -= record.bytes;
        this.readCount = record.seq;
        for (const wake of this.readerWaiters.splice(0)) wake();
        return record;
      }
      if (this.closed) {
        await waitOn([], signal);
        return null;
      }
      await waitOn(this.waiters, signal);
    }
  }

  /**
   * Explicit fetches, each for no more batches than there is room for: every message delivered
   * to this instance is one it holds (and keeps alive with `working`), none waits unseen in a
   * client buffer while its ack wait runs out.
   */
  private async run(): Promise<void> {
    let consumer: Consumer | null = null;
    while (!this.closed && !this.draining) {
      if (this.paused) {
        await waitOn(this.resumeWaiters, null);
        continue;
      }
      const count = this.fetchCount();
      if (count === 0) {
        await waitOn(this.readerWaiters, null);
        continue;
      }
      try {
        consumer ??= await this.options.consumer();
        const messages = await consumer.fetch({ max_messages: count, expires: PULL_EXPIRES_MS });
        for await (const m of messages) {
          // A batch that arrives once this instance paused or began to stop goes straight back.
          if (this.paused || this.draining) m.nak();
          else this.take(m);
        }
      } catch (err) {
        const message = (err as Error).message;
        // A fetch the server ended without its heartbeat (a busy or restarting server): fetch again.
        if (/heartbeats missed/i.test(message)) continue;
        consumer = null;
        if (this.closed) return;
        this.options.logger.warn({ sink: this.options.sink, err: { message } }, 'reading the spool stream failed; retrying');
        await new Promise((r) => setTimeout(r, 1_000).unref());
      }
    }
  }

  /**
   * How many batches the next fetch asks for (0: wait for the worker first): the room left in
   * `prefetch`, and in `prefetchBytes` at the size of the largest recent batch or of the
   * stream's average one, whichever is larger (so the byte share holds as long as the batches
   * ahead are not larger than both). Counted, not byte-limited: this client's byte-limited
   * fetches end early against nats-server 2.9 ("heartbeats missed"). With nothing queued, one
   * batch of any size is asked for, so a large one cannot stall the feed.
   */
  private fetchCount(): number {
    const room = this.options.prefetch - this.queue.length;
    if (room <= 0) return 0;
    // The stream's average too: the batches ahead may be larger than the last ones taken.
    const average = this.options.averageBytes();
    const largest = Math.max(average, ...this.recentSizes);
    let fits = Math.min(room, Math.floor((this.options.prefetchBytes - this.queuedBytes) / Math.max(1, largest)));
    // Until the stream's average is known, a few small batches say little of those behind them:
    // the count grows with what has been seen.
    if (average === 0) fits = Math.min(fits, this.recentSizes.length);
    return this.queue.length === 0 ? Math.max(1, fits) : Math.max(0, fits);
  }

  private take(m: JsMsg): void {
    const seq = ++this.lastSeq;
    this.held.set(seq, m);
    let record: SpoolRecord;
    try {
      const r = messageRecord(m.data, (name) => m.headers?.get(name) ?? '');
      record = { seq, bytes: m.data.byteLength, ...r };
      this.options.observe(r.eventCount);
    } catch (err) {
      record = { seq, targets: 0, bytes: m.data.byteLength, ...NO_EVENTS, decodeError: `stream message ${m.seq}: ${(err as Error).message}` };
    }
    this.queue.push(record);
    this.queuedBytes += record.bytes;
    this.recentSizes.push(record.bytes);
    if (this.recentSizes.length > RECENT_SIZES) this.recentSizes.shift();
    for (const wake of this.waiters.splice(0)) wake();
  }
}

function waitOn(list: Array<() => void>, signal: AbortSignal | null): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      signal?.removeEventListener('abort', done);
      resolve();
    };
    if (signal !== null) {
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', done, { once: true });
    }
    list.push(done);
  });
}
