/**
 * What each step of the per-message path costs on its own, in one process, without HTTP, disk
 * or PostgreSQL: the bench's own batches (bench/payloads.ts) run through the server's functions,
 * stage by stage. It shows where the ingest path's µs per message go, and which part of them no
 * implementation of the same contract can skip: inflating, decoding and parsing the body, the
 * canonical JSON and SHA-256 of every message (the id rule) and the COPY rows of the spool record.
 *
 *   npm run bench:stages
 *   BENCH_BATCH=1000 BENCH_GZIP=false npm run bench:stages
 *
 * Each stage runs over the same batches many times; the figure is the fastest pass (the least
 * disturbed by other work on the machine), in µs of one core per message. Asserts nothing.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeBody } from '../src/http/decode-body.js';
import { parseEnvelope } from '../src/pipeline/envelope.js';
import { eventId } from '../src/pipeline/event-id.js';
import type { BatchEnvelope, NormalizedBatch } from '../src/pipeline/event.js';
import { normalizeBatch, type NormalizeContext } from '../src/pipeline/normalize.js';
import { frameHeader } from '../src/spool/frame.js';
import { encodeEvents } from '../src/spool/record-codec.js';
import { encodeBatch, loadSamples, type RunSpec } from './payloads.js';
import { SAMPLES_DIR } from '../test/helpers/samples.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const BATCH = positive(process.env['BENCH_BATCH'] ?? '100', 'BENCH_BATCH');
const GZIP = (process.env['BENCH_GZIP'] ?? 'true') !== 'false';
const MESSAGES = positive(process.env['BENCH_MESSAGES'] ?? '50000', 'BENCH_MESSAGES');
const PASSES = positive(process.env['BENCH_PASSES'] ?? '15', 'BENCH_PASSES');
const LIMITS = { maxDecompressedBytes: 64 * 1024 * 1024, maxMessagesPerBatch: 100_000 };

interface Stage {
  readonly name: string;
  /** Part of what the contract itself requires (see the header comment). */
  readonly floor: boolean;
  readonly run: (batch: number) => unknown;
}

function positive(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${text}"`);
  return n;
}

async function main(): Promise<void> {
  const samples = loadSamples(SAMPLES_DIR);
  const run: RunSpec = { id: 'stages', samplesDir: '', baseMicros: Date.now() * 1000, batchSize: BATCH, gzip: GZIP };
  const batches = Math.max(1, Math.ceil(MESSAGES / BATCH));
  const bodies: Buffer[] = [];
  for (let i = 0; i < batches; i++) bodies.push(Buffer.from(encodeBatch(samples, run, i)));

  // Every stage's input is the previous stage's output, computed once up front.
  const encoding = GZIP ? 'gzip' : undefined;
  const inflated = await Promise.all(bodies.map((b) => decodeBody(b, encoding, LIMITS)));
  const texts = inflated.map((b) => b.toString('utf8'));
  const parsed: unknown[] = texts.map((t) => JSON.parse(t) as unknown);
  const envelopes: BatchEnvelope[] = parsed.map((p) => parseEnvelope(p, LIMITS));
  const context: NormalizeContext = { receivedAtMs: Date.now(), idempotencyKey: null, maxJsonDepth: 32, maxKeysPerMessage: 10_000, maxStringBytes: 1024 * 1024 };
  const normalized: NormalizedBatch[] = envelopes.map((e) => normalizeBatch(e, context));
  const canonical = normalized.map((n) => n.events.map((e) => e.dataJson));
  const payloads = normalized.map((n) => encodeEvents(n.events));
  const messages = normalized.reduce((sum, n) => sum + n.events.length, 0);

  const stages: Stage[] = [
    { name: GZIP ? 'inflate (gzip)' : 'inflate (none: identity)', floor: true, run: (i) => decodeBody(at(bodies, i), encoding, LIMITS) },
    { name: 'UTF-8 decode', floor: true, run: (i) => at(inflated, i).toString('utf8') },
    { name: 'JSON.parse', floor: true, run: (i) => JSON.parse(at(texts, i)) },
    { name: 'validate + normalize (all)', floor: false, run: (i) => normalizeBatch(parseEnvelope(at(parsed, i), LIMITS), context) },
    { name: '  of which: canonical JSON', floor: true, run: (i) => { for (const m of at(envelopes, i).messages) JSON.stringify(m); } },
    { name: '  of which: SHA-256 ids', floor: true, run: (i) => { for (const json of at(canonical, i)) eventId('content', 'edge-01', json, 0); } },
    { name: 'COPY rows (spool record)', floor: true, run: (i) => encodeEvents(at(normalized, i).events) },
    { name: 'frame header + CRC-32', floor: false, run: (i) => frameHeader(i + 1, 1, BATCH, at(payloads, i)) },
  ];

  const avgBody = bodies.reduce((s, b) => s + b.length, 0) / bodies.length;
  const avgJson = inflated.reduce((s, b) => s + b.length, 0) / inflated.length;
  console.log(`${messages.toLocaleString('en-US')} messages in ${batches} batches of ${BATCH}, ${GZIP ? 'gzip' : 'plain'}: ` +
    `${Math.round(avgBody).toLocaleString('en-US')} bytes per body, ${Math.round(avgJson / BATCH)} bytes of JSON per message; fastest of ${PASSES} passes, µs of one core per message`);
  console.log('');
  const results: Array<{ stage: Stage; micros: number }> = [];
  for (const stage of stages) {
    const micros = await fastestPass(stage, batches, messages);
    results.push({ stage, micros });
    console.log(`  ${stage.name.padEnd(30)} ${micros.toFixed(2).padStart(6)}${stage.floor ? '   *' : ''}`);
  }
  const whole = results.filter((r) => !r.stage.name.startsWith(' ')).reduce((s, r) => s + r.micros, 0);
  const floor = results.filter((r) => r.stage.floor).reduce((s, r) => s + r.micros, 0);
  console.log('');
  console.log(`  ${'sum of the stages'.padEnd(30)} ${whole.toFixed(2).padStart(6)}`);
  console.log(`  ${'* required by the contract'.padEnd(30)} ${floor.toFixed(2).padStart(6)}   (inflate, decode, parse, canonical JSON, SHA-256, COPY rows)`);
  console.log('');
  console.log('Not included: HTTP, the spool write and its fsync, delivery, GC of what these stages leave behind.');
}

async function fastestPass(stage: Stage, batches: number, messages: number): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let pass = 0; pass < PASSES; pass++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batches; i++) {
      const out = stage.run(i);
      // decodeBody is async; its inline path has already done the work when it returns.
      if (out instanceof Promise) await out;
    }
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000);
  }
  return best / messages;
}

function at<T>(items: readonly T[], i: number): T {
  const item = items[i];
  if (item === undefined) throw new Error(`no item ${i}`);
  return item;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
