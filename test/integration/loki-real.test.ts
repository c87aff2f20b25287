/**
 * The push API of a real Grafana Loki (3.4.6, TEST_LOKI_URL) and of our stand-in, side by side:
 * the same requests go to both, and both must give the answers the real one gave when these
 * tests were written (status, message text, what is stored, what is added). Without
 * TEST_LOKI_URL the stand-in half still runs, so the stand-in stays what Loki is.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeProtobuf, type EncodedPush } from '../../src/sinks/loki/encode.js';
import type { LokiEntry } from '../../src/sinks/loki/batch.js';
import { mapRejections, type SentStream } from '../../src/sinks/loki/rejections.js';
import { lokiTargets, realLoki, uniqueName, type LokiTarget } from '../helpers/loki-real.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T = { timeout: 20_000 };
const real = await realLoki();

const targets = lokiTargets(real);
type Target = LokiTarget;

interface Line {
  readonly labels: string;
  readonly timeMs: number;
  readonly line: string;
  readonly metadata?: ReadonlyArray<readonly [string, string]>;
}

/** A protobuf push of entries given with their label text as sent (valid or not). */
function protobuf(lines: readonly Line[]): EncodedPush {
  const entries: LokiEntry[] = lines.map((l, position) => ({ position, labelsText: l.labels, labels: [], timeMs: l.timeMs, timeNanos: 0, line: l.line, metadata: l.metadata ?? [], bytes: 0 }));
  return encodeProtobuf(entries);
}

function json(streams: ReadonlyArray<{ stream: Record<string, string>; values: unknown[] }>): EncodedPush {
  return { body: Buffer.from(JSON.stringify({ streams })), contentType: 'application/json' };
}

const labels = (pairs: Record<string, string>): string => `{${Object.entries(pairs).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}}`;
const nsOf = (ms: number): string => (BigInt(ms) * 1_000_000n).toString();

interface Answer {
  readonly status: number;
  readonly text: string;
}

async function post(target: Target, body: Uint8Array | string, headers: Record<string, string>): Promise<Answer> {
  const res = await fetch(`${target.url()}/loki/api/v1/push`, { method: 'POST', body, headers, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, text: (await res.text()).trim() };
}

const push = (target: Target, encoded: EncodedPush): Promise<Answer> => post(target, encoded.body, { 'Content-Type': encoded.contentType });

/** What the sink makes of an answer (src/sinks/loki/rejections.ts) for one stream of one entry. */
function codesFor(answer: Answer, pairs: Record<string, string>, lineBytes = 1, hasMetadata = false): string[] | null {
  const sent: SentStream = { labelsText: labels(pairs), labels: new Map(Object.entries(pairs)), entries: [{ position: 0, timeMs: 0, timeNanos: 0, lineBytes, hasMetadata }] };
  return mapRejections(answer.text, [sent])?.map((r) => r.code) ?? null;
}

/** RFC 3339 to the second, as Loki writes times in its answers. */
const rfc = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
/** Go's time.Time.String() in UTC for a whole-ms time. */
const goTime = (ms: number): string => {
  const frac = String(ms % 1000).padStart(3, '0').replace(/0+$/, '');
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}${frac === '' ? '' : `.${frac}`} +0000 UTC`;
};
/** The cutoff of "too old" depends on the clock of the answer: any second within 5 s of `ms`. */
const cutoffNear = (ms: number): string => `(?:${[-2, -1, 0, 1, 2, 3, 4, 5].map((d) => rfc(ms + d * 1000)).join('|')})`;
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

for (const target of targets) {
  describe(`Loki's push API, as answered by ${target.name}`, { skip: target.skip }, () => {
    test('protobuf and JSON pushes are stored, with service_name added and detected_level as structured metadata', T, async () => {
      const source = uniqueName('conf-ok');
      const t0 = Date.now() - HOUR;
      assert.deepEqual(await push(target, protobuf([{ labels: labels({ job: 'edgebot', source }), timeMs: t0, line: 'pb line', metadata: [['trace_id', 't-1']] }])), { status: 204, text: '' });
      assert.deepEqual(await push(target, json([{ stream: { source, service: 'sshd', severity: 'crit' }, values: [[nsOf(t0 + 1), '{"message":"json line"}']] }])), { status: 204, text: '' });
      // four elements: the fourth is ignored (Loki 3.4.6 answered 204)
      assert.equal((await push(target, json([{ stream: { source }, values: [[nsOf(t0 + 2), 'extra', {}, 'ignored']] }]))).status, 204);
      const stored = await target.read({ source }, { startMs: t0 - 1000, endMs: t0 + 1000 }, 3);
      assert.deepEqual(
        stored.map((e) => [e.line, e.labels, e.metadata]),
        [
          ['pb line', { job: 'edgebot', service_name: 'edgebot', source }, { trace_id: 't-1', detected_level: 'unknown' }],
          ['{"message":"json line"}', { service: 'sshd', service_name: 'sshd', severity: 'crit', source }, { detected_level: 'crit' }],
          ['extra', { service_name: 'unknown_service', source }, { detected_level: 'unknown' }],
        ],
      );
      assert.equal(stored[0]?.tsNs, BigInt(nsOf(t0)));
    });

    test('service_name comes from the first of service, app, …, job, k8s_job_name that the stream has', T, async () => {
      const source = uniqueName('conf-svc');
      const t0 = Date.now() - HOUR;
      const cases: Array<[Record<string, string>, string]> = [
        [{ job: 'j', service: 's' }, 's'],
        [{ job: 'j', component: 'c' }, 'c'],
        [{ app_name: 'an', name: 'n' }, 'an'],
        [{ k8s_job_name: 'kj', workload: 'w' }, 'w'],
        [{ k8s_container_name: 'kc', component: 'c' }, 'kc'],
        [{ host: 'h', namespace: 'ns' }, 'unknown_service'],
        [{ service_name: 'given', service: 's' }, 'given'],
      ];
      for (const [i, [pairs]] of cases.entries()) assert.equal((await push(target, protobuf([{ labels: labels({ ...pairs, source }), timeMs: t0 + i, line: `case ${i}` }]))).status, 204);
      const stored = await target.read({ source }, { startMs: t0 - 1000, endMs: t0 + 1000 }, cases.length);
      assert.deepEqual(stored.map((e) => e.labels['service_name']), cases.map(([, expected]) => expected));
    });

    test('detected_level: a level label as it is; a JSON or logfmt level normalised; else words of the line', T, async () => {
      const source = uniqueName('conf-level');
      const t0 = Date.now() - HOUR;
      const cases: Array<[Record<string, string>, string, ReadonlyArray<readonly [string, string]>, string]> = [
        [{ severity: 'crit' }, '{"message":"x","severity":2}', [], 'crit'],
        [{ severity: 'warning' }, 'plain', [], 'warning'],
        [{ level: 'ERR' }, 'plain', [], 'ERR'],
        [{}, 'md', [['level', 'WARNING']], 'WARNING'],
        [{}, '{"level":"WARNING","msg":"m"}', [], 'warn'],
        [{}, '{"lvl":"dbg"}', [], 'debug'],
        [{}, '{"severity":"information"}', [], 'info'],
        [{}, '{"a":{"level":"error"}}', [], 'error'],
        [{}, '{"severity":"err"}', [], 'error'],
        [{}, '{"severity":"notice"}', [], 'unknown'],
        [{}, '{"message":"x","severity":6}', [], 'unknown'],
        [{}, '{"message":"an error happened"}', [], 'error'],
        [{}, '{"message":"info and error"}', [], 'info'],
        [{}, 'level=warn msg=x', [], 'warn'],
        [{}, 'a=b error', [], 'error'],
        [{}, 'x error y', [], 'error'],
        [{}, 'x Error y', [], 'unknown'],
        [{}, 'err: x', [], 'error'],
        [{}, 'x err y', [], 'unknown'],
        [{}, 'x WARNING', [], 'warn'],
        [{}, 'x warn y', [], 'unknown'],
        [{}, 'x debug', [], 'unknown'],
        [{}, 'hello', [], 'unknown'],
        [{}, 'supplied', [['detected_level', 'WARNING']], 'unknown'],
      ];
      for (const [i, [pairs, line, metadata]] of cases.entries()) {
        assert.equal((await push(target, protobuf([{ labels: labels({ ...pairs, source }), timeMs: t0 + i, line, metadata }]))).status, 204);
      }
      const stored = await target.read({ source }, { startMs: t0 - 1000, endMs: t0 + 1000 }, cases.length);
      assert.deepEqual(stored.map((e) => [e.line, e.metadata['detected_level']]), cases.map(([, line, , level]) => [line, level]));
    });

    test('exact duplicates (stream, time, line; whatever the metadata) are stored once; a resend is answered 204', T, async () => {
      const source = uniqueName('conf-dup');
      const t0 = Date.now() - HOUR;
      const batch = protobuf([
        { labels: labels({ source }), timeMs: t0, line: 'a' },
        { labels: labels({ source }), timeMs: t0 + 1, line: 'b', metadata: [['k', '1']] },
        { labels: labels({ source }), timeMs: t0 + 1, line: 'b', metadata: [['k', '1']] },
        { labels: labels({ source }), timeMs: t0 + 2, line: 'same time' },
        { labels: labels({ source }), timeMs: t0 + 2, line: 'same time, other line' },
      ]);
      assert.equal((await push(target, batch)).status, 204);
      assert.equal((await push(target, batch)).status, 204);
      assert.equal((await push(target, json([{ stream: { source }, values: [[nsOf(t0), 'a'], [nsOf(t0 + 1), 'b', { k: 'other' }]] }]))).status, 204);
      const stored = await target.read({ source }, { startMs: t0 - 1000, endMs: t0 + 1000 }, 4);
      assert.deepEqual(stored.map((e) => e.line).sort(), ['a', 'b', 'same time', 'same time, other line']);
      assert.equal(stored.find((e) => e.line === 'b')?.metadata['k'], '1', 'the first one stays');
    });

    test('timestamps too old and too new: the valid entries are stored, the 400 lists the others grouped', T, async () => {
      const source = uniqueName('conf-time');
      const now = Date.now();
      const stream = `{service_name="unknown_service", source="${source}"}`;
      const answer = await push(target, protobuf([
        { labels: labels({ source }), timeMs: now - 8 * DAY, line: 'old 1' },
        { labels: labels({ source }), timeMs: now - 8 * DAY + 1, line: 'old 2' },
        { labels: labels({ source }), timeMs: now - HOUR, line: 'fine' },
        { labels: labels({ source }), timeMs: now + DAY, line: 'new' },
      ]));
      assert.equal(answer.status, 400);
      // Go's GroupedErrors: a map, so the order of the groups varies
      const parts = answer.text.split('; ').sort();
      assert.equal(parts.length, 2);
      assert.match(parts[0] as string, new RegExp(`^1 errors like: entry for stream '${escape(stream)}' has timestamp too new: ${escape(rfc(now + DAY))}$`));
      assert.match(parts[1] as string, new RegExp(`^2 errors like: entry for stream '${escape(stream)}' has timestamp too old: ${escape(rfc(now - 8 * DAY))}, oldest acceptable timestamp is: ${cutoffNear(now - 7 * DAY)}$`));
      assert.deepEqual((await target.read({ source }, { startMs: now - 9 * DAY, endMs: now + 2 * DAY }, 1)).map((e) => e.line), ['fine']);
      const single = await push(target, protobuf([{ labels: labels({ source }), timeMs: now + DAY, line: 'new' }]));
      assert.deepEqual(single, { status: 400, text: `entry for stream '${stream}' has timestamp too new: ${rfc(now + DAY)}` });
    });

    test('labels: at most 15 besides service_name, names ≤ 1024 and values ≤ 2048 bytes, no name twice', T, async () => {
      const source = uniqueName('conf-labels');
      const t0 = Date.now() - HOUR;
      const fourteen = Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`l${i}`, 'v']));
      assert.equal((await push(target, protobuf([{ labels: labels({ ...fourteen, source }), timeMs: t0, line: '15 labels' }]))).status, 204);
      const sixteen = { ...fourteen, service: 'svc', source };
      const text = labels(Object.fromEntries(Object.entries({ ...sixteen, service_name: 'svc' }).sort(([a], [b]) => (a < b ? -1 : 1))));
      assert.deepEqual(await push(target, protobuf([{ labels: labels(sixteen), timeMs: t0, line: '16 labels' }])), { status: 400, text: `entry for stream '${text}' has 16 label names; limit 15` });
      assert.deepEqual(codesFor(await push(target, protobuf([{ labels: labels(sixteen), timeMs: t0, line: '16 labels' }])), sixteen), ['loki_invalid_labels'], 'the sink reads it');
      const longValue = 'é'.repeat(1025); // 2050 bytes, 1025 characters: bytes count
      const valueAnswer = await push(target, protobuf([{ labels: labels({ host: longValue, source }), timeMs: t0, line: 'long value' }]));
      assert.deepEqual(valueAnswer, {
        status: 400,
        text: `stream '{host="${longValue}", service_name="unknown_service", source="${source}"}' has label value too long: '${longValue}'`,
      });
      assert.deepEqual(codesFor(valueAnswer, { host: longValue, source }), ['loki_invalid_labels']);
      assert.equal((await push(target, protobuf([{ labels: labels({ host: 'h'.repeat(2048), source }), timeMs: t0 + 1, line: '2048 bytes' }]))).status, 204);
      const longName = 'n'.repeat(1025);
      assert.deepEqual(await push(target, protobuf([{ labels: labels({ [longName]: 'v', source }), timeMs: t0, line: 'long name' }])), {
        status: 400,
        text: `stream '{${longName}="v", service_name="unknown_service", source="${source}"}' has label name too long: '${longName}'`,
      });
      const twice = await push(target, protobuf([{ labels: `{source="${source}", source="y"}`, timeMs: t0, line: 'twice' }]));
      assert.deepEqual(twice, {
        status: 400,
        text: `stream '{service_name="unknown_service", source="${source}", source="y"}' has duplicate label name: 'source'`,
      });
      // the label set in that answer keeps the last value: it matches no stream sent (the sink never sends one twice)
      assert.equal(codesFor(twice, { source }), null);
      // names in any order, `__` names and empty values are taken (empty ones are dropped)
      assert.equal((await push(target, protobuf([{ labels: `{source="${source}", __x="1", host=""}`, timeMs: t0 + 2, line: 'loose' }]))).status, 204);
      const stored = await target.read({ source }, { startMs: t0 - 1000, endMs: t0 + 1000 }, 3);
      assert.deepEqual(stored.map((e) => e.line), ['15 labels', '2048 bytes', 'loose']);
      assert.equal(Object.keys(stored[0]?.labels ?? {}).length, 16);
      assert.deepEqual(stored[2]?.labels, { __x: '1', service_name: 'unknown_service', source });
    });

    test('a label set that does not parse refuses the whole push, valid streams included', T, async () => {
      const source = uniqueName('conf-parse');
      const t0 = Date.now() - HOUR;
      const answer = await push(target, protobuf([
        { labels: labels({ source }), timeMs: t0, line: 'valid stream' },
        { labels: `{bad-name="x", source="${source}"}`, timeMs: t0, line: 'bad' },
      ]));
      assert.deepEqual(answer, { status: 400, text: "couldn't parse labels: 1:5: parse error: unexpected character inside braces: '-'" });
      // names no entry: the sink narrows such a push down by halves, then refuses the single entry
      assert.equal(codesFor(answer, { source }), null);
      const viaJson = await push(target, json([{ stream: { source, 'bad-name': 'x' }, values: [[nsOf(t0), 'bad']] }]));
      assert.deepEqual(viaJson, answer);
      assert.deepEqual(await target.read({ source }, { startMs: t0 - 1000, endMs: t0 + 1000 }), []);
      // an empty label set becomes {service_name="unknown_service"}: stored
      assert.equal((await push(target, protobuf([{ labels: '{}', timeMs: t0, line: `no labels ${source}` }]))).status, 204);
    });

    test('lines over 256 KiB (bytes) and structured metadata over 128 pairs or 64 KiB are refused alone', T, async () => {
      const source = uniqueName('conf-size');
      const t0 = Date.now() - HOUR;
      const stream = `{service_name="unknown_service", source="${source}"}`;
      const line = 'é'.repeat(150_000);
      const long = await push(target, protobuf([{ labels: labels({ source }), timeMs: t0, line }, { labels: labels({ source }), timeMs: t0 + 1, line: 'short' }]));
      assert.deepEqual(long, {
        status: 400,
        text: `Max entry size '262144' bytes exceeded for stream '${stream}' while adding an entry with length '300000' bytes`,
      });
      assert.deepEqual(codesFor(long, { source }, 300_000), ['loki_line_too_long']);
      const many = Array.from({ length: 129 }, (_, i) => [`k${i}`, 'v'] as const);
      assert.deepEqual(await push(target, protobuf([{ labels: labels({ source }), timeMs: t0 + 2, line: 'many', metadata: many }])), {
        status: 400,
        text: `stream '${stream}' has too many structured metadata labels: '129', limit: '128'. Please see \`limits_config.max_structured_metadata_entries_count\` or contact your Loki administrator to increase it.`,
      });
      const big = await push(target, protobuf([{ labels: labels({ source }), timeMs: t0 + 3, line: 'big', metadata: [['big', 'x'.repeat(70_000)]] }]));
      assert.deepEqual(big, {
        status: 400,
        text: `stream '${stream}' has structured metadata too large: '70003' bytes, limit: '65536' bytes. Please see \`limits_config.max_structured_metadata_size\` or contact your Loki administrator to increase it.`,
      });
      assert.deepEqual(codesFor(big, { source }, 3, true), ['loki_structured_metadata']);
      // names of structured metadata are not checked
      assert.equal((await push(target, protobuf([{ labels: labels({ source }), timeMs: t0 + 4, line: 'odd name', metadata: [['bad-name', 'x']] }]))).status, 204);
      assert.deepEqual((await target.read({ source }, { startMs: t0 - 1000, endMs: t0 + 1000 }, 2)).map((e) => e.line), ['short', 'odd name']);
    });

    test('an entry over an hour behind its stream: the ingester names it, for the last stream of the push only', T, async () => {
      const s = uniqueName('conf-order');
      const now = Date.now();
      const fresh = now - HOUR / 4;
      for (const source of [s, `${s}-b`, `${s}-x`, `${s}-y`]) assert.equal((await push(target, protobuf([{ labels: labels({ source }), timeMs: fresh, line: 'fresh' }]))).status, 204);
      const stream = (source: string): string => `{service_name="unknown_service", source="${source}"}`;
      const behind = now - 3 * HOUR;
      const reason = `'entry too far behind, entry timestamp is: ${rfc(behind)}, oldest acceptable timestamp is: ${rfc(fresh - HOUR)}',`;
      // within the window (out of order, but less than an hour behind): taken
      assert.equal((await push(target, protobuf([{ labels: labels({ source: s }), timeMs: now - HOUR, line: 'late but in' }]))).status, 204);
      // one stream: named exactly
      assert.deepEqual(await push(target, protobuf([{ labels: labels({ source: s }), timeMs: behind, line: 'behind 1' }, { labels: labels({ source: s }), timeMs: now - 1000, line: 'ok' }])), {
        status: 400,
        text: `entry with timestamp ${goTime(behind)} ignored, reason: ${reason}\nuser 'fake', total ignored: 1 out of 2 for stream: ${stream(s)}`,
      });
      // two failing streams: only the last one is named
      const two = await push(target, protobuf([{ labels: labels({ source: s }), timeMs: behind + 1, line: 'behind 2' }, { labels: labels({ source: `${s}-b` }), timeMs: behind, line: 'behind b' }]));
      assert.equal(two.status, 400);
      assert.match(two.text, new RegExp(`total ignored: 1 out of 1 for stream: ${escape(stream(`${s}-b`))}$`));
      // a failing stream followed by one that went in: 204, and the entry is gone all the same
      assert.deepEqual(await push(target, protobuf([{ labels: labels({ source: s }), timeMs: behind + 2, line: 'behind 3' }, { labels: labels({ source: `${s}-y` }), timeMs: now, line: 'fine y' }])), { status: 204, text: '' });
      // with a distributor problem too (and a stream that went in last): only that problem is named
      const mixed = await push(target, protobuf([
        { labels: labels({ source: s }), timeMs: behind + 3, line: 'behind 4' },
        { labels: labels({ source: `${s}-x` }), timeMs: now + DAY, line: 'too new x' },
        { labels: labels({ source: `${s}-y` }), timeMs: now + 1, line: 'fine y 2' },
      ]));
      assert.deepEqual(mixed, { status: 400, text: `entry for stream '${stream(`${s}-x`)}' has timestamp too new: ${rfc(now + DAY)}` });
      // … and when the failing stream is the last one, its refusal hides the distributor's
      const hidden = await push(target, protobuf([{ labels: labels({ source: `${s}-x` }), timeMs: now + DAY, line: 'too new x 2' }, { labels: labels({ source: s }), timeMs: behind + 4, line: 'behind 5' }]));
      assert.equal(hidden.status, 400);
      assert.match(hidden.text, new RegExp(`^entry with timestamp ${escape(goTime(behind + 4))} ignored, .*\\nuser 'fake', total ignored: 1 out of 1 for stream: ${escape(stream(s))}$`));
      const range = { startMs: now - 4 * HOUR, endMs: now + 2 * DAY };
      assert.deepEqual((await target.read({ source: s }, range, 3)).map((e) => e.line), ['late but in', 'fresh', 'ok']);
      assert.deepEqual((await target.read({ source: `${s}-y` }, range, 3)).map((e) => e.line), ['fresh', 'fine y', 'fine y 2']);
      assert.deepEqual((await target.read({ source: `${s}-x` }, range, 1)).map((e) => e.line), ['fresh']);
    });

    test('a push over the ingestion burst (6 MB of lines) is refused whole with a 429, no Retry-After', T, async () => {
      const source = uniqueName('conf-rate');
      const t0 = Date.now() - HOUR;
      const lines = Array.from({ length: 28 }, (_, i) => ({ labels: labels({ source }), timeMs: t0 + i, line: String(i).padEnd(250_000, 'r') }));
      const encoded = protobuf(lines);
      const res = await fetch(`${target.url()}/loki/api/v1/push`, { method: 'POST', body: encoded.body, headers: { 'Content-Type': encoded.contentType } });
      assert.equal(res.status, 429);
      assert.equal(res.headers.get('retry-after'), null);
      assert.equal(
        (await res.text()).trim(),
        "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while attempting to ingest '28' lines totaling '7000000' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased",
      );
      // nothing stored, and the refused push used none of the budget: the next one goes in
      assert.equal((await push(target, protobuf([{ labels: labels({ source }), timeMs: t0 + 100, line: 'after' }]))).status, 204);
      assert.deepEqual((await target.read({ source }, { startMs: t0 - 1000, endMs: t0 + 1000 }, 1)).map((e) => e.line), ['after']);
    });

    test('what the push endpoint answers to requests it cannot read', T, async () => {
      const source = uniqueName('conf-bad');
      const t0 = Date.now() - HOUR;
      const valid = protobuf([{ labels: labels({ source }), timeMs: t0, line: 'x' }]);
      assert.deepEqual(await post(target, valid.body, {}), { status: 400, text: 'mime: no media type' });
      assert.deepEqual(await post(target, 'x', { 'Content-Type': 'text/plain' }), { status: 400, text: 'snappy: corrupt input' });
      assert.deepEqual(await post(target, valid.body, { 'Content-Type': 'text/plain' }), { status: 204, text: '' }, 'any type but JSON is read as protobuf');
      assert.deepEqual(await post(target, valid.body, { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'br' }), { status: 400, text: 'Content-Encoding "br" not supported' });
      assert.deepEqual(await post(target, '{"streams":[]}', { 'Content-Type': 'application/json' }), { status: 422, text: 'error at least one valid stream is required for ingestion' });
      assert.deepEqual(await push(target, protobuf([])), { status: 422, text: 'error at least one valid stream is required for ingestion' });
      assert.deepEqual(await post(target, '', { 'Content-Type': 'application/json' }), { status: 400, text: 'EOF' });
      assert.equal((await post(target, '{"streams": [', { 'Content-Type': 'application/json' })).status, 400);
      assert.equal((await post(target, JSON.stringify({ streams: [{ stream: { source }, values: [[Number(nsOf(t0)), 'number']] }] }), { 'Content-Type': 'application/json' })).status, 400, 'a timestamp must be a string');
      const get = await fetch(`${target.url()}/loki/api/v1/push`);
      // 404 on a fresh Loki, 405 with an empty body on one that has run a while: refused either way
      const refusal = { status: get.status, text: await get.text() };
      assert.ok(
        (refusal.status === 404 && refusal.text === '404 page not found\n') || (refusal.status === 405 && refusal.text === ''),
        `a GET on the push path is refused: ${JSON.stringify(refusal)}`,
      );
      const ready = await fetch(`${target.url()}/ready`);
      assert.deepEqual({ status: ready.status, text: (await ready.text()).trim() }, { status: 200, text: 'ready' });
    });
  });
}
