import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The EdgeBot samples the repository carries (test/fixtures/samples), resolved from this file so
 * that the built tests (dist/test/helpers) and the benches find them from any working directory.
 */
export const SAMPLES_DIR: string = fileURLToPath(new URL('../../../test/fixtures/samples/', import.meta.url));

export interface PayloadSample {
  readonly name: string;
  readonly json: Buffer;
  readonly gzip: Buffer | null;
  readonly body: { messages: Array<Record<string, unknown>>; [key: string]: unknown };
}

/** The request bodies exactly as EdgeBot nodes POST them (payload-*.json and their .json.gz). */
export function payloadSamples(): PayloadSample[] {
  return readdirSync(SAMPLES_DIR)
    .filter((f) => /^payload-.*\.json$/.test(f))
    .sort()
    .map((name) => {
      const json = readFileSync(path.join(SAMPLES_DIR, name));
      const gzPath = path.join(SAMPLES_DIR, `${name}.gz`);
      return {
        name,
        json,
        gzip: existsSync(gzPath) ? readFileSync(gzPath) : null,
        body: JSON.parse(json.toString('utf8')) as PayloadSample['body'],
      };
    });
}

export function jsonlMessages(file: 'syslog_events.jsonl' | 'snmp_metrics.jsonl'): Array<Record<string, unknown>> {
  return readFileSync(path.join(SAMPLES_DIR, file), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** weather_data.csv rows as messages, numeric columns as numbers (as a node sends them). */
export function weatherMessages(): Array<Record<string, unknown>> {
  const [header, ...rows] = readFileSync(path.join(SAMPLES_DIR, 'weather_data.csv'), 'utf8').split('\n').filter((l) => l.trim() !== '');
  const columns = (header ?? '').split(',');
  return rows.map((row) => {
    const cells = row.split(',');
    const message: Record<string, unknown> = { type: 'weather' };
    columns.forEach((column, i) => {
      const cell = cells[i] ?? '';
      const n = Number(cell);
      message[column] = cell !== '' && Number.isFinite(n) ? n : cell;
    });
    return message;
  });
}

export function envelope(messages: unknown[], source = 'edge-test', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { messages, batch_size: messages.length, timestamp: '2025-08-22T17:11:27.936809+00:00', source, is_retry: false, ...extra };
}
