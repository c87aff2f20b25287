/**
 * Property: whatever a client sends to POST /ingest, the answer is never a 5xx, the server
 * never crashes, and the events that reach the sink are exactly the messages the answer says
 * were accepted (count and indexes), stamped with the authenticated node.
 */
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { after, before, describe, test } from 'node:test';
import { assembleApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { IngestEvent } from '../../src/pipeline/event.js';
import { eventId } from '../../src/pipeline/event-id.js';
import { capString, storableString } from '../../src/pipeline/storable.js';
import type { SendBatch, SendOutcome } from '../../src/sinks/sink.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { tempDir } from '../helpers/events.js';
import { MemorySink } from '../helpers/memory-sink.js';

const NODE = 'edge-prop';
const TOKEN = 'prop-token-0123456789';
const SEED = 20_260_101;

/** Keeps every event it is sent, in order. */
class RecordingSink extends MemorySink {
  readonly sent: IngestEvent[] = [];
  override async send(batch: SendBatch): Promise<SendOutcome> {
    this.sent.push(...batch.events());
    return super.send(batch);
  }
}

// ---- JSON as text, so that keys like __proto__, duplicate keys and huge number literals survive.
type Json = { t: 'raw'; text: string } | { t: 'str'; v: string } | { t: 'arr'; items: Json[] } | { t: 'obj'; entries: Array<[string, Json]> };

function text(j: Json): string {
  switch (j.t) {
    case 'raw':
      return j.text;
    case 'str':
      return JSON.stringify(j.v);
    case 'arr':
      return `[${j.items.map(text).join(',')}]`;
    case 'obj':
      return `{${j.entries.map(([k, v]) => `${JSON.stringify(k)}:${text(v)}`).join(',')}}`;
  }
}

const raw = (t: string): Json => ({ t: 'raw', text: t });
const str = (v: string): Json => ({ t: 'str', v });

const oddStrings = fc.constantFrom('', ' ', '\u0000', 'a\u0000b', '\ud800', '\udfff', 'x\ud83d', '\ud83d\ude00', '\u2028\u2029', '\\u0000', '<script>', 'é'.repeat(70), 'x'.repeat(201), '__proto__', 'null');
const anyString = fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: 12 }) }, { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) }, { weight: 2, arbitrary: oddStrings });
const numberText = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  fc.constantFrom('1e999', '-1e999', '123456789012345678901234567890', '-0', '1E+400', '9007199254740993', '0.0000000000000000000001', '4.9e-324'),
);
const leaf: fc.Arbitrary<Json> = fc.oneof(anyString.map(str), numberText.map(raw), fc.constantFrom('true', 'false', 'null').map(raw));
const key = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 2, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', '_internal', '__spool_id', 'message', 'timestamp', 'time', 'severity', 'host', 'source', 'claimed_source', '') },
  { weight: 1, arbitrary: anyString },
);
const { value } = fc.letrec<{ value: Json; array: Json; object: Json }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }).map((items): Json => ({ t: 'arr', items })),
  object: fc.array(fc.tuple(key, tie('value')), { maxLength: 5 }).map((entries): Json => ({ t: 'obj', entries })),
}));

const nested = (depth: number, kind: 'arr' | 'obj'): Json =>
  raw(kind === 'arr' ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
const deep = fc.tuple(fc.integer({ min: 1, max: 3000 }), fc.constantFrom<'arr' | 'obj'>('arr', 'obj')).map(([d, k]) => nested(d, k));

const oddTime: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom('2026-01-01T00:00:00Z', '2026-13-45T99:99:99Z', '1969-12-31T23:59:59Z', '9999-12-31T23:59:59.999999999Z', '2262-04-11T23:47:16.854775807Z', '2026-01-01', '2026-01-01T00:00:00+14:00', '0', '', 'now', '1640995200', '1640995200000000000').map(str),
  fc.constantFrom('0', '-1', '1e20', '1640995200.123456', '1640995200123', '1640995200123456', '1640995200123456789', '1e999', '9223372036854775807', '-9223372036854775808', 'true', 'null', '[]', '{}').map(raw),
);
const spoolId: fc.Arbitrary<Json> = fc.oneof(fc.constantFrom('1', '2', '-0', '1.5', '1e999', 'null', '{}', '[1]').map(raw), fc.constantFrom('a', 'b', '', ' ').map(str));
const fields: Array<fc.Arbitrary<[string, Json]>> = [
  anyString.map((s): [string, Json] => ['message', str(s)]),
  oddTime.map((t): [string, Json] => ['timestamp', t]),
  oddTime.map((t): [string, Json] => ['@timestamp', t]),
  oddTime.map((t): [string, Json] => ['ts', t]),
  fc.oneof(fc.integer({ min: -1, max: 9 }).map((n) => raw(String(n))), fc.constantFrom('info', 'ERR', 'warning', '7', 'emerg', '').map(str), value).map((v): [string, Json] => ['severity', v]),
  spoolId.map((v): [string, Json] => ['__spool_id', v]),
  value.map((v): [string, Json] => ['__proto__', v]),
  value.map((v): [string, Json] => ['_internal', v]),
  anyString.map((s): [string, Json] => ['host', str(s)]),
  anyString.map((s): [string, Json] => ['claimed_source', str(s)]),
  value.map((v): [string, Json] => ['data', v]),
];
const structured: fc.Arbitrary<Json> = fc
  .tuple(fc.tuple(...fields).chain((all) => fc.subarray(all)), fc.array(fc.tuple(key, value), { maxLength: 4 }))
  .map(([known, extra]): Json => ({ t: 'obj', entries: [...extra, ...known] }));
const message: fc.Arbitrary<Json> = fc.oneof({ weight: 5, arbitrary: structured }, { weight: 2, arbitrary: value }, { weight: 2, arbitrary: anyString.map(str) }, { weight: 1, arbitrary: deep });

const source: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom(NODE, ` ${NODE} `, 'edge-other', '', '   ', 'x'.repeat(300), '\u0000node', '\ud800').map(str),
  anyString.map(str),
  fc.constantFrom('null', '42', '{}', '["edge-prop"]').map(raw),
);

const envelope: fc.Arbitrary<string> = fc
  .record({
    messages: fc.array(message, { maxLength: 45 }),
    source: fc.option(source),
    timestamp: fc.option(oddTime),
    isRetry: fc.option(fc.constantFrom('true', 'false', '"yes"', '1').map(raw)),
    extra: fc.array(fc.tuple(key, value), { maxLength: 3 }),
    shadowed: fc.option(value),
  })
  .map((e) => {
    const entries: Array<[string, Json]> = [...e.extra];
    // A duplicate "messages" key: JSON.parse keeps the last, so must everyone.
    if (e.shadowed !== null) entries.push(['messages', e.shadowed]);
    entries.push(['messages', { t: 'arr', items: e.messages }]);
    if (e.source !== null) entries.push(['source', e.source]);
    if (e.timestamp !== null) entries.push(['timestamp', e.timestamp]);
    if (e.isRetry !== null) entries.push(['is_retry', e.isRetry]);
    return text({ t: 'obj', entries });
  });

const body: fc.Arbitrary<string> = fc.oneof(
  { weight: 12, arbitrary: envelope },
  { weight: 1, arbitrary: value.map(text) },
  { weight: 1, arbitrary: fc.tuple(envelope, fc.nat(), fc.constantFrom('', '"', '}', ',', '\u0000', '\\', 'ÿ')).map(([t, at, junk]) => t.slice(0, at % (t.length + 1)) + junk) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 120_000 }).map((d) => `{"messages":[${text(nested(d, 'arr'))}]}`) },
);

interface Request {
  body: string;
  encoding: 'identity' | 'gzip' | 'deflate' | 'deflate-raw' | 'br' | 'gzip-corrupt';
  contentType: string | null;
  auth: 'right' | 'wrong' | 'missing';
  idempotencyKey: string | null;
}

const request: fc.Arbitrary<Request> = fc.record({
  body,
  encoding: fc.constantFrom<Request['encoding']>('identity', 'identity', 'identity', 'gzip', 'deflate', 'deflate-raw', 'br', 'gzip-corrupt'),
  contentType: fc.constantFrom('application/json', 'application/json', 'application/json; charset=utf-8', 'application/vnd.edgebot+json', null, 'text/plain'),
  auth: fc.constantFrom<Request['auth']>('right', 'right', 'right', 'right', 'right', 'right', 'wrong', 'missing'),
  idempotencyKey: fc.option(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,299}$/), { freq: 2 }),
});

function encode(r: Request): { payload: Buffer; headers: Record<string, string> } {
  const plain = Buffer.from(r.body, 'utf8');
  const headers: Record<string, string> = {};
  if (r.contentType !== null) headers['content-type'] = r.contentType;
  if (r.auth === 'right') headers['authorization'] = `Bearer ${TOKEN}`;
  if (r.auth === 'wrong') headers['authorization'] = 'Bearer not-the-token';
  if (r.idempotencyKey !== null) headers['idempotency-key'] = r.idempotencyKey;
  switch (r.encoding) {
    case 'identity':
      return { payload: plain, headers };
    case 'gzip':
      return { payload: zlib.gzipSync(plain), headers: { ...headers, 'content-encoding': 'gzip' } };
    case 'deflate':
      return { payload: zlib.deflateSync(plain), headers: { ...headers, 'content-encoding': 'deflate' } };
    case 'deflate-raw':
      return { payload: zlib.deflateRawSync(plain), headers: { ...headers, 'content-encoding': 'deflate' } };
    case 'br':
      return { payload: zlib.brotliCompressSync(plain), headers: { ...headers, 'content-encoding': 'br' } };
    case 'gzip-corrupt': {
      const gz = zlib.gzipSync(plain);
      const at = Math.floor(gz.length / 2);
      gz[at] = (gz[at] ?? 0) ^ 0xff;
      return { payload: gz, headers: { ...headers, 'content-encoding': 'gzip' } };
    }
  }
}

/** The id rule of the README for message `i`, when the request had an Idempotency-Key or the message a __spool_id. */
function expectedIdKey(msg: unknown, i: number, idempotencyKey: string | null): { id: string } | { content: number } {
  const original = typeof msg === 'string' ? { message: msg } : (msg as Record<string, unknown>);
  const spool = original['__spool_id'];
  if ((typeof spool === 'string' && spool.length > 0) || (typeof spool === 'number' && Number.isFinite(spool))) return { id: eventId('spool', NODE, String(spool), null) };
  // HTTP drops the spaces around a header value; the server takes at most 256 characters.
  const trimmed = idempotencyKey?.trim() ?? '';
  if (trimmed !== '') return { id: eventId('key', NODE, trimmed.slice(0, 256), i) };
  return { content: i };
}

function hasUnstorable(value: unknown): boolean {
  if (typeof value === 'string') return /[\0\p{Cs}]/u.test(value);
  if (typeof value !== 'object' || value === null) return false;
  for (const [k, v] of Object.entries(value)) if (hasUnstorable(k) || hasUnstorable(v)) return true;
  return false;
}

describe('POST /ingest under generated input (fast-check)', () => {
  let app: App;
  let sink: RecordingSink;
  let remove: () => Promise<void> = async () => {};
  before(async () => {
    const dir = await tempDir('property-test-');
    remove = dir.remove;
    const config = loadConfig({
      DATA_DIR: dir.dir,
      SPOOL_FSYNC: 'never',
      SHUTDOWN_TIMEOUT_MS: '1000',
      AUTH_TOKENS: `${NODE}:${TOKEN}`,
      MAX_BODY_BYTES: '65536',
      MAX_DECOMPRESSED_BYTES: '262144',
      MAX_MESSAGES_PER_BATCH: '40',
      MAX_KEYS_PER_MESSAGE: '24',
      MAX_STRING_BYTES: '200',
      MAX_JSON_DEPTH: '6',
    });
    sink = new RecordingSink();
    app = await assembleApp(config, { logger: silentLogger(), defaultMetrics: false }, [{ sink, window: 2, waitMs: 10_000 }]);
  });
  after(async () => {
    await app.close();
    await remove();
  });

  test('no 5xx, no crash, and the sink gets exactly the accepted messages, as the authenticated node', async () => {
    const seen = { ok: 0, refused: new Map<number, number>(), rejectedMessages: 0 };
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const { payload, headers } = encode(r);
        const sentBefore = sink.sent.length;
        const res = await app.http.inject({ method: 'POST', url: '/ingest', headers, payload });
        const sent = sink.sent.slice(sentBefore);
        assert.ok(res.statusCode < 500, `${res.statusCode}: ${res.body}`);
        const answer = res.json() as Record<string, unknown>;
        if (res.statusCode !== 200) {
          seen.refused.set(res.statusCode, (seen.refused.get(res.statusCode) ?? 0) + 1);
          assert.ok([400, 401, 413, 415].includes(res.statusCode), res.body);
          assert.equal(answer['status'], 'error');
          assert.equal(typeof answer['error'], 'string');
          assert.equal(sent.length, 0, 'a refused request reached the sink');
          if (r.auth !== 'right') assert.equal(res.statusCode, 401);
          return;
        }
        seen.ok++;
        assert.equal(r.auth, 'right');
        const parsed = JSON.parse(r.body) as { messages: unknown[]; source?: unknown };
        const messages = parsed.messages;
        const rejected = (answer['rejected'] as Array<{ index: number; error: string }> | undefined) ?? [];
        seen.rejectedMessages += rejected.length;
        const rejectedIndexes = rejected.map((x) => x.index);
        assert.equal(answer['received'], messages.length);
        assert.equal(answer['errors'], rejected.length);
        assert.deepEqual(rejectedIndexes, [...new Set(rejectedIndexes)].sort((a, b) => a - b), 'rejected indexes unique and sorted');
        assert.ok(rejectedIndexes.every((i) => Number.isInteger(i) && i >= 0 && i < messages.length));
        const accepted = messages.map((_, i) => i).filter((i) => !rejectedIndexes.includes(i));
        assert.equal(answer['sanitized'], accepted.length);
        assert.equal(answer['written'], accepted.length);
        const tsdb = (answer['sink_results'] as Record<string, Record<string, number>>)['tsdb'] as Record<string, number>;
        assert.equal(tsdb['queued'], undefined, 'the sink is up; the answer must not be queued');
        assert.equal((tsdb['written'] ?? 0) + (tsdb['duplicates'] ?? 0), accepted.length);

        // Exactly the accepted messages reached the sink: by id where the rule makes it computable, else by count.
        assert.equal(sent.length, accepted.length);
        const expected = accepted.map((i) => expectedIdKey(messages[i], i, r.idempotencyKey));
        const known = expected.flatMap((e) => ('id' in e ? [e.id] : []));
        const sentIds = sent.map((e) => e.id);
        for (const id of known) assert.ok(sentIds.includes(id), 'an accepted message is missing from the sink');
        assert.equal(new Set(sentIds).size, new Set(known).size + expected.filter((e) => 'content' in e).length);

        const claimed = typeof parsed.source === 'string' && parsed.source.trim() !== '' ? storableString(capString(parsed.source.trim(), 256)) : null;
        for (const e of sent) {
          assert.equal(e.source, NODE);
          // A claim other than the node is kept aside; a message may also carry its own claimed_source key.
          if (claimed !== null && claimed !== NODE) assert.equal(e.data['claimed_source'], claimed);
          assert.equal(e.dataJson, JSON.stringify(e.data));
          assert.ok(Object.keys(e.data).every((k) => !k.startsWith('_')), 'an internal key reached the sink');
          assert.equal(hasUnstorable(JSON.parse(e.dataJson)), false, 'unstorable text reached the sink');
          assert.ok(Number.isSafeInteger(e.timeMs) && e.timeNanos >= 0 && e.timeNanos < 1_000_000);
        }
      }),
      { seed: SEED, numRuns: 400, endOnFailure: true },
    );
    // The generator must exercise both sides, or the property proves little.
    assert.ok(seen.ok > 150, `only ${seen.ok} accepted batches`);
    assert.ok(seen.rejectedMessages > 50, `only ${seen.rejectedMessages} rejected messages`);
    for (const status of [400, 401, 413, 415]) assert.ok((seen.refused.get(status) ?? 0) > 0, `no ${status} generated`);
    // And the server is still fine.
    const health = await app.http.inject({ method: 'GET', url: '/health' });
    assert.equal(health.statusCode, 200);
  });
});
