import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { freePort } from '../../src/lib/free-port.js';

/** The machine's NATS JetStream (TEST_NATS_URL, default the one started before each session). */
export const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

/** Null when NATS_URL answers, else why the tests that need it skip. */
export async function natsSkipReason(): Promise<string | null> {
  const url = new URL(NATS_URL);
  const open = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port || 4222) });
    socket.setTimeout(1_000, () => socket.destroy());
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
  return open ? null : `no NATS at ${NATS_URL} (set TEST_NATS_URL to a nats-server -js)`;
}

/** The nats-server binary, or null (the tests that start their own servers then skip). */
export function natsServerBinary(): string | null {
  for (const candidate of [process.env.NATS_SERVER_BIN, 'nats-server', '/usr/sbin/nats-server', '/usr/local/bin/nats-server']) {
    if (candidate === undefined) continue;
    const r = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return candidate;
  }
  return null;
}

export function uniqueStream(prefix = 'T'): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`.toUpperCase();
}

export async function deleteStream(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: url, timeout: 3_000 });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}

export interface NatsNode {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /** SIGKILL: the node dies as a lost machine would. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and store. */
  start(): Promise<void>;
}

interface NodeSpec {
  readonly name: string;
  readonly port: number;
  readonly storeDir: string;
  readonly token?: string;
  readonly cluster?: { readonly port: number; readonly routes: readonly number[] };
}

/** A nats-server with JetStream on a free port, its store in a temp folder; `stop` removes it. */
export async function startNats(binary: string, options: { readonly token?: string } = {}): Promise<NatsNode & { stop(): Promise<void> }> {
  const storeDir = await mkdtemp(path.join(os.tmpdir(), 'nats-test-'));
  const node = natsNode(binary, { name: 'solo', port: await freePort(), storeDir, ...options });
  await node.start();
  return {
    ...node,
    async stop() {
      await node.kill();
      await rm(storeDir, { recursive: true, force: true });
    },
  };
}

export interface NatsCluster {
  readonly nodes: readonly NatsNode[];
  /** Every node's client URL, comma-separated (as SPOOL_URL takes them). */
  readonly urls: string;
  stop(): Promise<void>;
}

/** Three (or `size`) clustered JetStream servers on free ports; resolves once JetStream has a meta leader. */
export async function startNatsCluster(binary: string, size = 3): Promise<NatsCluster> {
  const storeRoot = await mkdtemp(path.join(os.tmpdir(), 'nats-cluster-'));
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), cluster: await freePort() })));
  const nodes = ports.map((p, i) =>
    natsNode(binary, { name: `n${i + 1}`, port: p.client, storeDir: path.join(storeRoot, `n${i + 1}`), cluster: { port: p.cluster, routes: ports.filter((_, j) => j !== i).map((q) => q.cluster) } }),
  );
  const cluster: NatsCluster = {
    nodes,
    urls: nodes.map((n) => n.url).join(','),
    async stop() {
      await Promise.all(nodes.map((n) => n.kill()));
      await rm(storeRoot, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await waitForMetaLeader(cluster.urls, 30_000);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

function natsNode(binary: string, spec: NodeSpec): NatsNode {
  let child: ChildProcess | null = null;
  const url = `nats://127.0.0.1:${spec.port}`;
  return {
    name: spec.name,
    url,
    port: spec.port,
    async start() {
      const args = ['-a', '127.0.0.1', '-p', String(spec.port), '-js', '-sd', spec.storeDir, '-n', spec.name];
      if (spec.token !== undefined) args.push('--auth', spec.token);
      if (spec.cluster !== undefined) {
        args.push('--cluster_name', 'edgebot-test', '--cluster', `nats://127.0.0.1:${spec.cluster.port}`, '--routes', spec.cluster.routes.map((p) => `nats://127.0.0.1:${p}`).join(','));
      }
      const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      const killOnExit = (): void => {
        proc.kill('SIGKILL');
      };
      process.once('exit', killOnExit);
      proc.once('exit', () => process.off('exit', killOnExit));
      const log: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`nats-server ${spec.name} did not start:\n${log.join('')}`)), 20_000);
        proc.stderr?.setEncoding('utf8');
        proc.stderr?.on('data', (chunk: string) => {
          log.push(chunk);
          if (log.join('').includes('Server is ready')) {
            clearTimeout(timer);
            resolve();
          }
        });
        proc.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`nats-server ${spec.name} exited with ${String(code)}:\n${log.join('')}`));
        });
      });
    },
    async kill() {
      const proc = child;
      child = null;
      if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

async function waitForMetaLeader(urls: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const nc = await connect({ servers: urls.split(','), timeout: 2_000 });
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2_000 });
        await jsm.getAccountInfo();
        return;
      } finally {
        await nc.close();
      }
    } catch (err) {
      last = (err as Error).message;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`the NATS cluster elected no JetStream leader in ${timeoutMs} ms: ${last}`);
}

/** One sink's consumer in /health's `spool` section on a JetStream spool. */
export interface ConsumerLag {
  readonly pending: number;
  readonly ack_pending: number;
  readonly redelivered: number;
  readonly held_here: number;
}

/** /health's `spool` section on a JetStream spool, as the tests read it. */
export interface JetStreamSpoolHealth {
  readonly backend?: string;
  readonly stream?: string;
  readonly connected?: boolean;
  readonly observed_seconds_ago?: number | null;
  readonly cluster?: { readonly leader: string | null; readonly replicas: ReadonlyArray<{ name: string; current: boolean; offline: boolean; lag: number }> } | null;
  readonly consumers?: Readonly<Record<string, ConsumerLag>>;
  readonly observe_error?: string;
}
