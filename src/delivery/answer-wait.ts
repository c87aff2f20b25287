/**
 * How long an ingest answer may wait for a sink to store its batch, so that it can say
 * `written` instead of `queued`. The batch is already durable in the spool: waiting only buys a
 * more precise answer, so it is worth it only while the sink is fast. An answer never waits
 * much longer than the sink's normal write time, whatever the configured ceiling
 * (TSDB_WRITE_TIMEOUT_MS): a database that turns slow or goes away turns answers into `queued`
 * at once instead of holding every node's request open.
 */

/** Room for scheduling noise on top of the typical write: a small batch on a fast database takes ~1 ms. */
export const ANSWER_WAIT_FLOOR_MS = 50;
/** The wait is this many typical writes of the batch's size (plus a little slack): a write twice as slow as usual still answers `written`. */
export const ANSWER_WAIT_FACTOR = 4;
const SLACK_MS = 20;
/**
 * The typical time per event follows a faster write at once and a slower one slowly, so that a
 * database turning slow does not teach the wait to be long: about 100 slow writes move it two
 * thirds of the way.
 */
const FALL_WEIGHT = 0.3;
const RISE_WEIGHT = 0.01;

export class AnswerWait {
  private msPerEvent: number | null = null;
  private slow = false;

  /** A send of `events` finished after `ms`; `stored` whether the sink stored them. */
  recordWrite(ms: number, events: number, stored: boolean): void {
    if (!stored || events <= 0) return;
    const perEvent = ms / events;
    if (this.msPerEvent === null) this.msPerEvent = perEvent;
    else this.msPerEvent += (perEvent < this.msPerEvent ? FALL_WEIGHT : RISE_WEIGHT) * (perEvent - this.msPerEvent);
    // A write within its bound ends a slow spell; a longer one starts one.
    this.slow = ms > this.boundMs(events, Number.POSITIVE_INFINITY);
  }

  /** An answer's wait ran out: answers stop waiting until a write is fast again. */
  recordTimeout(): void {
    this.slow = true;
  }

  /**
   * How long the answer for a batch of `events` may wait, at most `ceilingMs`: 0 during a slow
   * spell; the ceiling before the first write (nothing is known yet, and a sink that is down
   * is known at once by its failing sends, not by this).
   */
  waitMs(events: number, ceilingMs: number): number {
    if (this.slow) return 0;
    return this.boundMs(events, ceilingMs);
  }

  /** The typical write time per event so far (ms), null before the first stored write. */
  get typicalMsPerEvent(): number | null {
    return this.msPerEvent;
  }

  private boundMs(events: number, ceilingMs: number): number {
    if (this.msPerEvent === null) return ceilingMs;
    return Math.min(ceilingMs, Math.max(ANSWER_WAIT_FLOOR_MS, ANSWER_WAIT_FACTOR * this.msPerEvent * events + SLACK_MS));
  }
}
