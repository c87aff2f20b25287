/**
 * The process entry point: the only module that reads `process.env`, installs signal handlers
 * and exits. Everything else is built from the frozen config by `buildApp`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildApp, type App } from './app.js';
import type { Config } from './config/config.js';
import { loadConfig } from './config/load.js';
import { describeConfig } from './config/describe.js';
import { VERSION } from './lib/version.js';
import { isMothershipError } from './lib/errors.js';
import { createLogger, type Logger } from './telemetry/logger.js';

const DEV_CHILD_FLAG = 'MOTHERSHIP_DEV_CHILD';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    process.stderr.write(`mothership: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  if (config.devMode && process.env[DEV_CHILD_FLAG] === undefined) {
    runWithAutoReload();
    return;
  }

  const logger = createLogger(config);
  // The whole effective configuration (secrets masked) is one JSON line in production; on a
  // console it would be a hundred lines, so there it waits for LOG_LEVEL=debug.
  const summary = { version: VERSION, port: config.server.port, dataDir: config.dataDir, tsdb: config.tsdb.enabled ? config.tsdb.mode : 'off', loki: config.loki.enabled };
  if (config.log.format === 'json') logger.info({ ...summary, config: describeConfig(config) }, 'starting');
  else {
    logger.info(summary, 'starting');
    logger.debug({ config: describeConfig(config) }, 'effective configuration');
  }
  let app: App | null = null;
  try {
    app = await buildApp(config, { logger });
    await app.listen();
  } catch (err) {
    logger.fatal({ err: errorFields(err), ...startupHint(err, config) }, 'start-up failed');
    await exitAfterFailedStart(app, config, logger);
    return;
  }
  installSignalHandlers(app, logger);
}

/**
 * A failed start-up must end the process. What started before the failure (the embedded
 * PostgreSQL child, the pool's connections, the delivery workers, the spool) would otherwise keep
 * the event loop alive for ever: buildApp releases what it started when it fails; an app that
 * was built but could not listen is closed here, without draining (nothing was served; the
 * spool keeps its records for the next start). The release gets SHUTDOWN_TIMEOUT_MS at most, then
 * the process exits anyway (the embedded PostgreSQL's exit hook still asks it to stop).
 */
async function exitAfterFailedStart(app: App | null, config: Config, logger: Logger): Promise<never> {
  const limitMs = config.server.shutdownTimeoutMs;
  const watchdog = setTimeout(() => {
    logger.error({ timeoutMs: limitMs }, 'releasing after the failed start-up took too long: exiting now');
    process.exit(1);
  }, limitMs);
  try {
    await app?.close(0);
  } catch (err) {
    logger.error({ err: errorFields(err) }, 'releasing after the failed start-up failed');
  }
  clearTimeout(watchdog);
  process.exit(1);
}

/** The usual start-up failures of the listening socket, said with the setting to change. */
function startupHint(err: unknown, config: Config): { hint?: string } {
  const code = (err as { code?: unknown } | null)?.code;
  const where = `${config.server.host}:${config.server.port}`;
  if (code === 'EADDRINUSE') return { hint: `${where} is already in use (SERVER_PORT=${config.server.port}): another process listens there; stop it or choose another SERVER_PORT` };
  if (code === 'EACCES') return { hint: `may not listen on ${where}: ports below 1024 need privileges; choose another SERVER_PORT` };
  if (code === 'EADDRNOTAVAIL') return { hint: `SERVER_HOST ${config.server.host} is not an address of this machine` };
  return {};
}

function installSignalHandlers(app: App, logger: Logger): void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ signal }, 'shutting down');
    app.close().then(
      () => {
        logger.info('stopped');
        process.exitCode = 0;
      },
      (err: unknown) => {
        logger.error({ err: errorFields(err) }, 'shutdown failed');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Re-read AUTH_TOKENS_FILE and the TLS files; connections stay open. Never fatal.
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP' }, 'reloading credentials');
    void app.reload().then((report) => logger.info({ ...report }, 'reload done'));
  });
}

/**
 * DEV_MODE: this process becomes a supervisor that re-runs the server whenever the sources
 * change (tsx watch, when the TypeScript sources and tsx are present) or the build changes.
 */
function runWithAutoReload(): void {
  const entry = fileURLToPath(import.meta.url);
  const source = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
  const tsx = fileURLToPath(new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url));
  const args = existsSync(source) && existsSync(tsx) ? [tsx, 'watch', '--clear-screen=false', source] : ['--watch', entry];
  process.stderr.write(`mothership: DEV_MODE=true, auto-reload via ${args.includes('watch') ? 'tsx watch' : 'node --watch'}\n`);
  const child = spawn(process.execPath, args, { stdio: 'inherit', env: { ...process.env, [DEV_CHILD_FLAG]: '1' } });
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  process.on('SIGTERM', forward);
  process.on('SIGINT', forward);
  process.on('SIGHUP', forward);
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal === null ? 0 : 1);
  });
}

function errorFields(err: unknown): Record<string, unknown> {
  if (isMothershipError(err)) return { code: err.code, message: err.message };
  if (err instanceof Error) {
    // Node's system errors carry their errno name (EADDRINUSE, EACCES, …): the word to search for.
    const code = (err as { code?: unknown }).code;
    return { ...(typeof code === 'string' ? { code } : {}), message: err.message, stack: err.stack };
  }
  return { message: String(err) };
}

await main();
