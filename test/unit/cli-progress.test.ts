import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { formatCount, formatDuration, formatRate, ProgressLine, renderProgress, renderSummary } from '../../src/cli/progress.js';

/** Where the sends under test go (their fetch is a stub). */
const TO_TEST_SERVER = { url: 'http://m.test', token: null, source: 's' } as const;
import { SendFailed, sendFiles, type SendProgress, type SendSummary } from '../../src/cli/send.js';

const progress = (over: Partial<SendProgress> = {}): SendProgress => ({
  file: '/data/backlog/weather.csv',
  messagesSent: 1200,
  messagesTotal: 5000,
  batches: 3,
  retries: 1,
  startedAt: 10_000,
  retrying: null,
  ...over,
});

describe('send progress rendering (pure: time is a parameter)', () => {
  test('the line: messages of total, batches, retries, rate, elapsed, file', () => {
    assert.equal(renderProgress(progress(), 13_000), '1,200/5,000 messages (24%)  3 batches  1 retry  400 msg/s  3.0 s  weather.csv');
    assert.equal(renderProgress(progress({ messagesSent: 5000, batches: 1, retries: 2 }), 10_000 + 125_000), '5,000/5,000 messages (100%)  1 batch  2 retries  40.0 msg/s  2:05  weather.csv');
  });

  test('before any time has passed, and with nothing to send', () => {
    assert.equal(renderProgress(progress({ messagesSent: 0, batches: 0, retries: 0 }), 10_000), '0/5,000 messages (0%)  0 batches  0 retries  - msg/s  0.0 s  weather.csv');
    assert.equal(renderProgress(progress({ messagesSent: 0, messagesTotal: 0, batches: 0 }), 10_500), '0/0 messages  0 batches  1 retry  0.0 msg/s  0.5 s  weather.csv');
    assert.equal(renderProgress(progress({ messagesTotal: null }), 13_000), '1,200 messages  3 batches  1 retry  400 msg/s  3.0 s  weather.csv');
  });

  test('while waiting to retry, the reason replaces the file name', () => {
    assert.match(renderProgress(progress({ retrying: '503 spool_full' }), 11_000), /  retrying: 503 spool_full$/);
  });

  test('cut to the terminal width, so that it never wraps', () => {
    const line = renderProgress(progress({ retrying: 'connect ECONNREFUSED 127.0.0.1:8080' }), 13_000, 40);
    assert.equal(line.length, 40);
    assert.ok(line.endsWith('...'));
    assert.equal(renderProgress(progress(), 13_000, 200), renderProgress(progress(), 13_000));
  });

  test('the same input gives the same line (no wall clock)', () => {
    assert.equal(renderProgress(progress(), 20_000), renderProgress(progress(), 20_000));
  });

  test('numbers, durations and rates', () => {
    assert.equal(formatCount(0), '0');
    assert.equal(formatCount(999), '999');
    assert.equal(formatCount(1234567), '1,234,567');
    assert.equal(formatDuration(0), '0.0 s');
    assert.equal(formatDuration(9_999), '9.9 s');
    assert.equal(formatDuration(42_400), '42 s');
    assert.equal(formatDuration(60_000), '1:00');
    assert.equal(formatDuration(3_725_000), '1:02:05');
    assert.equal(formatRate(10, 0), '- msg/s');
    assert.equal(formatRate(35, 10_000), '3.5 msg/s');
    assert.equal(formatRate(125_000, 100_000), '1,250 msg/s');
  });

  test('the one-line summary', () => {
    const s: SendSummary = { files: 3, messages: 33, batches: 5, accepted: 33, rejected: 0, duplicates: 0, retries: 0 };
    assert.equal(renderSummary(s, 33, 1200), 'sent 33 messages in 5 batches from 3 files in 1.2 s (27.5 msg/s): 33 accepted (0 duplicates), 0 rejected, 0 retries');
    assert.equal(
      renderSummary({ ...s, files: 1, messages: 10, batches: 1, accepted: 9, rejected: 1, duplicates: 1, retries: 1 }, 33, 2000),
      'sent 10 of 33 messages in 1 batch from 1 file in 2.0 s (5.0 msg/s): 9 accepted (1 duplicate), 1 rejected, 1 retry',
    );
    assert.ok(!renderSummary(s, 33, 1200).includes('\n'));
  });
});

describe('ProgressLine (drawing on a terminal)', () => {
  test('redraws in place, at most every interval, at once for a retry; log lines go above; done clears', () => {
    let out = '';
    let now = 0;
    const line = new ProgressLine((t) => (out += t), () => now, () => 120, 100, 0);
    line.update(progress({ startedAt: 0 }));
    assert.equal(out, `\r\x1b[2K${renderProgress(progress({ startedAt: 0 }), 0, 119)}`);
    out = '';
    now = 50;
    line.update(progress({ startedAt: 0, messagesSent: 1300 }));
    assert.equal(out, '', 'not redrawn within the interval');
    line.update(progress({ startedAt: 0, retrying: '503' }));
    assert.match(out, /^\r\x1b\[2K.*retrying: 503$/);
    out = '';
    now = 200;
    line.log('rejected: x');
    assert.ok(out.startsWith('\r\x1b[2Krejected: x\n\r\x1b[2K'), JSON.stringify(out));
    out = '';
    line.done();
    assert.equal(out, '\r\x1b[2K');
    out = '';
    line.update(progress());
    line.done();
  });
});

describe('sendFiles counts retries and gives up on its budget (fake fetch, sleep and clock)', () => {
  let dir = '';
  let file = '';
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cli-progress-'));
    file = path.join(dir, 'five.jsonl');
    await writeFile(file, '{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n{"n":5}\n');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const ok = (written: number): Response => new Response(JSON.stringify({ written, errors: 0 }), { status: 200 });

  test('503s and network errors are retried and counted; progress reports each retry', async () => {
    let now = 0;
    const sleeps: number[] = [];
    const answers: Array<() => Response> = [
      () => new Response('{"error":"spool_full"}', { status: 503, headers: { 'retry-after': '2' } }),
      () => {
        throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:1') });
      },
      () => ok(2),
      () => ok(2),
      () => ok(1),
    ];
    const seen: SendProgress[] = [];
    const summary = await sendFiles([file], {
      ...TO_TEST_SERVER,
      batchSize: 2,
      maxRetryMs: 60_000,
      total: 5,
      fetch: async () => (answers.shift() ?? (() => ok(0)))(),
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
      now: () => now,
      random: () => 0,
      onProgress: (p) => seen.push(p),
    });
    assert.deepEqual(summary, { files: 1, messages: 5, batches: 3, accepted: 5, rejected: 0, duplicates: 0, retries: 2 });
    assert.deepEqual(sleeps, [2000, 0], 'Retry-After is honoured');
    assert.deepEqual(
      seen.map((p) => [p.messagesSent, p.batches, p.retries, p.retrying]),
      [
        [0, 0, 0, null],
        [0, 0, 1, '503 spool_full'],
        [0, 0, 2, 'connect ECONNREFUSED 127.0.0.1:1'],
        [2, 1, 2, null],
        [4, 2, 2, null],
        [5, 3, 2, null],
      ],
    );
    assert.ok(seen.every((p) => p.messagesTotal === 5 && p.startedAt === 0));
  });

  test('past maxRetryMs the batch fails with the summary so far; the last wait is cut to the budget', async () => {
    let now = 0;
    const sleeps: number[] = [];
    let calls = 0;
    await assert.rejects(
      sendFiles([file], {
        ...TO_TEST_SERVER,
        batchSize: 2,
        maxRetryMs: 5_000,
        fetch: async () => (++calls === 1 ? ok(2) : new Response('{}', { status: 503, headers: { 'retry-after': '3' } })),
        sleep: async (ms) => {
          sleeps.push(ms);
          now += ms;
        },
        now: () => now,
        random: () => 0,
      }),
      (err: unknown) => {
        assert.ok(err instanceof SendFailed);
        assert.match(err.message, /five\.jsonl, messages 3-4: could not deliver to http:\/\/m\.test \(gave up after 2 retries in 5\.0 s\): 503/);
        assert.deepEqual(err.summary, { files: 1, messages: 2, batches: 1, accepted: 2, rejected: 0, duplicates: 0, retries: 2 });
        return true;
      },
    );
    assert.deepEqual(sleeps, [3000, 2000]);
  });

  test('maxRetryMs 0: no retry at all', async () => {
    let calls = 0;
    await assert.rejects(
      sendFiles([file], {
        ...TO_TEST_SERVER,
        batchSize: 10,
        maxRetryMs: 0,
        fetch: async () => {
          calls++;
          return new Response('', { status: 429 });
        },
        sleep: async () => assert.fail('no sleep'),
        now: () => 0,
      }),
      /no retries allowed\): 429/,
    );
    assert.equal(calls, 1);
  });
});
