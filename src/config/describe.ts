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
      // Token values never: only how many, and whether they name nodes.
      auth: describeAuth(config),
      authTokensFile: server.authTokensFile,
      tls: server.tls === null ? 'off' : { certFile: server.tls.certFile, keyFile: server.tls.keyFile, clientCaFile: server.tls.clientCaFile },
      headersTimeoutMs: server.headersTimeoutMs,
      requestTimeoutMs: server.requestTimeoutMs,
      connectionTimeoutMs: server.connectionTimeoutMs,
      maxConnections: server.maxConnections,
      maxHeaderBytes: server.maxHeaderBytes,
      maxBodyBytes: server.maxBodyBytes,
      maxDecompressedBytes: server.maxDecompressedBytes,
      maxMessagesPerBatch: server.maxMessagesPerBatch,
      maxJsonDepth: server.maxJsonDepth,
      maxKeysPerMessage: server.maxKeysPerMessage,
      maxStringBytes: server.maxStringBytes,
      rateLimit: server.rateLimit === null ? 'off' : { messagesPerSecond: server.rateLimit.messagesPerSecond, burst: server.rateLimit.burst },
      maxInflightBytes: server.maxInflightBytes,
      shutdownTimeoutMs: server.shutdownTimeoutMs,
      admin: server.adminToken === null ? 'off' : 'on (token set)',
    },
    spool: {
      ...config.spool,
      nats: config.spool.nats === null ? null : { ...config.spool.nats, password: config.spool.nats.password === null ? null : MASK, token: config.spool.nats.token === null ? null : MASK },
    },
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
      batchMaxBytes: loki.batchMaxBytes,
      encoding: loki.encoding,
      timeoutMs: loki.timeoutMs,
      labels: loki.labels,
      staticLabels: loki.staticLabels,
      maxLabelValues: loki.maxLabelValues,
      lineFormat: loki.lineFormat,
      structuredMetadata: loki.structuredMetadata,
      maxLineBytes: loki.maxLineBytes,
      maxAgeHours: loki.maxAgeMs / 3_600_000,
    },
  };
}

function describeAuth(config: Config): string {
  const { authTokens, authTokensFile } = config.server;
  if (authTokens.length === 0) return authTokensFile === null ? 'off' : 'tokens from AUTH_TOKENS_FILE';
  const nodes = new Set(authTokens.map((t) => t.node).filter((n) => n !== null)).size;
  const bound = nodes > 0 ? ` for ${nodes} node(s)` : ' (no node ids)';
  return `${authTokens.length} token(s)${bound}${authTokensFile === null ? '' : ' + AUTH_TOKENS_FILE'}`;
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
