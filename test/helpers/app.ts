import { after } from 'node:test';
import { assembleApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { Clock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { tempDir } from './events.js';
import { MemorySink } from './memory-sink.js';

export interface TestApp {
  readonly app: App;
  readonly sink: MemorySink;
}

/**
 * Builds whole apps in-process around an in-memory sink, each in a temp DATA_DIR, and closes
 * them all when the test file ends. The spool skips fsync (nothing here cuts the power).
 */
export function appFixture(prefix: string): (env?: Record<string, string>, sink?: MemorySink, options?: { clock?: Clock; waitMs?: number }) => Promise<TestApp> {
  const built: Array<{ app: App; remove: () => Promise<void> }> = [];
  after(async () => {
    for (const b of built.splice(0)) {
      await b.app.close();
      await b.remove();
    }
  });
  return async (env = {}, sink = new MemorySink(), options = {}) => {
    const dir = await tempDir(prefix);
    const config = loadConfig({ DATA_DIR: dir.dir, SPOOL_FSYNC: 'never', SHUTDOWN_TIMEOUT_MS: '1000', ...env });
    const deps = options.clock === undefined ? { logger: silentLogger() } : { logger: silentLogger(), clock: options.clock };
    const app = await assembleApp(config, deps, [{ sink, window: 2, waitMs: options.waitMs ?? 2000 }]);
    built.push({ app, remove: dir.remove });
    return { app, sink };
  };
}
