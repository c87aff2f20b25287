import { JetStreamApiError, jetstream, jetstreamManager, type Consumer, type ConsumerInfo, type JetStreamClient, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { NatsSpoolConfig } from '../../config/config.js';
import { MothershipError } from '../../lib/errors.js';
import type { IngestEvent } from '../../pipeline/event.js';
import type { SinkName } from '../../sinks/sink.js';
import type { Logger } from '../../telemetry/logger.js';
import { SINK_BITS } from '../spool.js';
import { nearlyFull, secondsToFree, type AppendOptions, type SinkBacklog, type SinkFeed, type SpoolStore } from '../store.js';
import { connectNats, type ConnectionState } from './connection.js';
import { JetStreamFeed } from './feed.js';
import { batchMessages, EVENTS_HEADER, TARGETS_HEADER } from './message.js';
import { ensureConsumer, ensureConsumers, ensureStream, isConsumerNotFound, type StreamSettings } from './setup.js';

export interface JetStreamSpoolOptions {
  readonly nats: NatsSpoolConfig;
  /** The stream's size (SPOOL_MAX_BYTES). */
  readonly maxBytes: number;
  readonly sinks: readonly SinkName[];
  readonly logger: Logger;
  readonly now: () => number;
  /** Records each sink fetches ahead of its worker on this instance. */
  readonly prefetch?: number;
  /** Bytes all sinks together fetch ahead of their workers (SPOOL_MEMORY_BYTES), shared equally. */
  readonly memoryBytes?: number;
  /** How often the stream's and consumers' state is read for /health, /metrics and backlogs. */
  readonly pollMs?: number;
}

const DEFAULT_PREFETCH = 128;
const DEFAULT_POLL_MS = 1_000;
const DEFAULT_MEMORY_BYTES = 32 * 1024 * 1024;
/** A publish failure this recent makes /health say the spool refuses batches. */
const RECENT_FAILURE_MS = 10_000;
/** What a node waits after a 503 while JetStream is unreachable or electing a leader. */
const UNAVAILABLE_RETRY_SECONDS = 2;
/** JetStream API codes of a stream or server out of room. */
const FULL_CODES = new Set([10077, 10023, 10047]);

interface Observed {
  readonly atMs: number;
  readonly stream: StreamInfo;
  readonly consumers: ReadonlyMap<SinkName, ConsumerInfo>;
}

/**
 * The spool as a JetStream stream shared by every mothership that names it (SPOOL_URL). A batch
 * is acknowledged to the node once JetStream has stored it on the stream's replicas; each sink's
 * durable consumer hands every batch to one live instance, which acknowledges it to JetStream
 * once the sink has committed it. A resend within the duplicate window is stored once (the
 * batch's id is the message id); event ids keep the sinks free of duplicates beyond it.
 */
export class JetStreamSpool implements SpoolStore {
  readonly backend = 'jetstream';
  readonly shared = true;
  private readonly feeds = new Map<SinkName, JetStreamFeed>();
  private observed: Observed | null = null;
  private pollError: string | null = null;
  private lastFailure: { atMs: number; message: string } | null = null;
  private readonly sizes = { records: 0, events: 0 };
  private drain = { firstSeq: 0, atMs: 0, messagesPerSecond: 0 };
  private readonly poller: NodeJS.Timeout;
  private polling: Promise<void> | null = null;
  private closed = false;

  private constructor(
    private readonly options: JetStreamSpoolOptions,
    private readonly nc: NatsConnection,
    private readonly state: ConnectionState,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly settings: StreamSettings,
  ) {
    this.poller = setInterval(() => void this.poll(), options.pollMs ?? DEFAULT_POLL_MS);
    this.poller.unref();
  }

  static async open(options: JetStreamSpoolOptions): Promise<JetStreamSpool> {
    const { nc, state } = await connectNats(options.nats, options.logger, options.now);
    try {
      const settings: StreamSettings = { ...options.nats, maxBytes: options.maxBytes };
      const jsm = await setUp(nc, settings, options);
      const spool = new JetStreamSpool(options, nc, state, jsm, jetstream(nc), settings);
      await spool.poll();
      return spool;
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  get sinks(): readonly SinkName[] {
    return this.options.sinks;
  }

  get totalBytes(): number {
    return this.observed?.stream.state.bytes ?? 0;
  }

  get maxBytes(): number {
    return this.options.maxBytes;
  }

  /** Resolves with the stream sequence of the batch's (last) message once JetStream stored it. */
  async append(events: readonly IngestEvent[], options: AppendOptions = {}): Promise<number> {
    if (this.closed) throw new MothershipError('shutting_down', 'The spool is closed');
    // Known down: refused at once, and not counted as a publish failure (/health already says why).
    if (!this.state.connected) throw this.unavailable(`JetStream is unreachable (${this.state.reason ?? 'not connected'})`, undefined, false);
    const targets = options.targets ?? this.allTargets();
    const messages = batchMessages(events, targets, this.nc.info?.max_payload ?? 1024 * 1024, options.dedupe ?? true);
    let seq = 0;
    for (const m of messages) {
      const h = headers();
      h.set(TARGETS_HEADER, String(targets));
      h.set(EVENTS_HEADER, String(m.eventCount));
      const publish = this.js.publish(this.options.nats.subject, m.payload, { headers: h, timeout: this.options.nats.publishTimeoutMs, ...(m.msgId === null ? {} : { msgID: m.msgId }) });
      // A connection lost meanwhile answers now, not at the publish timeout. The batch may have
      // been stored all the same: the node's resend is then de-duplicated by its message id.
      let unsubscribe: () => void = () => undefined;
      const lost = new Promise<never>((_, reject) => {
        unsubscribe = this.state.onLost(() => reject(this.unavailable(`the NATS connection was lost before JetStream confirmed the batch (${this.state.reason ?? 'disconnected'})`, undefined, false)));
      });
      try {
        seq = (await Promise.race([publish, lost])).seq;
      } catch (err) {
        publish.catch(() => undefined);
        throw this.publishError(err, m.payload.length);
      } finally {
        unsubscribe();
      }
      this.observe(m.eventCount);
    }
    this.lastFailure = null;
    return seq;
  }

  feed(sink: SinkName): SinkFeed {
    let feed = this.feeds.get(sink);
    if (feed === undefined) {
      feed = new JetStreamFeed({
        sink,
        consumer: () => this.consumerOf(sink),
        prefetch: this.options.prefetch ?? DEFAULT_PREFETCH,
        prefetchBytes: Math.floor((this.options.memoryBytes ?? DEFAULT_MEMORY_BYTES) / this.options.sinks.length),
        averageBytes: () => this.averageBytes(),
        ackWaitMs: this.options.nats.ackWaitMs,
        connection: this.state,
        backlog: () => this.backlogOf(sink),
        observe: (events) => this.observe(events),
        logger: this.options.logger,
      });
      this.feeds.set(sink, feed);
    }
    return feed;
  }

  /**
   * The consumer's lag, shared by every instance: batches not yet delivered to any instance plus
   * those taken and not yet acknowledged. Events and bytes are estimated from the average batch.
   */
  backlogOf(sink: SinkName): SinkBacklog {
    const c = this.observed?.consumers.get(sink);
    const records = c === undefined ? 0 : c.num_pending + c.num_ack_pending;
    const bytesPer = this.averageBytes();
    const eventsPer = this.sizes.records > 0 ? this.sizes.events / this.sizes.records : 0;
    return { ackedSeq: this.feeds.get(sink)?.ackedSeq() ?? 0, records, events: Math.round(records * eventsPer), bytes: Math.round(records * bytesPer) };
  }

  /** The average batch in the stream, in bytes, as last observed (0 when empty or not known). */
  private averageBytes(): number {
    const stream = this.observed?.stream.state;
    return stream !== undefined && stream.messages > 0 ? stream.bytes / stream.messages : 0;
  }

  refusal(): string | null {
    if (!this.state.connected) {
      const downS = Math.round((this.options.now() - this.state.sinceMs) / 1000);
      return `JetStream unreachable (${this.state.reason ?? 'not connected'} ${downS} s ago): batches are refused with 503 until NATS is back`;
    }
    if (this.lastFailure !== null && this.lastFailure.atMs > this.state.backAtMs && this.options.now() - this.lastFailure.atMs < RECENT_FAILURE_MS) {
      return `JetStream did not store the last batch: ${this.lastFailure.message}`;
    }
    if (nearlyFull(this.totalBytes, this.options.maxBytes)) return 'spool full (the JetStream stream is at SPOOL_MAX_BYTES): sinks are behind; batches are refused with 503 until they catch up';
    return null;
  }

  healthView(): Readonly<Record<string, unknown>> {
    const o = this.observed;
    const cluster = o?.stream.cluster;
    return {
      backend: 'jetstream',
      connected: this.state.connected,
      server: this.state.connected ? (this.nc.info?.server_name ?? null) : null,
      stream: this.options.nats.stream,
      replicas: o?.stream.config.num_replicas ?? this.options.nats.replicas,
      bytes: this.totalBytes,
      max_bytes: this.options.maxBytes,
      messages: o?.stream.state.messages ?? 0,
      full: nearlyFull(this.totalBytes, this.options.maxBytes),
      cluster: cluster === undefined ? null : {
        leader: cluster.leader ?? null,
        replicas: (cluster.replicas ?? []).map((r) => ({ name: r.name, current: r.current, offline: r.offline === true, lag: r.lag ?? 0 })),
      },
      consumers: Object.fromEntries(this.options.sinks.map((sink) => {
        const c = o?.consumers.get(sink);
        return [sink, { pending: c?.num_pending ?? 0, ack_pending: c?.num_ack_pending ?? 0, redelivered: c?.num_redelivered ?? 0, held_here: this.feeds.get(sink)?.holding ?? 0 }];
      })),
      observed_seconds_ago: o === null ? null : Math.round((this.options.now() - o.atMs) / 1000),
      ...(this.pollError === null ? {} : { observe_error: this.pollError }),
    };
  }

  adminView(): Readonly<Record<string, unknown>> {
    const state = this.observed?.stream.state;
    return {
      ...this.healthView(),
      servers: this.options.nats.servers,
      subject: this.options.nats.subject,
      first_seq: state?.first_seq ?? 0,
      last_seq: state?.last_seq ?? 0,
      ack_wait_seconds: this.options.nats.ackWaitMs / 1000,
      duplicate_window_seconds: this.options.nats.duplicateWindowMs / 1000,
      max_age_hours: this.options.nats.maxAgeMs / 3_600_000,
    };
  }

  /** Hands back unfinished batches (to other instances), then drains the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poller);
    await Promise.all([...this.feeds.values()].map((f) => f.close()));
    await this.polling;
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close();
    }
  }

  private allTargets(): number {
    let mask = 0;
    for (const sink of this.options.sinks) mask |= SINK_BITS[sink];
    return mask;
  }

  /** The sink's consumer; recreated when someone deleted it (`nats consumer rm`). */
  private async consumerOf(sink: SinkName): Promise<Consumer> {
    try {
      return await this.js.consumers.get(this.options.nats.stream, sink);
    } catch (err) {
      if (!isConsumerNotFound(err)) throw err;
      await this.recreateConsumer(sink);
      return await this.js.consumers.get(this.options.nats.stream, sink);
    }
  }

  private async recreateConsumer(sink: SinkName): Promise<void> {
    this.options.logger.error(
      { sink, stream: this.options.nats.stream },
      'the consumer of this sink was deleted from the spool stream: recreated. Batches stored while it was missing were kept only for the other sinks',
    );
    await ensureConsumer(this.jsm, this.settings, sink);
  }

  private observe(eventCount: number): void {
    this.sizes.records++;
    this.sizes.events += eventCount;
  }

  /**
   * An instance that has neither taken nor published a batch yet (just started) reads the size
   * of the newest one in the stream, so its backlog in events is not reported as 0.
   */
  private async sampleSizes(stream: StreamInfo): Promise<void> {
    if (this.sizes.records > 0 || stream.state.messages === 0) return;
    const last = await this.jsm.streams.getMessage(this.options.nats.stream, { seq: stream.state.last_seq }).catch(() => null);
    const events = Number(last?.header.get(EVENTS_HEADER) ?? '');
    if (last !== null && Number.isSafeInteger(events) && events > 0 && this.sizes.records === 0) this.observe(events);
  }

  private poll(): Promise<void> {
    if (this.closed || !this.state.connected) return Promise.resolve();
    this.polling ??= (async () => {
      try {
        const stream = await this.jsm.streams.info(this.options.nats.stream);
        const consumers = new Map<SinkName, ConsumerInfo>();
        for (const sink of this.options.sinks) {
          const info = await this.jsm.consumers.info(this.options.nats.stream, sink).catch(async (err: unknown) => {
            if (!isConsumerNotFound(err)) throw err;
            await this.recreateConsumer(sink);
            return this.jsm.consumers.info(this.options.nats.stream, sink);
          });
          consumers.set(sink, info);
        }
        await this.sampleSizes(stream);
        const now = this.options.now();
        this.noteDrain(stream.state.first_seq, now);
        this.observed = { atMs: now, stream, consumers };
        this.pollError = null;
      } catch (err) {
        this.pollError = (err as Error).message;
      } finally {
        this.polling = null;
      }
    })();
    return this.polling;
  }

  /** Batches leave the stream from its head as every sink acknowledges them: their pace sets Retry-After. */
  private noteDrain(firstSeq: number, now: number): void {
    const d = this.drain;
    if (d.atMs > 0 && now > d.atMs) {
      const rate = (Math.max(0, firstSeq - d.firstSeq) * 1000) / (now - d.atMs);
      d.messagesPerSecond = 0.5 * d.messagesPerSecond + 0.5 * rate;
    }
    this.drain = { firstSeq, atMs: now, messagesPerSecond: d.messagesPerSecond };
  }

  private unavailable(message: string, cause?: unknown, noted = true): MothershipError {
    if (noted) this.lastFailure = { atMs: this.options.now(), message };
    return new MothershipError('storage_unavailable', `${message}; retry later (a resend is stored once)`, { retryAfterSeconds: UNAVAILABLE_RETRY_SECONDS, ...(cause === undefined ? {} : { cause }) });
  }

  private publishError(err: unknown, payloadBytes: number): MothershipError {
    if (err instanceof MothershipError) return err;
    const message = (err as Error).message;
    if ((err instanceof JetStreamApiError && FULL_CODES.has(err.code)) || /maximum (bytes|messages)|insufficient (storage|resources)/i.test(message)) {
      this.lastFailure = { atMs: this.options.now(), message: `the stream is full (${message})` };
      return new MothershipError('spool_full', `The spool stream is full (${message}; SPOOL_MAX_BYTES=${this.options.maxBytes}) while sinks catch up`, {
        cause: err,
        retryAfterSeconds: this.fullRetryAfterSeconds(payloadBytes),
      });
    }
    this.options.logger.warn({ err: { message }, stream: this.options.nats.stream }, 'JetStream did not store a batch; answered 503');
    return this.unavailable(`JetStream did not store the batch (${message})`, err);
  }

  private fullRetryAfterSeconds(payloadBytes: number): number {
    const bytesPer = this.averageBytes() || payloadBytes;
    // Room for this batch and a little more, so the retry finds space rather than the edge.
    return secondsToFree(Math.max(payloadBytes, this.options.maxBytes / 100), this.drain.messagesPerSecond * bytesPer);
  }
}

/** How long start-up waits for JetStream to answer (a cluster still electing its leader). */
const SETUP_WAIT_MS = 60_000;

/**
 * The stream and the sinks' consumers, once JetStream answers: a server that is up but has no
 * JetStream leader yet (a cluster starting) is waited for, as a server that is not up is. What
 * stays wrong after the wait, or is a configuration problem at once, stops start-up.
 */
async function setUp(nc: NatsConnection, settings: StreamSettings, options: JetStreamSpoolOptions): Promise<JetStreamManager> {
  const deadline = options.now() + SETUP_WAIT_MS;
  let warned = false;
  for (;;) {
    try {
      const jsm = await jetstreamManager(nc, { timeout: 5_000 });
      await ensureStream(jsm, settings, options.logger);
      await ensureConsumers(jsm, settings, options.sinks, options.logger);
      return jsm;
    } catch (err) {
      if (err instanceof MothershipError && err.code === 'config_invalid') throw err;
      const message = (err as Error).message;
      if (options.now() >= deadline) {
        if (err instanceof MothershipError) throw err;
        throw /not enabled/i.test(message)
          ? new MothershipError('config_invalid', `JetStream is not available on the NATS server (${message}): start nats-server with -js (JetStream on)`, { cause: err })
          : new MothershipError('startup_failed', `JetStream did not answer within ${SETUP_WAIT_MS / 1000} s: ${message}`, { cause: err });
      }
      if (!warned) options.logger.warn({ err: { message } }, 'waiting for JetStream to answer (a cluster electing its leader?)');
      warned = true;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}
