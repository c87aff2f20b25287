import path from 'node:path';
import { MothershipError } from '../lib/errors.js';
import { isValidLabelName, MAX_LABELS_PER_STREAM, toLabelName } from '../sinks/loki/label-name.js';
import type { Config, LogLevel, LokiConfig, NatsSpoolConfig, PgConnection, RateLimitConfig, TlsConfig } from './config.js';
import { parseTokenList } from './tokens.js';
import { VARIABLES, type VariableName, type VariableSpec } from './variables.js';

export type Env = Readonly<Record<string, string | undefined>>;

type Raw = Map<VariableName, string | undefined>;

/**
 * Parses and validates the environment once. Every problem is collected, so a user with
 * three bad values learns about all three at once; each names its variable.
 */
export function loadConfig(env: Env, cwd: string = process.cwd()): Config {
  const problems: string[] = [];
  const raw: Raw = new Map();
  for (const spec of VARIABLES as readonly VariableSpec[]) {
    const value = env[spec.name];
    const effective = value === undefined || value.trim() === '' ? spec.default : value.trim();
    if (effective !== undefined) {
      const problem = checkKind(spec, effective);
      if (problem !== null) problems.push(`${spec.name}: ${problem}`);
    }
    raw.set(spec.name as VariableName, effective);
  }
  if (problems.length > 0) {
    throw new MothershipError('config_invalid', `Invalid configuration:\n  ${problems.join('\n  ')}`);
  }

  const str = (name: VariableName): string | null => raw.get(name) ?? null;
  const req = (name: VariableName): string => {
    const v = raw.get(name);
    if (v === undefined) throw new MothershipError('config_invalid', `${name}: missing`);
    return v;
  };
  const num = (name: VariableName): number => Number(req(name));
  const bool = (name: VariableName): boolean => parseBoolean(req(name)) === true;

  const dataDir = path.resolve(cwd, req('DATA_DIR'));
  const tsdbUrl = str('TSDB_URL');
  const tsdbHost = str('TSDB_HOST');
  const embedded = tsdbUrl === null && tsdbHost === null;
  const compressAfter = str('TSDB_COMPRESS_AFTER');
  let connection: PgConnection = {
    host: tsdbHost ?? '127.0.0.1',
    port: num('TSDB_PORT'),
    database: req('TSDB_DATABASE'),
    user: req('TSDB_USERNAME'),
    password: req('TSDB_PASSWORD'),
    ssl: req('TSDB_SSLMODE') as PgConnection['ssl'],
  };
  if (tsdbUrl !== null) connection = connectionFromUrl(tsdbUrl, connection);
  const schema = req('TSDB_SCHEMA');
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new MothershipError('config_invalid', 'TSDB_SCHEMA: use lower-case letters, digits and _ (a plain SQL identifier)');
  }

  const config: Config = {
    server: {
      host: req('SERVER_HOST'),
      port: num('SERVER_PORT'),
      authTokens: parseTokenList(str('AUTH_TOKENS')),
      authTokensFile: pathOrNull(cwd, str('AUTH_TOKENS_FILE')),
      tls: tlsConfig(cwd, str),
      headersTimeoutMs: num('SERVER_HEADERS_TIMEOUT_MS'),
      requestTimeoutMs: num('SERVER_REQUEST_TIMEOUT_MS'),
      connectionTimeoutMs: num('SERVER_CONNECTION_TIMEOUT_MS'),
      maxConnections: num('SERVER_MAX_CONNECTIONS'),
      maxHeaderBytes: num('MAX_HEADER_BYTES'),
      maxKeysPerMessage: num('MAX_KEYS_PER_MESSAGE'),
      maxStringBytes: num('MAX_STRING_BYTES'),
      rateLimit: rateLimitConfig(num('RATE_LIMIT_MESSAGES_PER_SECOND'), num('RATE_LIMIT_BURST')),
      maxBodyBytes: num('MAX_BODY_BYTES'),
      maxDecompressedBytes: num('MAX_DECOMPRESSED_BYTES'),
      maxMessagesPerBatch: num('MAX_MESSAGES_PER_BATCH'),
      maxJsonDepth: num('MAX_JSON_DEPTH'),
      maxInflightBytes: num('MAX_INFLIGHT_BYTES'),
      shutdownTimeoutMs: num('SHUTDOWN_TIMEOUT_MS'),
      adminToken: str('ADMIN_TOKEN'),
    },
    log: { level: toLogLevel(req('LOG_LEVEL')), format: req('LOG_FORMAT').toLowerCase() === 'json' ? 'json' : 'console' },
    devMode: bool('DEV_MODE'),
    dataDir,
    spool: {
      nats: natsSpoolConfig(cwd, str, num),
      dir: path.resolve(cwd, str('SPOOL_DIR') ?? path.join(dataDir, 'spool')),
      maxBytes: num('SPOOL_MAX_BYTES'),
      fsync: req('SPOOL_FSYNC').toLowerCase() === 'always',
      // Space is freed a whole segment at a time, so a segment is kept to a quarter of the spool at most.
      segmentBytes: Math.min(num('SPOOL_SEGMENT_BYTES'), Math.max(64 * 1024, Math.floor(num('SPOOL_MAX_BYTES') / 4))),
      memoryBytes: num('SPOOL_MEMORY_BYTES'),
    },
    delivery: {
      retryBudgetMs: Math.round(num('RETRY_BUDGET_HOURS') * 3_600_000),
      deadLetterDir: path.join(dataDir, 'deadletters'),
      deadLetterMaxBytes: num('DEADLETTER_MAX_BYTES'),
    },
    tsdb: {
      enabled: bool('TSDB_ENABLED'),
      mode: embedded ? 'embedded' : 'external',
      connection,
      schema,
      poolMax: num('TSDB_POOL_MAX'),
      writeTimeoutMs: num('TSDB_WRITE_TIMEOUT_MS'),
      chunkInterval: req('TSDB_CHUNK_INTERVAL'),
      compressAfter: compressAfter === null || compressAfter === '' ? null : compressAfter,
      retentionDays: num('TSDB_RETENTION_DAYS'),
      embedded: { dataDir: path.join(dataDir, 'postgres'), port: num('TSDB_EMBEDDED_PORT') },
    },
    loki: {
      enabled: bool('LOKI_ENABLED'),
      url: req('LOKI_URL').replace(/\/+$/, ''),
      tenantId: str('LOKI_TENANT_ID'),
      username: str('LOKI_USERNAME'),
      password: str('LOKI_PASSWORD'),
      batchSize: num('LOKI_BATCH_SIZE'),
      batchTimeoutMs: Math.round(num('LOKI_BATCH_TIMEOUT_SECONDS') * 1000),
      ...lokiDetails(str, num, req),
    },
  };
  if (config.server.maxDecompressedBytes < config.server.maxBodyBytes) {
    throw new MothershipError('config_invalid', 'MAX_DECOMPRESSED_BYTES: must be at least MAX_BODY_BYTES');
  }
  if (config.server.headersTimeoutMs > config.server.requestTimeoutMs) {
    throw new MothershipError('config_invalid', 'SERVER_HEADERS_TIMEOUT_MS: must not be more than SERVER_REQUEST_TIMEOUT_MS');
  }
  return deepFreeze(config);
}

/** SPOOL_URL and the SPOOL_NATS_* settings; null when the spool is on local disk. */
function natsSpoolConfig(cwd: string, str: (name: VariableName) => string | null, num: (name: VariableName) => number): NatsSpoolConfig | null {
  const list = str('SPOOL_URL');
  if (list === null) return null;
  const servers: string[] = [];
  let user: string | null = null;
  let password: string | null = null;
  for (const entry of list.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    let url: URL;
    try {
      url = new URL(entry.includes('://') ? entry : `nats://${entry}`);
    } catch {
      // The value may hold a password: name the variable, not the value.
      throw new MothershipError('config_invalid', 'SPOOL_URL: expected nats://host:port entries, comma-separated');
    }
    if (url.protocol !== 'nats:' && url.protocol !== 'tls:') throw new MothershipError('config_invalid', 'SPOOL_URL: expected nats:// (or tls://) URLs');
    if (url.username !== '') {
      user = decodeURIComponent(url.username);
      password = decodeURIComponent(url.password);
    }
    servers.push(`${url.protocol}//${url.host}`);
  }
  if (servers.length === 0) throw new MothershipError('config_invalid', 'SPOOL_URL: no server given');
  const stream = str('SPOOL_NATS_STREAM') ?? '';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(stream)) {
    throw new MothershipError('config_invalid', 'SPOOL_NATS_STREAM: use letters, digits, - and _ (at most 64)');
  }
  const file = (name: VariableName): string | null => pathOrNull(cwd, str(name));
  const tlsFiles = { caFile: file('SPOOL_NATS_TLS_CA_FILE'), certFile: file('SPOOL_NATS_TLS_CERT_FILE'), keyFile: file('SPOOL_NATS_TLS_KEY_FILE') };
  if ((tlsFiles.certFile === null) !== (tlsFiles.keyFile === null)) {
    throw new MothershipError('config_invalid', 'SPOOL_NATS_TLS_CERT_FILE and SPOOL_NATS_TLS_KEY_FILE: set both or neither');
  }
  const tlsOn = tlsFiles.caFile !== null || tlsFiles.certFile !== null || servers.some((s) => s.startsWith('tls://'));
  return {
    servers,
    user,
    password,
    stream,
    subject: `${stream.toLowerCase()}.batches`,
    replicas: num('SPOOL_NATS_REPLICAS'),
    maxAgeMs: Math.round(num('SPOOL_NATS_MAX_AGE_HOURS') * 3_600_000),
    ackWaitMs: Math.round(num('SPOOL_NATS_ACK_WAIT_SECONDS') * 1000),
    duplicateWindowMs: num('SPOOL_NATS_DUPLICATE_WINDOW_SECONDS') * 1000,
    publishTimeoutMs: num('SPOOL_NATS_PUBLISH_TIMEOUT_MS'),
    token: str('SPOOL_NATS_TOKEN'),
    credsFile: file('SPOOL_NATS_CREDS_FILE'),
    tls: tlsOn ? tlsFiles : null,
  };
}

/** The LOKI_* settings beyond the seed's, with the cross-checks that need several variables. */
function lokiDetails(
  str: (name: VariableName) => string | null,
  num: (name: VariableName) => number,
  req: (name: VariableName) => string,
): Omit<LokiConfig, 'enabled' | 'url' | 'tenantId' | 'username' | 'password' | 'batchSize' | 'batchTimeoutMs'> {
  const url = new URL(req('LOKI_URL'));
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new MothershipError('config_invalid', 'LOKI_URL: expected an http:// or https:// URL');
  }
  const labels = splitList(str('LOKI_LABELS'));
  const labelNames = new Map<string, string>([['source', 'source']]);
  for (const field of labels) {
    const name = toLabelName(field);
    if (name === null) throw new MothershipError('config_invalid', `LOKI_LABELS: "${field}" gives no usable label name`);
    const other = labelNames.get(name);
    if (other !== undefined && other !== field) {
      throw new MothershipError('config_invalid', `LOKI_LABELS: "${field}" and "${other}" would both become the label "${name}"`);
    }
    labelNames.set(name, field);
  }
  const staticLabels: Record<string, string> = {};
  for (const pair of splitList(str('LOKI_STATIC_LABELS'))) {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq).trim();
    if (eq < 0 || !isValidLabelName(name)) {
      throw new MothershipError('config_invalid', `LOKI_STATIC_LABELS: expected name=value with a name like job or env_1 (letters, digits, _; not starting with __), got "${pair}"`);
    }
    if (labelNames.has(name) || Object.hasOwn(staticLabels, name)) {
      throw new MothershipError('config_invalid', `LOKI_STATIC_LABELS: the label "${name}" is given twice (or is also in LOKI_LABELS)`);
    }
    const value = pair.slice(eq + 1).trim();
    if (value.length === 0) throw new MothershipError('config_invalid', `LOKI_STATIC_LABELS: the label "${name}" has no value`);
    staticLabels[name] = value;
  }
  const total = labelNames.size + Object.keys(staticLabels).length;
  if (total > MAX_LABELS_PER_STREAM) {
    throw new MothershipError(
      'config_invalid',
      `LOKI_LABELS: with source and LOKI_STATIC_LABELS that makes ${total} labels; Loki accepts at most ${MAX_LABELS_PER_STREAM} per stream`,
    );
  }
  const structuredMetadata = splitList(str('LOKI_STRUCTURED_METADATA'));
  for (const field of structuredMetadata) {
    if (toLabelName(field) === null) throw new MothershipError('config_invalid', `LOKI_STRUCTURED_METADATA: "${field}" gives no usable name`);
  }
  return {
    batchMaxBytes: num('LOKI_BATCH_MAX_BYTES'),
    encoding: req('LOKI_ENCODING').toLowerCase() === 'json' ? 'json' : 'protobuf',
    timeoutMs: num('LOKI_TIMEOUT_MS'),
    labels,
    staticLabels,
    maxLabelValues: num('LOKI_MAX_LABEL_VALUES'),
    lineFormat: req('LOKI_LINE_FORMAT').toLowerCase() === 'message' ? 'message' : 'json',
    structuredMetadata,
    maxLineBytes: num('LOKI_MAX_LINE_BYTES'),
    maxAgeMs: Math.round(num('LOKI_MAX_AGE_HOURS') * 3_600_000),
  };
}

function pathOrNull(cwd: string, value: string | null): string | null {
  return value === null ? null : path.resolve(cwd, value);
}

/** TLS_CERT_FILE and TLS_KEY_FILE go together; TLS_CLIENT_CA_FILE needs both. */
function tlsConfig(cwd: string, str: (name: VariableName) => string | null): TlsConfig | null {
  const certFile = pathOrNull(cwd, str('TLS_CERT_FILE'));
  const keyFile = pathOrNull(cwd, str('TLS_KEY_FILE'));
  const clientCaFile = pathOrNull(cwd, str('TLS_CLIENT_CA_FILE'));
  if (certFile === null && keyFile === null) {
    if (clientCaFile !== null) throw new MothershipError('config_invalid', 'TLS_CLIENT_CA_FILE: mutual TLS needs TLS_CERT_FILE and TLS_KEY_FILE too');
    return null;
  }
  if (certFile === null) throw new MothershipError('config_invalid', 'TLS_CERT_FILE: missing (TLS_KEY_FILE is set; set both or neither)');
  if (keyFile === null) throw new MothershipError('config_invalid', 'TLS_KEY_FILE: missing (TLS_CERT_FILE is set; set both or neither)');
  return { certFile, keyFile, clientCaFile };
}

function rateLimitConfig(messagesPerSecond: number, burst: number): RateLimitConfig | null {
  if (messagesPerSecond === 0) return null;
  return { messagesPerSecond, burst: burst > 0 ? burst : Math.max(1, Math.ceil(messagesPerSecond * 10)) };
}

function checkKind(spec: VariableSpec, value: string): string | null {
  const kind = spec.kind;
  switch (kind.type) {
    case 'string':
    case 'list':
      return null;
    case 'boolean':
      return parseBoolean(value) === null ? `expected true or false, got "${shown(spec, value)}"` : null;
    case 'url': {
      try {
        const u = new URL(value);
        return u.protocol === '' ? 'expected a URL' : null;
      } catch {
        return `expected a URL, got "${shown(spec, value)}"`;
      }
    }
    case 'integer':
    case 'number': {
      const n = Number(value);
      if (!Number.isFinite(n) || (kind.type === 'integer' && !Number.isInteger(n))) {
        return `expected ${kind.type === 'integer' ? 'a whole number' : 'a number'}, got "${shown(spec, value)}"`;
      }
      return n < kind.min || n > kind.max ? `expected ${kind.min}..${kind.max}, got ${n}` : null;
    }
    case 'enum':
      return kind.values.includes(value.toLowerCase()) ? null : `expected one of ${kind.values.join(', ')}, got "${shown(spec, value)}"`;
  }
}

function shown(spec: VariableSpec, value: string): string {
  return spec.secret === true ? '***' : value;
}

function parseBoolean(value: string): boolean | null {
  const v = value.toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes' || v === 'on') return true;
  if (v === 'false' || v === '0' || v === 'no' || v === 'off') return false;
  return null;
}

function toLogLevel(value: string): LogLevel {
  const v = value.toLowerCase();
  if (v === 'warning') return 'warn';
  if (v === 'critical') return 'fatal';
  return v as LogLevel;
}

function splitList(value: string | null): string[] {
  if (value === null) return [];
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

function connectionFromUrl(url: string, defaults: PgConnection): PgConnection {
  const u = new URL(url);
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new MothershipError('config_invalid', 'TSDB_URL: expected a postgres:// or postgresql:// URL');
  }
  const sslmode = u.searchParams.get('sslmode');
  return {
    host: u.hostname === '' ? defaults.host : decodeURIComponent(u.hostname),
    port: u.port === '' ? 5432 : Number(u.port),
    database: u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : defaults.database,
    user: u.username === '' ? defaults.user : decodeURIComponent(u.username),
    password: u.password === '' ? defaults.password : decodeURIComponent(u.password),
    ssl: sslmode === 'require' || sslmode === 'verify-full' ? sslmode : defaults.ssl,
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
