/**
 * What `bench --jetstream` asks of NATS itself: whether JetStream answers at the URL (before
 * spending a whole disk run on a comparison that cannot finish), a stream name of its own for
 * the run, that stream's removal at the end, and which local process is the nats-server (its CPU
 * is part of what a message costs when the spool is a JetStream stream).
 */
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { healthBody, isRecord } from './database-mode.js';
import { listenerPid } from './server.js';

const CONNECT_TIMEOUT_MS = 3_000;

/** A stream no other run or instance names, so the JetStream case starts empty and owns what it deletes. */
export function benchStreamName(): string {
  return `BENCH_${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}_${randomBytes(3).toString('hex').toUpperCase()}`;
}

/** Null when JetStream answers at `url`; else why not, in a sentence. */
export async function jetstreamProblem(url: string, env: Readonly<Record<string, string>>): Promise<string | null> {
  let nc: NatsConnection;
  try {
    nc = await connect(connectOptions(url, env));
  } catch (err) {
    return `no NATS server answers (${errorText(err)})`;
  }
  try {
    // jetstreamManager() asks the server for the account's JetStream info: it fails when the
    // server runs without -js, which a plain connect would not reveal.
    await jetstreamManager(nc, { timeout: CONNECT_TIMEOUT_MS });
    return null;
  } catch (err) {
    return `NATS answers but JetStream does not (${errorText(err)}): start nats-server with -js`;
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** Deletes the run's stream; null when done (or already gone), else why not. */
export async function deleteStream(url: string, env: Readonly<Record<string, string>>, stream: string): Promise<string | null> {
  try {
    const nc = await connect(connectOptions(url, env));
    try {
      const jsm = await jetstreamManager(nc, { timeout: CONNECT_TIMEOUT_MS });
      await jsm.streams.delete(stream);
      return null;
    } finally {
      await nc.close().catch(() => undefined);
    }
  } catch (err) {
    return /not found/i.test(errorText(err)) ? null : errorText(err);
  }
}

/**
 * The pid of the nats-server behind SPOOL_URL when it is one server on this machine (found by its
 * listening socket in /proc); null otherwise, and then its CPU is not reported.
 */
export function localNatsPid(spoolUrl: string): number | null {
  const entries = spoolUrl.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (entries.length !== 1) return null;
  try {
    const u = new URL(entries[0] ?? '');
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) return null;
    return listenerPid(Number(u.port || 4222));
  } catch {
    return null;
  }
}

/** The spool backend the server says it runs (/health `spool.backend`): the proof of what a case measured. */
export async function spoolBackend(host: string, port: number): Promise<string> {
  const body = await healthBody(host, port);
  const spool = isRecord(body) ? body['spool'] : undefined;
  if (!isRecord(spool)) return 'unknown (/health has no spool section)';
  // JetStream's view names its backend; the disk spool's (bytes, segments, fsync) does not.
  return typeof spool['backend'] === 'string' ? spool['backend'] : 'disk';
}

/** As the server connects (src/config/load.ts): user and password from the URL, a token from SPOOL_NATS_TOKEN. */
function connectOptions(url: string, env: Readonly<Record<string, string>>): NodeConnectionOptions {
  const options: NodeConnectionOptions = { servers: [], timeout: CONNECT_TIMEOUT_MS, reconnect: false, name: 'mothership-bench' };
  const servers: string[] = [];
  for (const entry of url.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const u = new URL(entry);
    if (u.username !== '') {
      options.user = decodeURIComponent(u.username);
      options.pass = decodeURIComponent(u.password);
    }
    servers.push(`${u.protocol}//${u.host}`);
  }
  options.servers = servers;
  const token = env['SPOOL_NATS_TOKEN'];
  if (token !== undefined && token !== '') options.token = token;
  return options;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
