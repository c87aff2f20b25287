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
/** The wait is this many typical writes of the batch's size (plus a little slack): a write a few times slower than usual still answers `written`. */
export const ANSWER_WAIT_FACTOR = 4;
const SLACK_MS = 20;
/** How many recent normal writes the typical time is the median of. */
const RECENT_WRITES = 128;

export class AnswerWait {
  /** Per-event times (ms) of recent writes that finished within their bound, oldest overwritten first. */
  private readonly recent: number[] = [];
  private cursor = 0;
  private typical: number | null = null;
  private slow = false;

  /**
   * A send of `events` finished after `ms`; `stored` whether the sink stored them. A write over
   * its bound starts a slow spell and does not count towards the typical time, so a database
   * that turns slow never teaches answers to wait longer; the next write within its bound ends
   * the spell.
   */
  recordWrite(ms: number, events: number, stored: boolean): void {
    if (!stored || events <= 0) return;
    this.slow = this.typical !== null && ms > this.boundMs(events, Number.POSITIVE_INFINITY);
    if (this.slow) return;
    const perEvent = ms / events;
    if (this.recent.length < RECENT_WRITES) this.recent.push(perEvent);
    else this.recent[this.cursor] = perEvent;
    this.cursor = (this.cursor + 1) % RECENT_WRITES;
    this.typical = median(this.recent);
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

  /** The median write time per event of recent normal writes (ms), null before the first stored write. */
  get typicalMsPerEvent(): number | null {
    return this.typical;
  }

  private boundMs(events: number, ceilingMs: number): number {
    if (this.typical === null) return ceilingMs;
    return Math.min(ceilingMs, Math.max(ANSWER_WAIT_FLOOR_MS, ANSWER_WAIT_FACTOR * this.typical * events + SLACK_MS));
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}
