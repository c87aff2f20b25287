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
  'req.headers.authorization',
  'authTokens',
  '*.authTokens',
  'token',
  '*.token',
];

export function createLogger(config: Pick<Config, 'log'>, destination?: DestinationStream): Logger {
  const options = {
    level: config.log.level,
    base: { service: 'mothership' },
    redact: { paths: REDACT_PATHS, censor: '***' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (destination !== undefined) return pino(options, destination);
  if (config.log.format === 'json') return pino(options);
  return pino(options, pretty({ sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' }));
}

/** A logger that writes nothing, for tests and tools that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
