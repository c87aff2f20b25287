import { AckPolicy, DeliverPolicy, DiscardPolicy, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType, type ConsumerConfig, type JetStreamManager, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsSpoolConfig } from '../../config/config.js';
import { MothershipError } from '../../lib/errors.js';
import type { SinkName } from '../../sinks/sink.js';
import type { Logger } from '../../telemetry/logger.js';

/**
 * Batches one sink's consumer may hold out (taken by some instance, not yet acknowledged), across
 * every instance: far above what the instances fetch, so it never stalls delivery, but a bound.
 */
export const MAX_ACK_PENDING = 10_000;

export interface StreamSettings extends NatsSpoolConfig {
  readonly maxBytes: number;
}

/**
 * Creates the spool's stream, or brings an existing one to the configured size, replicas and
 * windows. Interest retention: a batch stays until every sink's consumer has acknowledged it, as
 * a disk segment does, and discard-new: a full stream refuses batches instead of dropping old ones.
 */
export async function ensureStream(jsm: JetStreamManager, settings: StreamSettings, logger: Logger): Promise<StreamInfo> {
  const wanted: Partial<StreamConfig> & { name: string } = {
    name: settings.stream,
    subjects: [settings.subject],
    retention: RetentionPolicy.Interest,
    discard: DiscardPolicy.New,
    storage: StorageType.File,
    num_replicas: settings.replicas,
    max_bytes: settings.maxBytes,
    max_age: nanos(settings.maxAgeMs),
    duplicate_window: nanos(settings.duplicateWindowMs),
  };
  let info = await streamInfo(jsm, settings.stream);
  if (info === null) {
    try {
      info = await jsm.streams.add(wanted);
      logger.info({ stream: settings.stream, replicas: settings.replicas, maxBytes: settings.maxBytes }, 'created the spool stream');
      return info;
    } catch (err) {
      // Another instance created it at the same moment: take theirs, then check it.
      info = await streamInfo(jsm, settings.stream);
      if (info === null) throw spoolSetupError(`could not create stream ${settings.stream}`, err);
    }
  }
  const c = info.config;
  if (c.retention !== RetentionPolicy.Interest) {
    throw new MothershipError('config_invalid', `SPOOL_NATS_STREAM: stream ${settings.stream} exists with ${c.retention} retention; the spool needs its own stream with interest retention: name another stream or delete this one`);
  }
  if (!c.subjects.includes(settings.subject)) {
    throw new MothershipError('config_invalid', `SPOOL_NATS_STREAM: stream ${settings.stream} exists without the subject ${settings.subject}: name another stream or delete this one`);
  }
  const changed = c.num_replicas !== settings.replicas || c.max_bytes !== settings.maxBytes || c.max_age !== wanted.max_age || c.duplicate_window !== wanted.duplicate_window || c.discard !== DiscardPolicy.New;
  if (!changed) return info;
  try {
    const updated = await jsm.streams.update(settings.stream, { ...c, num_replicas: settings.replicas, max_bytes: settings.maxBytes, max_age: wanted.max_age ?? 0, duplicate_window: wanted.duplicate_window ?? 0, discard: DiscardPolicy.New });
    logger.info({ stream: settings.stream, replicas: settings.replicas, maxBytes: settings.maxBytes, was: { replicas: c.num_replicas, maxBytes: c.max_bytes } }, 'updated the spool stream to this configuration');
    return updated;
  } catch (err) {
    throw spoolSetupError(`stream ${settings.stream} could not be brought to SPOOL_NATS_REPLICAS=${settings.replicas}, SPOOL_MAX_BYTES=${settings.maxBytes}`, err);
  }
}

/** The durable consumer of each sink, shared by every instance; warns about consumers of sinks not enabled here. */
export async function ensureConsumers(jsm: JetStreamManager, settings: StreamSettings, sinks: readonly SinkName[], logger: Logger): Promise<void> {
  for (const sink of sinks) await ensureConsumer(jsm, settings, sink);
  for await (const c of jsm.consumers.list(settings.stream)) {
    if (!(sinks as readonly string[]).includes(c.name)) {
      logger.warn(
        { stream: settings.stream, consumer: c.name, pending: c.num_pending + c.num_ack_pending },
        'the spool stream has a consumer no sink here reads: it keeps every batch until acknowledged. If no instance delivers to that sink any more (check every instance\'s TSDB_ENABLED/LOKI_ENABLED first: deleting a consumer an instance still reads drops its batches), delete it with nats consumer rm',
      );
    }
  }
}

/** One sink's durable consumer: created if missing, its ack wait and limits brought to the configuration. */
export async function ensureConsumer(jsm: JetStreamManager, settings: StreamSettings, sink: SinkName): Promise<void> {
  const wanted: Partial<ConsumerConfig> = {
    durable_name: sink,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(settings.ackWaitMs),
    max_ack_pending: MAX_ACK_PENDING,
    // Never given up on by JetStream: a batch that keeps failing goes to the dead letters by
    // the worker's retry budget, as with the disk spool.
    max_deliver: -1,
    deliver_policy: DeliverPolicy.All,
    filter_subject: settings.subject,
  };
  try {
    const existing = await jsm.consumers.info(settings.stream, sink).catch((err: unknown) => {
      if (isConsumerNotFound(err)) return null;
      throw err;
    });
    if (existing === null) {
      await jsm.consumers.add(settings.stream, wanted).catch(async (err: unknown) => {
        // Created by another instance meanwhile.
        if ((await jsm.consumers.info(settings.stream, sink).catch(() => null)) === null) throw err;
      });
    } else if (existing.config.ack_wait !== wanted.ack_wait || existing.config.max_ack_pending !== MAX_ACK_PENDING) {
      await jsm.consumers.update(settings.stream, sink, { ack_wait: wanted.ack_wait ?? 0, max_ack_pending: MAX_ACK_PENDING });
    }
  } catch (err) {
    if (err instanceof MothershipError) throw err;
    throw spoolSetupError(`could not set up the ${sink} consumer of stream ${settings.stream}`, err);
  }
}

export function isConsumerNotFound(err: unknown): boolean {
  return (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) || /consumer not found/i.test((err as Error).message);
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | null> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return null;
    throw spoolSetupError(`could not read stream ${name}`, err);
  }
}

/** Refusals of rights are configuration errors; anything else is a start-up failure with its cause. */
function spoolSetupError(what: string, err: unknown): MothershipError {
  const message = (err as Error).message;
  if (/permission|authorization|not enabled/i.test(message)) {
    return new MothershipError('config_invalid', `JetStream refused the spool set-up (${what}): ${message}; the NATS user needs JetStream enabled and rights on $JS.API.>`, { cause: err });
  }
  return new MothershipError('startup_failed', `JetStream: ${what}: ${message}`, { cause: err });
}
