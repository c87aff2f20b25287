import { jetstreamManager, JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsSpoolConfig } from '../config/config.js';
import { configurationProblem, connectOptions } from '../spool/jetstream/connection.js';

export interface JetStreamReport {
  readonly backend: 'jetstream';
  readonly servers: readonly string[];
  readonly server: string | null;
  readonly stream: {
    readonly name: string;
    readonly subjects: readonly string[];
    readonly retention: string;
    readonly replicas: number;
    readonly max_bytes: number;
    readonly messages: number;
    readonly bytes: number;
    readonly first_seq: number;
    readonly last_seq: number;
    readonly cluster: { readonly leader: string | null; readonly replicas: ReadonlyArray<{ name: string; current: boolean; offline: boolean; lag: number }> } | null;
  };
  /** Each durable consumer (one per sink): batches not yet taken, taken and not acknowledged, redelivered. */
  readonly consumers: Readonly<Record<string, { pending: number; ack_pending: number; redelivered: number; ack_floor_seq: number; waiting_pulls: number }>>;
}

/**
 * What a JetStream spool holds, read through the JetStream API only (stream and consumer info):
 * nothing is taken or acknowledged, so it is safe beside running servers.
 */
export async function inspectJetStream(config: NatsSpoolConfig): Promise<JetStreamReport> {
  // One attempt, a few seconds: a command line should answer, not wait for a cluster.
  const options = { ...(await connectOptions(config)), maxReconnectAttempts: 0, timeout: 3_000 };
  let nc;
  try {
    nc = await connect(options);
  } catch (err) {
    const refused = configurationProblem(err);
    throw new Error(refused === null ? `no NATS server of ${config.servers.join(', ')} answered: ${(err as Error).message}` : `NATS refused the connection (${refused})`, { cause: err });
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5_000 });
    const info = await jsm.streams.info(config.stream).catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) throw new Error(`no stream ${config.stream} on ${config.servers.join(', ')} (a mothership creates it at start-up; check SPOOL_NATS_STREAM)`);
      throw err;
    });
    const consumers: Record<string, JetStreamReport['consumers'][string]> = {};
    for await (const c of jsm.consumers.list(config.stream)) {
      consumers[c.name] = { pending: c.num_pending, ack_pending: c.num_ack_pending, redelivered: c.num_redelivered, ack_floor_seq: c.ack_floor.stream_seq, waiting_pulls: c.num_waiting };
    }
    const cluster = info.cluster;
    return {
      backend: 'jetstream',
      servers: config.servers,
      server: nc.info?.server_name ?? null,
      stream: {
        name: info.config.name,
        subjects: info.config.subjects,
        retention: info.config.retention,
        replicas: info.config.num_replicas,
        max_bytes: info.config.max_bytes,
        messages: info.state.messages,
        bytes: info.state.bytes,
        first_seq: info.state.first_seq,
        last_seq: info.state.last_seq,
        cluster: cluster === undefined ? null : { leader: cluster.leader ?? null, replicas: (cluster.replicas ?? []).map((r) => ({ name: r.name, current: r.current, offline: r.offline === true, lag: r.lag ?? 0 })) },
      },
      consumers,
    };
  } finally {
    await nc.close();
  }
}
