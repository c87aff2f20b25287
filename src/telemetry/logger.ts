import { pino, type Logger, type DestinationStream } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from '../config/config.js';

export type { Logger };

/** Paths pino censors wherever they appear, so a secret cannot reach a log line by accident. */
const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'headers.cookie',
  '*.headers.cookie',
  'headers["proxy-authorization"]',
  '*.headers["proxy-authorization"]',
  'authTokens',
  '*.authTokens',
  'adminToken',
  '*.adminToken',
  'token',
  '*.token',
  'key',
  '*.key',
];

/** Texts every line is cleaned of: credentials in headers and URLs that reach a message or an error text. */
const SCRUBS: ReadonlyArray<readonly [RegExp, string]> = [
  // "Bearer abc…", "Basic dXNlcjpwdw==" (in an error message, a dumped request, …); 8+ characters,
  // so that prose such as "bearer token" stays readable.
  [/\b(Bearer|Basic)(\s+|\\[nt]|%20)[A-Za-z0-9._~+/=-]{8,}/gi, '$1 ***'],
  // scheme://user:password@host → scheme://user:***@host
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@"'\\]*):[^\s@/"'\\]*@/gi, '$1:***@'],
];

/** Secrets shorter than this are not searched for in log text (they would match ordinary words). */
const MIN_SCRUBBED_SECRET = 6;

export type LoggerConfig = Pick<Config, 'log'> & Partial<Pick<Config, 'server' | 'tsdb' | 'loki'>>;

export function createLogger(config: LoggerConfig, destination?: DestinationStream): Logger {
  const options = {
    level: config.log.level,
    base: { service: 'mothership' },
    redact: { paths: REDACT_PATHS, censor: '***' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // The last line of defence: whatever path a secret took into a log line, it leaves without it.
    hooks: { streamWrite: scrubber(knownSecrets(config)) },
  };
  if (destination !== undefined) return pino(options, destination);
  if (config.log.format === 'json') return pino(options);
  return pino(options, pretty({ sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' }));
}

/** The configured secrets whose values are known (tokens are held only as digests). The default TSDB password is public. */
function knownSecrets(config: LoggerConfig): string[] {
  const secrets = [config.server?.adminToken, config.loki?.password, config.tsdb?.connection.password === 'edgebot' ? null : config.tsdb?.connection.password];
  return secrets.filter((s): s is string => typeof s === 'string' && s.length >= MIN_SCRUBBED_SECRET);
}

/** A line cleaner: the patterns above, then every known secret as written and as JSON-escaped. */
export function scrubber(secrets: readonly string[]): (line: string) => string {
  const forms = new Set<string>();
  for (const s of secrets) {
    forms.add(s);
    forms.add(JSON.stringify(s).slice(1, -1));
  }
  const exact = [...forms].sort((a, b) => b.length - a.length);
  return (line) => {
    let out = line;
    for (const [pattern, replacement] of SCRUBS) out = out.replace(pattern, replacement);
    for (const secret of exact) if (out.includes(secret)) out = out.split(secret).join('***');
    return out;
  };
}

/** A logger that writes nothing, for tests and tools that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
