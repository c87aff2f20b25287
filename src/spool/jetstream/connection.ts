import { readFile } from 'node:fs/promises';
import { AuthorizationError, connect, credsAuthenticator, PermissionViolationError, UserAuthenticationExpiredError, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { NatsSpoolConfig } from '../../config/config.js';
import { MothershipError } from '../../lib/errors.js';
import type { Logger } from '../../telemetry/logger.js';

/** How long start-up waits for a NATS server to answer before it gives up. */
const FIRST_CONNECT_MS = 60_000;
const RETRY_MS = 1_000;

/** The connection's state as the spool needs it: whether publishing can work now, and why not. */
export class ConnectionState {
  connected = true;
  /** Why the connection is down, while it is. */
  reason: string | null = null;
  sinceMs = 0;
  /** When the connection last came back (0: never lost). */
  backAtMs = 0;
  private readonly lostListeners = new Set<() => void>();
  private readonly backListeners = new Set<() => void>();

  /** Calls `listener` each time the connection comes back. */
  onBack(listener: () => void): void {
    this.backListeners.add(listener);
  }

  /** Calls `listener` when the connection is lost; returns the unsubscribe. */
  onLost(listener: () => void): () => void {
    this.lostListeners.add(listener);
    return () => {
      this.lostListeners.delete(listener);
    };
  }

  lost(reason: string, nowMs: number): void {
    this.connected = false;
    this.reason = reason;
    this.sinceMs = nowMs;
    for (const listener of [...this.lostListeners]) listener();
  }

  back(nowMs: number): void {
    this.connected = true;
    this.reason = null;
    this.backAtMs = nowMs;
    for (const listener of [...this.backListeners]) listener();
  }
}

/**
 * Connects to the first NATS server that answers, retrying for a minute while none does (a
 * cluster starting beside us). Refused credentials or rights are configuration errors at once,
 * never "unreachable". Once connected the client reconnects forever on its own.
 */
export async function connectNats(config: NatsSpoolConfig, logger: Logger, now: () => number): Promise<{ nc: NatsConnection; state: ConnectionState }> {
  const options = await connectOptions(config);
  const deadline = now() + FIRST_CONNECT_MS;
  let warned = false;
  for (;;) {
    try {
      const nc = await connect(options);
      const state = new ConnectionState();
      watch(nc, state, logger, now);
      logger.info({ servers: config.servers, server: nc.info?.server_name, cluster: nc.info?.cluster ?? null }, 'connected to NATS for the spool');
      return { nc, state };
    } catch (err) {
      const config_ = configurationProblem(err);
      if (config_ !== null) throw new MothershipError('config_invalid', `NATS refused the mothership (${config_}): check SPOOL_URL's user and password, SPOOL_NATS_TOKEN or SPOOL_NATS_CREDS_FILE`, { cause: err });
      const message = (err as Error).message;
      if (now() >= deadline) {
        throw new MothershipError('startup_failed', `No NATS server of SPOOL_URL answered within ${FIRST_CONNECT_MS / 1000} s (${config.servers.join(', ')}): ${message}`, { cause: err });
      }
      if (!warned) logger.warn({ servers: config.servers, err: { message } }, 'waiting for NATS to answer');
      warned = true;
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }
}

/** Client options from the configuration: servers, credentials, TLS, reconnect forever. */
export async function connectOptions(config: NatsSpoolConfig): Promise<ConnectionOptions> {
  const options: ConnectionOptions = {
    servers: [...config.servers],
    name: 'edgebot-mothership',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    // The client keeps pings short so a dead server is noticed in seconds, not minutes.
    pingInterval: 5_000,
    maxPingOut: 2,
    timeout: 5_000,
    // Otherwise every publish and fetch captures a stack trace for an error it rarely throws:
    // measured at 1.5% of the server's CPU under load.
    noAsyncTraces: true,
  };
  if (config.user !== null) {
    options.user = config.user;
    options.pass = config.password ?? '';
  }
  if (config.token !== null) options.token = config.token;
  if (config.credsFile !== null) {
    const creds = await readFile(config.credsFile).catch((err: unknown) => {
      throw new MothershipError('config_invalid', `SPOOL_NATS_CREDS_FILE: cannot read ${config.credsFile}: ${(err as Error).message}`, { cause: err });
    });
    options.authenticator = credsAuthenticator(new Uint8Array(creds));
  }
  if (config.tls !== null) {
    options.tls = {
      ...(config.tls.caFile === null ? {} : { caFile: config.tls.caFile }),
      ...(config.tls.certFile === null ? {} : { certFile: config.tls.certFile }),
      ...(config.tls.keyFile === null ? {} : { keyFile: config.tls.keyFile }),
    };
  }
  return options;
}

/** What a refused connection says when it is the configuration's fault; null for anything else. */
export function configurationProblem(err: unknown): string | null {
  if (err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError || err instanceof PermissionViolationError) return err.message;
  const message = err instanceof Error ? err.message : String(err);
  return /authorization violation|authentication|permissions violation/i.test(message) ? message : null;
}

function watch(nc: NatsConnection, state: ConnectionState, logger: Logger, now: () => number): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        state.lost(`disconnected from ${s.server}`, now());
        logger.warn({ server: s.server }, 'NATS connection lost; batches are refused with 503 until it is back');
      } else if (s.type === 'reconnect') {
        state.back(now());
        logger.info({ server: s.server, downMs: now() - state.sinceMs }, 'NATS connection back');
      } else if (s.type === 'close') {
        state.lost('the NATS connection is closed', now());
      }
    }
  })();
}
