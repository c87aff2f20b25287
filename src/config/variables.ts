/**
 * Every environment variable the mothership reads, with its type, default and meaning.
 * This table is the single source for parsing (`load.ts`) and for the configuration table in
 * docs/CONFIGURATION.md (`npm run docs:config`); a test fails when the two drift.
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
  { name: 'AUTH_TOKENS', kind: { type: 'list' }, secret: true, description: 'Bearer tokens accepted on POST /ingest, comma-separated. `node_id:token` binds a token to an edge node, whose id then becomes the `source` of its events; bare `token` entries (all or none) identify no node, as before. A token may be written as `sha256:<hex>`, its SHA-256. Unset (and no AUTH_TOKENS_FILE): no authentication.' },
  { name: 'AUTH_TOKENS_FILE', kind: { type: 'string' }, description: 'File of `node_id token` lines (`#` comments, blank lines; tokens may be `sha256:<hex>`), added to AUTH_TOKENS. Re-read on SIGHUP; a bad file then keeps the previous tokens.' },
  { name: 'TLS_CERT_FILE', kind: { type: 'string' }, description: 'PEM certificate (chain) for HTTPS. With TLS_KEY_FILE the server speaks only HTTPS. Re-read on SIGHUP.' },
  { name: 'TLS_KEY_FILE', kind: { type: 'string' }, description: 'PEM private key of TLS_CERT_FILE. Re-read on SIGHUP.' },
  { name: 'TLS_CLIENT_CA_FILE', kind: { type: 'string' }, description: 'PEM CA certificate(s): turns on mutual TLS. Every client must present a certificate signed by it; its CN (else a DNS or URI SAN) is the node id. Re-read on SIGHUP.' },
  { name: 'SERVER_HEADERS_TIMEOUT_MS', kind: int(100, 600_000), default: '20000', description: 'Time a client has to send the request line and headers (slow-loris guard); past it the connection gets 408 and is closed.' },
  { name: 'SERVER_REQUEST_TIMEOUT_MS', kind: int(1000, 3_600_000), default: '120000', description: 'Time a client has to send a whole request, body included; past it 408 and the connection is closed. At least SERVER_HEADERS_TIMEOUT_MS.' },
  { name: 'SERVER_CONNECTION_TIMEOUT_MS', kind: int(1000, 3_600_000), default: '60000', description: 'A connection on which nothing moves this long is closed (e.g. a client that stops reading its answer); time the server itself spends on an answer does not count.' },
  { name: 'SERVER_MAX_CONNECTIONS', kind: int(1, 1_000_000), default: '4096', description: 'Open connections at once; connections past it are closed as they arrive (the node retries).' },
  { name: 'MAX_HEADER_BYTES', kind: int(1024, MiB), default: '16384', description: 'Largest request line plus headers; a larger request gets 431 and the connection is closed.' },
  { name: 'MAX_BODY_BYTES', kind: int(1024, 1024 * MiB), default: String(16 * MiB), description: 'Largest request body accepted, as sent (compressed).' },
  { name: 'MAX_DECOMPRESSED_BYTES', kind: int(1024, 4096 * MiB), default: String(64 * MiB), description: 'Largest body after gzip/deflate decompression; inflation stops at this size.' },
  { name: 'MAX_MESSAGES_PER_BATCH', kind: int(1, 10_000_000), default: '100000', description: 'Most messages accepted in one batch.' },
  { name: 'MAX_JSON_DEPTH', kind: int(2, 10_000), default: '64', description: 'Deepest nesting accepted inside one message; deeper messages are rejected alone.' },
  { name: 'MAX_KEYS_PER_MESSAGE', kind: int(1, 10_000_000), default: '10000', description: 'Most object keys in one message, counted at every depth; a message with more is rejected alone (`message_too_many_keys`).' },
  { name: 'MAX_STRING_BYTES', kind: int(16, 1024 * MiB), default: String(8 * MiB), description: 'Longest string (value or key, UTF-8 bytes) in a message; a message with a longer one is rejected alone (`message_string_too_long`). Nodes that send only logs can go far lower (Loki cuts lines at LOKI_MAX_LINE_BYTES anyway).' },
  { name: 'RATE_LIMIT_MESSAGES_PER_SECOND', kind: { type: 'number', min: 0, max: 100_000_000 }, default: '0', description: 'Messages per second each node may send (a token bucket per authenticated node id, or per client IP without node identities); over it, 429 + Retry-After. 0: no limit.' },
  { name: 'RATE_LIMIT_BURST', kind: int(0, 1_000_000_000), default: '0', description: 'Bucket size of the rate limit, in messages: what a node may send at once after a pause. 0: ten seconds at RATE_LIMIT_MESSAGES_PER_SECOND. A batch larger than the bucket passes when the bucket is full.' },
  { name: 'MAX_INFLIGHT_BYTES', kind: int(1024 * 1024, 64 * 1024 * MiB), default: String(64 * MiB), description: 'Request bytes held at once: bodies as sent until answered, inflated bodies until their batch is in the spool; past it new batches get 503 + Retry-After (bounds memory).' },
  { name: 'SHUTDOWN_TIMEOUT_MS', kind: int(0, 3_600_000), default: '15000', description: 'How long shutdown waits for in-flight requests and for sinks to drain the spool.' },
  { name: 'ADMIN_TOKEN', kind: { type: 'string' }, secret: true, description: 'Bearer token for the /admin endpoints (spool, dead letters). Unset: the admin endpoints are off.' },
  // Spool and delivery
  { name: 'SPOOL_DIR', kind: { type: 'string' }, description: 'Folder of the durable spool (default: DATA_DIR/spool).' },
  { name: 'SPOOL_MAX_BYTES', kind: int(1024 * 1024, 1024 * 1024 * MiB), default: String(1024 * MiB), description: 'Disk the spool may use; when full, /ingest answers 503 with Retry-After.' },
  { name: 'SPOOL_FSYNC', kind: { type: 'enum', values: ['always', 'never'] }, default: 'always', description: '`always`: a batch is fdatasync\'d (group commit) before it is acknowledged; `never` leaves flushing to the OS (survives a process crash, not a power cut).' },
  { name: 'SPOOL_SEGMENT_BYTES', kind: int(64 * 1024, 1024 * MiB), default: String(64 * MiB), description: 'Size at which the spool starts a new segment file.' },
  { name: 'SPOOL_MEMORY_BYTES', kind: int(0, 16 * 1024 * MiB), default: String(32 * MiB), description: 'Memory for recent spool records, so caught-up sinks never read them back from disk: kept as bytes, or with Loki enabled as events (estimated at 3.5× their bytes on disk). With SPOOL_URL: the batches the sinks fetch ahead from the stream, shared equally.' },
  { name: 'SPOOL_URL', kind: { type: 'list' }, secret: true, description: 'NATS servers (`nats://host:4222`, comma-separated; `nats://user:pass@host:4222` for user/password auth): the spool is then a JetStream stream shared by every mothership that names it, and SPOOL_MAX_BYTES is its size. Unset: the spool is on local disk (SPOOL_DIR). See docs/CLUSTER.md.' },
  { name: 'SPOOL_NATS_STREAM', kind: { type: 'string' }, default: 'EDGEBOT_SPOOL', description: 'JetStream stream of the spool (created if missing; its subject is the lower-cased name + `.batches`). Instances that share it deliver each other\'s batches.' },
  { name: 'SPOOL_NATS_REPLICAS', kind: int(1, 5), default: '1', description: 'Copies JetStream keeps of each batch (R3 on a three-node cluster survives the loss of one node). A 200 means every copy the stream needs for a quorum is written.' },
  { name: 'SPOOL_NATS_MAX_AGE_HOURS', kind: { type: 'number', min: 0, max: 87_600 }, default: '0', description: 'JetStream drops batches older than this even if undelivered. 0: never (recommended; the stream is bounded by SPOOL_MAX_BYTES and answers 503 when full).' },
  { name: 'SPOOL_NATS_ACK_WAIT_SECONDS', kind: { type: 'number', min: 1, max: 86_400 }, default: '30', description: 'How long a batch taken by an instance that stops answering (crash, lost machine) waits before another instance gets it. A live instance keeps its batches however long a sink retries.' },
  { name: 'SPOOL_NATS_DUPLICATE_WINDOW_SECONDS', kind: int(1, 86_400), default: '300', description: 'A batch resent within this window is stored once in the stream (JetStream de-duplication by the batch\'s id); event ids keep the sinks free of duplicates beyond it.' },
  { name: 'SPOOL_NATS_PUBLISH_TIMEOUT_MS', kind: int(100, 600_000), default: '5000', description: 'How long a batch waits for JetStream to confirm it stored; past it the answer is 503 + Retry-After (a resend is de-duplicated).' },
  { name: 'SPOOL_NATS_TOKEN', kind: { type: 'string' }, secret: true, description: 'Token for NATS token authentication.' },
  { name: 'SPOOL_NATS_CREDS_FILE', kind: { type: 'string' }, description: 'NATS credentials file (JWT + NKey seed, as `nsc` writes it).' },
  { name: 'SPOOL_NATS_TLS_CA_FILE', kind: { type: 'string' }, description: 'PEM CA certificate(s) that signed the NATS servers\' certificates; turns on TLS to NATS.' },
  { name: 'SPOOL_NATS_TLS_CERT_FILE', kind: { type: 'string' }, description: 'PEM client certificate for NATS (with SPOOL_NATS_TLS_KEY_FILE), when the servers verify clients.' },
  { name: 'SPOOL_NATS_TLS_KEY_FILE', kind: { type: 'string' }, description: 'PEM private key of SPOOL_NATS_TLS_CERT_FILE.' },
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
  { name: 'LOKI_BATCH_MAX_BYTES', kind: int(1024, 1024 * MiB), default: String(MiB), description: 'Most bytes (lines, labels and metadata, before compression) in one push; a larger batch is split.' },
  { name: 'LOKI_ENCODING', kind: { type: 'enum', values: ['protobuf', 'json'] }, default: 'protobuf', description: '`protobuf`: snappy-compressed protobuf, as Promtail sends; `json`: the JSON push format.' },
  { name: 'LOKI_TIMEOUT_MS', kind: int(100, 600_000), default: '10000', description: 'Deadline for one push; past it the push is abandoned and retried.' },
  { name: 'LOKI_LABELS', kind: { type: 'list' }, default: 'source,service,type,severity,host', description: 'Event fields that become stream labels (names made valid for Loki). `source` is always a label.' },
  { name: 'LOKI_STATIC_LABELS', kind: { type: 'list' }, description: 'Labels added to every stream, as `name=value` pairs separated by commas (e.g. `job=edgebot,env=prod`).' },
  { name: 'LOKI_MAX_LABEL_VALUES', kind: int(1, 1_000_000), default: '100', description: 'Distinct values a label may take (per label, since start-up); a new value past it stays in the line and is not made a label. `source` is exempt.' },
  { name: 'LOKI_LINE_FORMAT', kind: { type: 'enum', values: ['json', 'message'] }, default: 'json', description: '`json`: the line is the event\'s fields not carried by labels, as JSON; `message`: the line is the message text only.' },
  { name: 'LOKI_STRUCTURED_METADATA', kind: { type: 'list' }, description: 'Event fields sent as structured metadata (Loki 3+) instead of in the line. Unset: none.' },
  { name: 'LOKI_MAX_LINE_BYTES', kind: int(1024, 64 * MiB), default: String(256 * 1024), description: 'Longest line sent; a longer one is cut and ends with a truncation marker.' },
  { name: 'LOKI_MAX_AGE_HOURS', kind: { type: 'number', min: 0, max: 87_600 }, default: '168', description: 'Events older than this are not pushed (Loki would refuse them; they stay in PostgreSQL) and are counted. 0: push everything.' },
] as const satisfies readonly VariableSpec[];

export type VariableName = (typeof VARIABLES)[number]['name'];
