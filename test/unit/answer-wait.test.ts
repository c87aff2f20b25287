import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ANSWER_WAIT_FACTOR, ANSWER_WAIT_FLOOR_MS, AnswerWait } from '../../src/delivery/answer-wait.js';
import { BacklogTrend, DrainRate } from '../../src/delivery/drain-rate.js';
import { catchUpSeconds } from '../../src/delivery/health-report.js';

const CEILING = 10_000;

describe('how long an answer waits for a sink', () => {
  test('before any write: the configured ceiling (nothing is known yet)', () => {
    assert.equal(new AnswerWait().waitMs(10, CEILING), CEILING);
  });

  test('a fast sink: a few typical writes of the batch\'s size, not less than the floor', () => {
    const w = new AnswerWait();
    for (let i = 0; i < 10; i++) w.recordWrite(2, 50, true);
    assert.equal(w.waitMs(50, CEILING), ANSWER_WAIT_FLOOR_MS);
    for (let i = 0; i < 200; i++) w.recordWrite(40, 50, true);
    const bound = w.waitMs(50, CEILING);
    assert.ok(bound > ANSWER_WAIT_FLOOR_MS && bound <= ANSWER_WAIT_FACTOR * 40 + 20, `${bound}`);
    assert.ok(w.waitMs(5_000, CEILING) > bound, 'a bigger batch may wait longer');
    assert.equal(w.waitMs(10_000_000, CEILING), CEILING, 'never past the ceiling');
  });

  test('a sink turning slow: a write over its bound starts a slow spell (no waiting) and does not teach the typical time', () => {
    const w = new AnswerWait();
    for (let i = 0; i < 50; i++) w.recordWrite(5, 50, true);
    w.recordWrite(2_000, 50, true);
    assert.equal(w.waitMs(50, CEILING), 0, 'no wait during a slow spell');
    for (let i = 0; i < 200; i++) w.recordWrite(2_000, 50, true);
    assert.equal(w.waitMs(50, CEILING), 0);
    assert.equal(w.typicalMsPerEvent, 0.1, 'still the normal time');
    // Fast again: waiting resumes at once, bounded by the normal time.
    w.recordWrite(5, 50, true);
    assert.equal(w.waitMs(50, CEILING), ANSWER_WAIT_FLOOR_MS);
  });

  test('the typical time is the median of recent normal writes: one quick write does not shrink the wait', () => {
    const w = new AnswerWait();
    for (let i = 0; i < 20; i++) w.recordWrite(100, 100, true);
    w.recordWrite(1, 100, true);
    assert.equal(w.typicalMsPerEvent, 1);
    assert.equal(w.waitMs(100, CEILING), ANSWER_WAIT_FACTOR * 100 + 20);
  });

  test('failed sends do not teach the typical write time, nor end or start a slow spell', () => {
    const w = new AnswerWait();
    w.recordWrite(4, 2, true);
    w.recordWrite(9_000, 2, false);
    assert.equal(w.typicalMsPerEvent, 2);
    assert.ok(w.waitMs(2, CEILING) > 0);
  });
});

describe('drain rate and catch-up estimate', () => {
  test('events per second over the last ten whole seconds', () => {
    const clock = { ms: 1_000_000 };
    const rate = new DrainRate(() => clock.ms);
    assert.equal(rate.perSecond(), 0);
    for (let s = 0; s < 10; s++) {
      rate.add(500);
      clock.ms += 1_000;
    }
    assert.equal(rate.perSecond(), 500);
    clock.ms += 20_000;
    assert.equal(rate.perSecond(), 0, 'idle: old buckets age out');
  });

  test('the backlog trend is net of new arrivals: draining 5,000/s while 3,000/s arrive shrinks it by 2,000/s', () => {
    const clock = { ms: 0 };
    const trend = new BacklogTrend(() => clock.ms);
    assert.equal(trend.shrinkPerSecond(), 0, 'no samples');
    let backlog = 100_000;
    for (let s = 0; s <= 12; s++) {
      trend.sample(backlog);
      trend.sample(backlog - 1); // within the same second: ignored
      backlog -= 2_000;
      clock.ms += 1_000;
    }
    assert.equal(trend.shrinkPerSecond(), 2_000);
    assert.equal(catchUpSeconds(backlog, trend.shrinkPerSecond()), Math.ceil(backlog / 2_000));
    clock.ms += 60_000;
    assert.equal(trend.shrinkPerSecond(), 0, 'stale samples tell nothing');
  });

  test('catch-up time is the backlog over the rate it shrinks; unknown while it does not shrink', () => {
    assert.equal(catchUpSeconds(0, 0), 0);
    assert.equal(catchUpSeconds(10_000, 2_500), 4);
    assert.equal(catchUpSeconds(10_000, 0), null);
    assert.equal(catchUpSeconds(10_000, -500), null, 'growing');
  });
});
