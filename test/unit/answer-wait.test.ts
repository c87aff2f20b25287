import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ANSWER_WAIT_FACTOR, ANSWER_WAIT_FLOOR_MS, AnswerWait } from '../../src/delivery/answer-wait.js';
import { DrainRate } from '../../src/delivery/drain-rate.js';
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

  test('a sink turning slow: the first slow write starts a slow spell (no waiting); the typical time rises only slowly', () => {
    const w = new AnswerWait();
    for (let i = 0; i < 50; i++) w.recordWrite(5, 50, true);
    w.recordWrite(2_000, 50, true);
    assert.equal(w.waitMs(50, CEILING), 0, 'no wait during a slow spell');
    for (let i = 0; i < 20; i++) w.recordWrite(2_000, 50, true);
    assert.equal(w.waitMs(50, CEILING), 0);
    assert.ok((w.typicalMsPerEvent ?? 0) * 50 < 2_000 / 2, `typical ${w.typicalMsPerEvent} ms/event still near the normal time`);
    // Fast again: waiting resumes at once.
    w.recordWrite(5, 50, true);
    assert.ok(w.waitMs(50, CEILING) > 0);
  });

  test('an answer that waited in vain stops the next ones from waiting, until a write is fast again', () => {
    const w = new AnswerWait();
    w.recordWrite(3, 10, true);
    w.recordTimeout();
    assert.equal(w.waitMs(10, CEILING), 0);
    w.recordWrite(3, 10, true);
    assert.equal(w.waitMs(10, CEILING), ANSWER_WAIT_FLOOR_MS);
  });

  test('failed sends do not teach the typical write time', () => {
    const w = new AnswerWait();
    w.recordWrite(4, 2, true);
    w.recordWrite(9_000, 2, false);
    assert.equal(w.typicalMsPerEvent, 2);
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

  test('catch-up time is the backlog over the drain rate; unknown while nothing drains', () => {
    assert.equal(catchUpSeconds(0, 0), 0);
    assert.equal(catchUpSeconds(10_000, 2_500), 4);
    assert.equal(catchUpSeconds(10_000, 0), null);
  });
});
