import type { Config } from './config.js';

const MASK = '***';

/**
 * The effective configuration as it may be shown in logs and by `check-config`: every secret
 * replaced by a mask (or by whether it is set), never its value.
 */
export function describeConfig(config: Config): Record<string, unknown> {
  const { tsdb, loki, server } = config;
  return {
    server: {
      host: server.host,
      port: server.port,
      auth: server.authTokens.length > 0 ? `${server.authTokens.length} token(s)` : 'off',
      maxBodyBytes: server.maxBodyBytes,
      maxDecompressedBytes: server.maxDecompressedBytes,
      maxMessagesPerBatch: server.maxMessagesPerBatch,
      maxJsonDepth: server.maxJsonDepth,
      maxInflightBytes: server.maxInflightBytes,
      shutdownTimeoutMs: server.shutdownTimeoutMs,
      admin: server.adminToken === null ? 'off' : 'on (token set)',
    },
    spool: config.spool,
    delivery: config.delivery,
    log: config.log,
    devMode: config.devMode,
    dataDir: config.dataDir,
    tsdb: {
      enabled: tsdb.enabled,
      mode: tsdb.mode,
      ...(tsdb.mode === 'external'
        ? { host: tsdb.connection.host, port: tsdb.connection.port }
        : { dataDir: tsdb.embedded.dataDir, port: tsdb.embedded.port === 0 ? 'auto' : tsdb.embedded.port }),
      database: tsdb.connection.database,
      user: tsdb.connection.user,
      password: MASK,
      ssl: tsdb.connection.ssl,
      schema: tsdb.schema,
      poolMax: tsdb.poolMax,
      writeTimeoutMs: tsdb.writeTimeoutMs,
      chunkInterval: tsdb.chunkInterval,
      compressAfter: tsdb.compressAfter,
      retentionDays: tsdb.retentionDays,
    },
    loki: {
      enabled: loki.enabled,
      url: redactUrl(loki.url),
      tenantId: loki.tenantId,
      username: loki.username,
      password: loki.password === null ? null : MASK,
      batchSize: loki.batchSize,
      batchTimeoutMs: loki.batchTimeoutMs,
    },
  };
}

/** A URL with any userinfo password masked. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = MASK;
    return u.toString().replace(/\/$/, '');
  } catch {
    return MASK;
  }
}
