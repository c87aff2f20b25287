/**
 * Bench payloads: realistic EdgeBot messages built from the EdgeBot samples in test/fixtures/samples, made distinct per
 * message so that every accepted message must land as exactly one row.
 *
 * A message is a pure function of (run, seq): the batch generator (worker threads), the COPY
 * ceiling and the landed-row check all derive the same shapes from the same numbers.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export type Message = Record<string, unknown>;

export interface Samples {
  readonly syslog: readonly Message[];
  readonly snmp: readonly Message[];
  readonly weather: readonly Message[];
  /** The messages inside the two payload-*.json bodies, exactly as a node sent them. */
  readonly edge: readonly Message[];
}

/** What makes this run's messages unique; shared with the generator workers. */
export interface RunSpec {
  readonly id: string;
  readonly samplesDir: string;
  /** Event time of seq 0, µs since the epoch; seq n is n µs later. */
  readonly baseMicros: number;
  readonly batchSize: number;
  readonly gzip: boolean;
}

type Kind = keyof Samples;

/**
 * One 20-slot cycle of kinds, roughly the mix of a busy edge node: mostly SNMP readings,
 * a steady stream of syslog, some weather rows and the odd unparsed syslog line.
 */
const MIX: readonly Kind[] = [
  'snmp', 'syslog', 'snmp', 'snmp', 'weather', 'snmp', 'syslog', 'snmp', 'snmp', 'edge',
  'snmp', 'syslog', 'snmp', 'snmp', 'weather', 'snmp', 'syslog', 'snmp', 'syslog', 'snmp',
];

export const EDGE_NODES = 8;

export function loadSamples(dir: string): Samples {
  const jsonl = (name: string): Message[] =>
    fs.readFileSync(path.join(dir, name), 'utf8').split('\n').filter((l) => l.trim() !== '').map(parseObject);
  const syslog = jsonl('syslog_events.jsonl').map((m) => ({ type: 'syslog', service: m['program'] ?? 'syslog', ...m }));
  const snmp = jsonl('snmp_metrics.jsonl').map((m) => ({ type: 'snmp', service: 'snmp', ...m }));
  const edge = fs.readdirSync(dir).filter((f) => /^payload-.*\.json$/.test(f)).sort().flatMap((f) => {
    const body = parseObject(fs.readFileSync(path.join(dir, f), 'utf8'));
    const messages = body['messages'];
    return Array.isArray(messages) ? messages.filter(isObject) : [];
  });
  return { syslog, snmp, weather: weatherMessages(fs.readFileSync(path.join(dir, 'weather_data.csv'), 'utf8')), edge };
}

/** One message per CSV row; numeric columns become numbers, as a node's CSV input does. */
function weatherMessages(csv: string): Message[] {
  const [header, ...rows] = csv.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (header === undefined) return [];
  const names = header.split(',');
  return rows.map((row) => {
    const m: Message = { type: 'weather', service: 'weather' };
    row.split(',').forEach((cell, i) => {
      m[names[i] ?? `col${i}`] = /^-?\d+(\.\d+)?$/.test(cell) ? Number(cell) : cell;
    });
    m['host'] = `wx-${String(m['city']).toLowerCase()}`;
    m['message'] = `${String(m['city'])}: ${String(m['weather_description'])}, ${String(m['temperature_celsius'])} °C`;
    return m;
  });
}

function parseObject(text: string): Message {
  const v: unknown = JSON.parse(text);
  if (!isObject(v)) throw new Error(`sample is not a JSON object: ${text.slice(0, 80)}`);
  return v;
}

function isObject(v: unknown): v is Message {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** ISO 8601 with µs, e.g. 2025-11-27T15:10:00.123456Z (Date alone stops at ms). */
export function isoMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  if (ms !== lastMs) { lastMs = ms; lastMsText = new Date(ms).toISOString().slice(0, 23); }
  return `${lastMsText}${String(micros - ms * 1000).padStart(3, '0')}Z`;
}
// Consecutive seqs share their millisecond: format it once per 1000 messages.
let lastMs = Number.NaN;
let lastMsText = '';

export function sourceOfBatch(index: number): string {
  return `edge-${String((index % EDGE_NODES) + 1).padStart(2, '0')}`;
}

/** The seq-th message of the run: a sample picked by the mix, with its own time and sequence. */
export function messageAt(samples: Samples, run: RunSpec, seq: number): Message {
  const kind = MIX[seq % MIX.length] ?? 'snmp';
  const pool = samples[kind];
  // A multiplicative hash spreads neighbouring seqs over the whole sample file.
  const base = pool[(Math.imul(seq, 0x9e3779b1) >>> 0) % pool.length] ?? {};
  return { ...base, timestamp: isoMicros(run.baseMicros + seq), bench_run: run.id, bench_seq: seq };
}

/** The body of batch `index` (messages index*batchSize …), as a node would POST it. */
export function batchEnvelope(samples: Samples, run: RunSpec, index: number): Record<string, unknown> {
  const first = index * run.batchSize;
  const messages: Message[] = [];
  for (let i = 0; i < run.batchSize; i++) messages.push(messageAt(samples, run, first + i));
  return {
    messages,
    batch_size: run.batchSize,
    timestamp: isoMicros(run.baseMicros + first),
    source: sourceOfBatch(index),
    is_retry: false,
  };
}

/** The request body of batch `index`, gzip'd when the run says so. */
export function encodeBatch(samples: Samples, run: RunSpec, index: number): Uint8Array {
  const json = Buffer.from(JSON.stringify(batchEnvelope(samples, run, index)));
  return run.gzip ? zlib.gzipSync(json) : json;
}
