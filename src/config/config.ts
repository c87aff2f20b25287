/** The typed, frozen configuration every module receives. Built only by `loadConfig`. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export interface PgConnection {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly ssl: 'disable' | 'require' | 'verify-full';
}

export interface TsdbConfig {
  readonly enabled: boolean;
  /** `embedded` when neither TSDB_HOST nor TSDB_URL is set: we start PostgreSQL ourselves. */
  readonly mode: 'external' | 'embedded';
  /** For `external`; for `embedded` host/port are filled in once the server is up. */
  readonly connection: PgConnection;
  readonly schema: string;
  readonly poolMax: number;
  readonly writeTimeoutMs: number;
  readonly chunkInterval: string;
  /** null: no compression policy. */
  readonly compressAfter: string | null;
  /** 0: keep forever. */
  readonly retentionDays: number;
  readonly embedded: { readonly dataDir: string; readonly port: number };
}

export interface LokiConfig {
  readonly enabled: boolean;
  readonly url: string;
  readonly tenantId: string | null;
  readonly username: string | null;
  readonly password: string | null;
  readonly batchSize: number;
  readonly batchTimeoutMs: number;
  readonly batchMaxBytes: number;
  readonly encoding: 'protobuf' | 'json';
  readonly timeoutMs: number;
  /** Event fields that become labels (LOKI_LABELS as written; `source` is always added). */
  readonly labels: readonly string[];
  /** LOKI_STATIC_LABELS, names already valid. */
  readonly staticLabels: Readonly<Record<string, string>>;
  readonly maxLabelValues: number;
  readonly lineFormat: 'json' | 'message';
  readonly structuredMetadata: readonly string[];
  readonly maxLineBytes: number;
  /** 0: no age filter. */
  readonly maxAgeMs: number;
}

/** One ingest token, held only as its SHA-256 (see `config/tokens.ts`). */
export interface TokenEntry {
  /** The edge node the token authenticates; null for a bare token (no node identity). */
  readonly node: string | null;
  /** SHA-256 of the token, lower-case hex. */
  readonly sha256: string;
}

/** HTTPS: certificate files, re-read on SIGHUP. */
export interface TlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
  /** Set: mutual TLS; clients must present a certificate signed by this CA (its CN/SAN is the node id). */
  readonly clientCaFile: string | null;
}

export interface RateLimitConfig {
  readonly messagesPerSecond: number;
  /** Bucket size in messages. */
  readonly burst: number;
}

export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  /** AUTH_TOKENS, parsed; AUTH_TOKENS_FILE adds to these when the app starts and on SIGHUP. */
  readonly authTokens: readonly TokenEntry[];
  readonly authTokensFile: string | null;
  /** null: plain HTTP. */
  readonly tls: TlsConfig | null;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly connectionTimeoutMs: number;
  readonly maxConnections: number;
  readonly maxHeaderBytes: number;
  readonly maxKeysPerMessage: number;
  readonly maxStringBytes: number;
  /** null: no rate limit. */
  readonly rateLimit: RateLimitConfig | null;
  readonly maxBodyBytes: number;
  readonly maxDecompressedBytes: number;
  readonly maxMessagesPerBatch: number;
  readonly maxJsonDepth: number;
  readonly maxInflightBytes: number;
  readonly shutdownTimeoutMs: number;
  /** null: the admin endpoints are off. */
  readonly adminToken: string | null;
}

/** The spool as a JetStream stream shared by several motherships (SPOOL_URL). */
export interface NatsSpoolConfig {
  /** host:port URLs, without credentials (those are in `user`/`password`). */
  readonly servers: readonly string[];
  readonly user: string | null;
  readonly password: string | null;
  readonly stream: string;
  /** The stream's subject: the lower-cased stream name + `.batches`. */
  readonly subject: string;
  readonly replicas: number;
  /** 0: batches never expire. */
  readonly maxAgeMs: number;
  readonly ackWaitMs: number;
  readonly duplicateWindowMs: number;
  readonly publishTimeoutMs: number;
  readonly token: string | null;
  readonly credsFile: string | null;
  readonly tls: { readonly caFile: string | null; readonly certFile: string | null; readonly keyFile: string | null } | null;
}

export interface SpoolConfig {
  /** Null: the spool is on local disk. */
  readonly nats: NatsSpoolConfig | null;
  readonly dir: string;
  readonly maxBytes: number;
  readonly fsync: boolean;
  readonly segmentBytes: number;
  readonly memoryBytes: number;
}

export interface DeliveryConfig {
  readonly retryBudgetMs: number;
  readonly deadLetterDir: string;
  readonly deadLetterMaxBytes: number;
}

export interface Config {
  readonly server: ServerConfig;
  readonly log: { readonly level: LogLevel; readonly format: 'json' | 'console' };
  readonly devMode: boolean;
  readonly dataDir: string;
  readonly spool: SpoolConfig;
  readonly delivery: DeliveryConfig;
  readonly tsdb: TsdbConfig;
  readonly loki: LokiConfig;
}
