import path from 'node:path';
import { MothershipError } from '../lib/errors.js';
import type { Config, LogLevel, PgConnection } from './config.js';
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
      authTokens: splitList(str('AUTH_TOKENS')),
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
    },
  };
  if (config.server.maxDecompressedBytes < config.server.maxBodyBytes) {
    throw new MothershipError('config_invalid', 'MAX_DECOMPRESSED_BYTES: must be at least MAX_BODY_BYTES');
  }
  return deepFreeze(config);
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
