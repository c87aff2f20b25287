import type { FastifyInstance } from 'fastify';
import type { Config, PgConnection } from './config/config.js';
import { DeadLetterStore } from './deadletter/store.js';
import { catchUpSeconds, healthReport } from './delivery/health-report.js';
import { SinkWorker } from './delivery/sink-worker.js';
import { BearerAuth } from './http/auth.js';
import { Credentials, type ReloadReport } from './http/credentials.js';
import { InflightBudget } from './http/inflight-budget.js';
import { RateLimiter } from './http/rate-limit.js';
import { buildHttpServer } from './http/server.js';
import { systemClock, type Clock } from './lib/clock.js';
import { MothershipError } from './lib/errors.js';
import { VERSION } from './lib/version.js';
import { Ingestor } from './pipeline/ingest.js';
import { SinkHealthMonitor } from './sinks/health-monitor.js';
import type { Sink, SinkName } from './sinks/sink.js';
import { StartGate } from './sinks/start-gate.js';
import { startEmbeddedPostgres } from './sinks/tsdb/embedded.js';
import { createLokiSink } from './sinks/loki/sink.js';
import { createTsdbSink } from './sinks/tsdb/sink.js';
import type { WritePathCounts } from './sinks/tsdb/writer.js';
import { JetStreamSpool } from './spool/jetstream/spool.js';
import { Spool } from './spool/spool.js';
import type { SpoolStore } from './spool/store.js';
import type { Logger } from './telemetry/logger.js';
import { Metrics } from './telemetry/metrics.js';

export interface AppDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly random?: () => number;
  /** Process metrics (CPU, memory, event loop); off in tests that build many apps. */
  readonly defaultMetrics?: boolean;
}

/** One enabled sink and how the app drives it. */
export interface SinkSetup {
  readonly sink: Sink;
  /** PostgreSQL write paths, for /metrics (the tsdb sink only). */
  readonly writePaths?: () => Readonly<WritePathCounts>;
  /** Records delivered concurrently. */
  readonly window: number;
  /** How long an /ingest answer waits for this sink before saying `queued` (0: never). */
  readonly waitMs: number;
  /** Merge small records into larger sends (Loki batching). */
  readonly coalesce?: { readonly maxEvents: number; readonly maxWaitMs: number };
  readonly describe?: () => Readonly<Record<string, unknown>>;
}

export interface App {
  readonly http: FastifyInstance;
  readonly spool: SpoolStore;
  readonly workers: readonly SinkWorker[];
  /** Listens on the configured host/port; resolves with the bound address (e.g. http://127.0.0.1:8080). */
  listen(): Promise<string>;
  /**
   * Graceful and idempotent: refuse new batches, finish in-flight requests, let the sinks drain
   * the spool for up to `drainMs` (default SHUTDOWN_TIMEOUT_MS), close everything. After a failed
   * start-up, 0: nothing was served, and what the spool holds stays there for the next start.
   */
  close(drainMs?: number): Promise<void>;
  /**
   * SIGHUP: re-reads AUTH_TOKENS_FILE and the TLS files without dropping connections. A file
   * that fails keeps what was in force (logged at error level). Never throws.
   */
  reload(): Promise<ReloadReport>;
}

type Cleanup = () => Promise<void>;

/** Most events in one PostgreSQL write when records have queued up. */
const TSDB_COALESCE_EVENTS = 5000;

/** How the app drives the PostgreSQL sink (the bench's ingest-path server drives its stand-in the same way). */
export function tsdbDelivery(config: Config): Omit<SinkSetup, 'sink'> {
  return {
    window: config.tsdb.poolMax,
    waitMs: config.tsdb.writeTimeoutMs,
    // Under load, records that queued up while the window was busy go out as one COPY.
    coalesce: { maxEvents: TSDB_COALESCE_EVENTS, maxWaitMs: 0 },
  };
}

/**
 * Builds the mothership from its config: resources first (embedded PostgreSQL), then sinks,
 * spool, delivery workers and the HTTP server. Nothing global: a test can build several apps
 * in one process.
 */
export async function buildApp(config: Config, deps: AppDeps): Promise<App> {
  const cleanups: Cleanup[] = [];
  try {
    const setups: SinkSetup[] = [];
    if (config.tsdb.enabled) {
      const connection = await tsdbConnection(config, deps.logger, cleanups);
      const tsdb = createTsdbSink(config.tsdb, connection, deps.logger);
      setups.push({
        ...tsdbDelivery(config),
        sink: new StartGate(tsdb, deps.logger),
        describe: () => tsdb.describe(),
        writePaths: () => tsdb.writePaths(),
      });
    }
    if (config.loki.enabled) {
      const loki = createLokiSink(config.loki, deps.logger);
      setups.push({
        sink: loki,
        // One push in flight: two could overtake each other, and Loki refuses entries more than
        // an hour behind the newest of their stream.
        window: 1,
        // Loki batches by time, so the answer never waits for it: it reports `queued`.
        waitMs: 0,
        coalesce: { maxEvents: config.loki.batchSize, maxWaitMs: config.loki.batchTimeoutMs },
        describe: () => loki.describe(),
      });
    }
    return await assembleApp(config, deps, setups, cleanups);
  } catch (err) {
    await runCleanups(cleanups, deps.logger);
    throw err;
  }
}

/**
 * The app around a given set of sinks (tests pass in-memory ones). Takes ownership of `cleanups`:
 * if assembling fails, they run (after the workers and the spool started so far are stopped).
 */
export async function assembleApp(config: Config, deps: AppDeps, setups: readonly SinkSetup[], cleanups: Cleanup[] = []): Promise<App> {
  try {
    return await assemble(config, deps, setups, cleanups);
  } catch (err) {
    await runCleanups(cleanups, deps.logger);
    throw err;
  }
}

async function assemble(config: Config, deps: AppDeps, setups: readonly SinkSetup[], cleanups: Cleanup[]): Promise<App> {
  const { logger } = deps;
  const clock = deps.clock ?? systemClock;
  if (setups.length === 0) throw new MothershipError('config_invalid', 'No sink is enabled: set TSDB_ENABLED=true or LOKI_ENABLED=true');
  // Before anything starts: a bad token or certificate file stops start-up at once.
  const credentials = await Credentials.open(config.server, logger);
  const rateLimiter = config.server.rateLimit === null ? null : new RateLimiter(config.server.rateLimit, clock);
  const sinks = setups.map((s) => s.sink);
  for (const sink of sinks) {
    cleanups.unshift(() => sink.shutdown());
    await sink.start(AbortSignal.timeout(120_000));
  }
  const names = sinks.map((s) => s.name);
  // Loki builds its lines and labels from event objects; PostgreSQL takes the records' bytes.
  const cacheEvents = names.includes('loki');
  const spool = await openSpool(config, names, cacheEvents, logger, clock);
  // Until the app is handed over, a failure stops the workers started so far and closes the
  // spool (its cursors persisted) before the caller's clean-ups run; close() does it afterwards.
  const workerList: SinkWorker[] = [];
  let handedOver = false;
  cleanups.unshift(async () => {
    if (handedOver) return;
    await Promise.all(workerList.map((w) => w.drainAndStop(0)));
    await spool.close();
  });
  const deadLetters = await DeadLetterStore.open(config.delivery.deadLetterDir, config.delivery.deadLetterMaxBytes, names, logger);
  const inflight = new InflightBudget(config.server.maxInflightBytes);
  const writePaths = setups.find((s) => s.writePaths !== undefined)?.writePaths;
  const metrics = new Metrics({
    spoolBytes: () => spool.totalBytes,
    spoolUp: () => (spool.refusal() === null ? 1 : 0),
    inflightBytes: () => inflight.bytes,
    ...(writePaths === undefined ? {} : { tsdbWritePaths: writePaths }),
    sinks: () =>
      workerList.map((w) => {
        const backlog = spool.backlogOf(w.sink.name);
        const status = w.status();
        return {
          name: w.sink.name,
          backlogEvents: backlog.events,
          backlogRecords: backlog.records,
          backlogBytes: backlog.bytes,
          oldestUndeliveredAgeSeconds: status.oldestUndeliveredAgeMs / 1000,
          drainRatePerSecond: status.drainRatePerSecond,
          catchUpSeconds: catchUpSeconds(backlog.events, status.healthy ? status.backlogShrinkPerSecond : 0) ?? -1,
          circuit: status.circuit,
          deadLetters: deadLetters.count(w.sink.name),
        };
      }),
  }, { defaultMetrics: deps.defaultMetrics ?? true });
  const workers = setups.map(
    (s) =>
      new SinkWorker(s.sink, spool, deadLetters, logger.child({ sink: s.sink.name }), {
        window: s.window,
        retryBudgetMs: config.delivery.retryBudgetMs,
        backoff: { baseMs: 250, maxMs: 60_000 },
        circuit: { failureThreshold: 5, openMs: 1_000, maxOpenMs: 60_000 },
        now: () => clock.now(),
        random: deps.random ?? Math.random,
        metrics,
        ...(s.coalesce === undefined ? {} : { coalesce: s.coalesce }),
      }),
  );
  for (const w of workers) {
    workerList.push(w);
    w.start();
    const backlog = spool.backlogOf(w.sink.name);
    if (backlog.events > 0) logger.info({ sink: w.sink.name, events: backlog.events, bytes: backlog.bytes }, 'delivering spooled backlog');
  }

  let accepting = true;
  const isAccepting = (): boolean => accepting;
  const monitor = new SinkHealthMonitor(sinks, clock);
  const details: Partial<Record<SinkName, () => Readonly<Record<string, unknown>>>> = {};
  for (const s of setups) if (s.describe !== undefined) details[s.sink.name] = s.describe;
  const http = buildHttpServer({
    server: config.server,
    logger,
    auth: credentials.tokens,
    tls: credentials.tls,
    rateLimiter,
    ingestor: new Ingestor(spool, workers, { ...config.server, admission: rateLimiter, waitMs: answerWaits(spool, setups), metrics }),
    clock,
    inflight,
    metrics,
    version: VERSION,
    enabledSinks: names,
    isAccepting,
    health: () => healthReport({ clock, spool, workers, monitor, deadLetters, isAccepting, details }),
    admin: config.server.adminToken === null ? null : { auth: new BearerAuth([config.server.adminToken]), spool, workers, deadLetters },
  });

  credentials.attach(http.server);

  let closing: Promise<void> | null = null;
  handedOver = true;
  return {
    http,
    spool,
    workers,
    async listen() {
      const listened = await http.listen({ host: config.server.host, port: config.server.port });
      // Fastify does not know the server it was given speaks TLS.
      const address = credentials.tls === null ? listened : listened.replace(/^http:/, 'https:');
      const { tokens, tls, mtls } = credentials.summary;
      const spoolAt = config.spool.nats === null ? config.spool.dir : `JetStream stream ${config.spool.nats.stream} at ${config.spool.nats.servers.join(',')}`;
      logger.info({ address, sinks: names, auth: credentials.tokens.enabled, tokens, tls, mtls, spool: spoolAt }, 'mothership listening');
      return address;
    },
    reload() {
      return credentials.reload();
    },
    close(drainMs = config.server.shutdownTimeoutMs) {
      closing ??= (async () => {
        accepting = false;
        const deadline = clock.now() + drainMs;
        try {
          await closeHttp(http, config.server.shutdownTimeoutMs, logger);
          const remaining = Math.max(0, deadline - clock.now());
          await Promise.all(workers.map((w) => w.drainAndStop(remaining)));
          for (const w of workers) {
            const backlog = spool.backlogOf(w.sink.name);
            if (backlog.events === 0) continue;
            // A shared spool's backlog is every instance's, delivered by those still running.
            if (spool.shared) logger.info({ sink: w.sink.name, batches: backlog.records }, 'stopping; the spool stream keeps the batches not yet delivered for the other instances (or the next start)');
            else logger.warn({ sink: w.sink.name, events: backlog.events }, 'stopping with undelivered events; they stay in the spool for the next start');
          }
          await spool.close();
        } finally {
          await runCleanups(cleanups, logger);
        }
      })();
      return closing;
    },
  };
}

/** The disk spool, or the JetStream stream when SPOOL_URL names one. */
async function openSpool(config: Config, sinks: readonly SinkName[], cacheEvents: boolean, logger: Logger, clock: Clock): Promise<SpoolStore> {
  const now = (): number => clock.now();
  if (config.spool.nats === null) return Spool.open({ ...config.spool, sinks, cacheEvents, logger, now });
  return JetStreamSpool.open({ nats: config.spool.nats, maxBytes: config.spool.maxBytes, memoryBytes: config.spool.memoryBytes, sinks, logger, now });
}

/**
 * How long an answer may wait for each sink. On a shared spool the batch goes to whichever
 * instance takes it, most often not the one answering: the answer says `queued` at once rather
 * than wait for a write it will not see.
 */
function answerWaits(spool: SpoolStore, setups: readonly SinkSetup[]): Partial<Record<SinkName, number>> {
  return Object.fromEntries(setups.map((s) => [s.sink.name, spool.shared ? 0 : s.waitMs]));
}

async function tsdbConnection(config: Config, logger: Logger, cleanups: Cleanup[]): Promise<PgConnection> {
  if (config.tsdb.mode === 'external') return config.tsdb.connection;
  const embedded = await startEmbeddedPostgres(
    {
      dataDir: config.tsdb.embedded.dataDir,
      port: config.tsdb.embedded.port,
      database: config.tsdb.connection.database,
      user: config.tsdb.connection.user,
      password: config.tsdb.connection.password,
    },
    logger,
  );
  cleanups.push(() => embedded.stop());
  const c = embedded.connection;
  logger.info(
    { dataDir: config.tsdb.embedded.dataDir, psql: `psql -h ${c.host} -p ${c.port} -U ${c.user} ${c.database}` },
    'embedded PostgreSQL is running; the password is TSDB_PASSWORD (default "edgebot")',
  );
  return c;
}

/** Waits for in-flight requests up to the deadline, then cuts the remaining connections. */
async function closeHttp(http: FastifyInstance, timeoutMs: number, logger: Logger): Promise<void> {
  const timer = setTimeout(() => {
    logger.warn({ timeoutMs }, 'shutdown deadline reached; closing open connections');
    http.server.closeAllConnections();
  }, timeoutMs);
  timer.unref();
  try {
    http.server.closeIdleConnections();
    await http.close();
  } finally {
    clearTimeout(timer);
  }
}

async function runCleanups(cleanups: Cleanup[], logger: Logger): Promise<void> {
  for (const cleanup of cleanups.splice(0)) {
    try {
      await cleanup();
    } catch (err) {
      logger.error({ err: { message: (err as Error).message } }, 'error during shutdown');
    }
  }
}
