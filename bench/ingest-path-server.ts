/**
 * The mothership with a PostgreSQL sink that stores nothing: every send is answered `delivered`
 * at once. What this process spends per message is the ingest path alone (HTTP, inflate, JSON
 * parse, normalize, ids, spool append with its fsync, delivery loop, answer), which the bench
 * reports next to the full server's figure. Same config (env), same app assembly and delivery
 * settings as `dist/src/main.js`; only the sink differs. SIGTERM/SIGINT close it like the server.
 *
 *   node dist/bench/ingest-path-server.js     # with the server's env (SERVER_PORT, DATA_DIR, …)
 */
import { assembleApp, tsdbDelivery } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import type { Sink } from '../src/sinks/sink.js';
import { createLogger } from '../src/telemetry/logger.js';

const discarding: Sink = {
  name: 'tsdb',
  start: async () => undefined,
  send: async (batch) => ({ kind: 'delivered', written: batch.size, duplicates: 0 }),
  healthcheck: async () => ({ healthy: true }),
  shutdown: async () => undefined,
};

const config = loadConfig(process.env);
const logger = createLogger(config);
const app = await assembleApp(config, { logger }, [{ ...tsdbDelivery(config), sink: discarding }]);
await app.listen();
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    app.close().then(() => { process.exitCode = 0; }, (err: unknown) => {
      logger.error({ err: { message: err instanceof Error ? err.message : String(err) } }, 'shutdown failed');
      process.exitCode = 1;
    });
  });
}
