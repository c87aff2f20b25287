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
}

export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  readonly authTokens: readonly string[];
  readonly maxBodyBytes: number;
  readonly maxDecompressedBytes: number;
  readonly maxMessagesPerBatch: number;
  readonly maxJsonDepth: number;
  readonly maxInflightBytes: number;
  readonly shutdownTimeoutMs: number;
  /** null: the admin endpoints are off. */
  readonly adminToken: string | null;
}

export interface SpoolConfig {
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
