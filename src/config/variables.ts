/**
 * Every environment variable the mothership reads, with its type, default and meaning.
 * This table is the single source for parsing (`load.ts`) and for the README's configuration
 * table (`npm run docs:config`); a test fails when the two drift.
 */
export type VariableKind =
  | { readonly type: 'string' }
  | { readonly type: 'url' }
  | { readonly type: 'boolean' }
  | { readonly type: 'integer'; readonly min: number; readonly max: number }
  | { readonly type: 'number'; readonly min: number; readonly max: number }
  | { readonly type: 'enum'; readonly values: readonly string[] }
  | { readonly type: 'list' };

export interface VariableSpec {
  readonly name: string;
  readonly kind: VariableKind;
  /** Text form of the default, as a user would write it; undefined = unset by default. */
  readonly default?: string;
  readonly secret?: boolean;
  readonly description: string;
}

const int = (min: number, max: number): VariableKind => ({ type: 'integer', min, max });
const MiB = 1024 * 1024;

export const VARIABLES = [
  // Server
  { name: 'SERVER_HOST', kind: { type: 'string' }, default: '0.0.0.0', description: 'Address the HTTP server binds to.' },
  { name: 'SERVER_PORT', kind: int(0, 65535), default: '8080', description: 'Port the HTTP server listens on (0 picks a free port).' },
  { name: 'LOG_LEVEL', kind: { type: 'enum', values: ['trace', 'debug', 'info', 'warn', 'warning', 'error', 'fatal', 'critical'] }, default: 'INFO', description: 'Minimum level logged (case-insensitive).' },
  { name: 'LOG_FORMAT', kind: { type: 'enum', values: ['json', 'console'] }, default: 'console', description: '`json` writes one JSON object per line; anything else readable console lines.' },
  { name: 'DEV_MODE', kind: { type: 'boolean' }, default: 'false', description: 'Restart automatically when the source or build changes.' },
  { name: 'DATA_DIR', kind: { type: 'string' }, default: './data', description: 'Folder for the embedded PostgreSQL and other local state.' },
  { name: 'AUTH_TOKENS', kind: { type: 'list' }, secret: true, description: 'Comma-separated bearer tokens accepted on POST /ingest. Unset: no authentication.' },
  { name: 'MAX_BODY_BYTES', kind: int(1024, 1024 * MiB), default: String(16 * MiB), description: 'Largest request body accepted, as sent (compressed).' },
  { name: 'MAX_DECOMPRESSED_BYTES', kind: int(1024, 4096 * MiB), default: String(64 * MiB), description: 'Largest body after gzip/deflate decompression; inflation stops at this size.' },
  { name: 'MAX_MESSAGES_PER_BATCH', kind: int(1, 10_000_000), default: '100000', description: 'Most messages accepted in one batch.' },
  { name: 'MAX_JSON_DEPTH', kind: int(2, 10_000), default: '64', description: 'Deepest nesting accepted inside one message; deeper messages are rejected alone.' },
  { name: 'MAX_INFLIGHT_BYTES', kind: int(1024 * 1024, 64 * 1024 * MiB), default: String(256 * MiB), description: 'Request bytes being received or processed at once; past it new batches get 503 + Retry-After (bounds memory).' },
  { name: 'SHUTDOWN_TIMEOUT_MS', kind: int(0, 3_600_000), default: '15000', description: 'How long shutdown waits for in-flight requests and for sinks to drain the spool.' },
  { name: 'ADMIN_TOKEN', kind: { type: 'string' }, secret: true, description: 'Bearer token for the /admin endpoints (spool, dead letters). Unset: the admin endpoints are off.' },
  // Spool and delivery
  { name: 'SPOOL_DIR', kind: { type: 'string' }, description: 'Folder of the durable spool (default: DATA_DIR/spool).' },
  { name: 'SPOOL_MAX_BYTES', kind: int(1024 * 1024, 1024 * 1024 * MiB), default: String(1024 * MiB), description: 'Disk the spool may use; when full, /ingest answers 503 with Retry-After.' },
  { name: 'SPOOL_FSYNC', kind: { type: 'enum', values: ['always', 'never'] }, default: 'always', description: '`always`: a batch is fdatasync\'d (group commit) before it is acknowledged; `never` leaves flushing to the OS (survives a process crash, not a power cut).' },
  { name: 'SPOOL_SEGMENT_BYTES', kind: int(64 * 1024, 1024 * MiB), default: String(64 * MiB), description: 'Size at which the spool starts a new segment file.' },
  { name: 'SPOOL_MEMORY_BYTES', kind: int(0, 16 * 1024 * MiB), default: String(64 * MiB), description: 'Recent spool records also kept in memory, so caught-up sinks never read them back from disk.' },
  { name: 'RETRY_BUDGET_HOURS', kind: { type: 'number', min: 0.001, max: 87_600 }, default: '168', description: 'How long a sink keeps retrying an event before it goes to the dead letters.' },
  { name: 'DEADLETTER_MAX_BYTES', kind: int(1024, 1024 * 1024 * MiB), default: String(256 * MiB), description: 'Disk the dead-letter files may use in all.' },
  // TimescaleDB / PostgreSQL
  { name: 'TSDB_ENABLED', kind: { type: 'boolean' }, default: 'true', description: 'Store events in PostgreSQL/TimescaleDB.' },
  { name: 'TSDB_URL', kind: { type: 'url' }, secret: true, description: 'Connection URL (postgres://user:pass@host:port/db). Overrides TSDB_HOST and friends.' },
  { name: 'TSDB_HOST', kind: { type: 'string' }, description: 'PostgreSQL host. With neither TSDB_HOST nor TSDB_URL set, an embedded PostgreSQL is started under DATA_DIR.' },
  { name: 'TSDB_PORT', kind: int(1, 65535), default: '5432', description: 'PostgreSQL port.' },
  { name: 'TSDB_DATABASE', kind: { type: 'string' }, default: 'edgebot', description: 'Database name (created in the embedded PostgreSQL).' },
  { name: 'TSDB_USERNAME', kind: { type: 'string' }, default: 'edgebot', description: 'Database user.' },
  { name: 'TSDB_PASSWORD', kind: { type: 'string' }, default: 'edgebot', secret: true, description: 'Database password.' },
  { name: 'TSDB_SSLMODE', kind: { type: 'enum', values: ['disable', 'require', 'verify-full'] }, default: 'disable', description: 'TLS to PostgreSQL: `require` encrypts, `verify-full` also checks the certificate.' },
  { name: 'TSDB_SCHEMA', kind: { type: 'string' }, default: 'public', description: 'Schema holding the events table and views (created if missing).' },
  { name: 'TSDB_POOL_MAX', kind: int(1, 100), default: '4', description: 'Most connections the sink opens.' },
  { name: 'TSDB_WRITE_TIMEOUT_MS', kind: int(100, 600_000), default: '10000', description: 'Deadline for one bulk write; past it the write is abandoned and retried.' },
  { name: 'TSDB_CHUNK_INTERVAL', kind: { type: 'string' }, default: '1 day', description: 'TimescaleDB chunk interval (PostgreSQL interval syntax).' },
  { name: 'TSDB_COMPRESS_AFTER', kind: { type: 'string' }, default: '7 days', description: 'TimescaleDB: compress chunks older than this (empty: no compression policy).' },
  { name: 'TSDB_RETENTION_DAYS', kind: int(0, 100_000), default: '0', description: 'Delete events older than this many days (0 keeps everything).' },
  { name: 'TSDB_EMBEDDED_PORT', kind: int(0, 65535), default: '0', description: 'Port of the embedded PostgreSQL on 127.0.0.1 (0 picks a free one at each start).' },
  // Loki
  { name: 'LOKI_ENABLED', kind: { type: 'boolean' }, default: 'false', description: 'Push events to Grafana Loki.' },
  { name: 'LOKI_URL', kind: { type: 'url' }, default: 'http://localhost:3100', description: 'Loki base URL.' },
  { name: 'LOKI_TENANT_ID', kind: { type: 'string' }, description: 'Sent as X-Scope-OrgID.' },
  { name: 'LOKI_USERNAME', kind: { type: 'string' }, description: 'Basic-auth user for Loki.' },
  { name: 'LOKI_PASSWORD', kind: { type: 'string' }, secret: true, description: 'Basic-auth password for Loki.' },
  { name: 'LOKI_BATCH_SIZE', kind: int(1, 1_000_000), default: '100', description: 'Most entries in one push.' },
  { name: 'LOKI_BATCH_TIMEOUT_SECONDS', kind: { type: 'number', min: 0.001, max: 3600 }, default: '5.0', description: 'Longest an entry waits before a push.' },
] as const satisfies readonly VariableSpec[];

export type VariableName = (typeof VARIABLES)[number]['name'];
