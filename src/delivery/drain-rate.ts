/**
 * Events a sink delivered per second, over the last few seconds: what /health and /metrics
 * show while a backlog drains, and what the catch-up estimate divides by.
 */
const BUCKET_MS = 1_000;
const BUCKETS = 10;

export class DrainRate {
  /** Events per one-second bucket, keyed by bucket number (ms / BUCKET_MS). */
  private readonly buckets = new Map<number, number>();

  constructor(private readonly now: () => number) {}

  add(events: number): void {
    if (events <= 0) return;
    const bucket = Math.floor(this.now() / BUCKET_MS);
    this.buckets.set(bucket, (this.buckets.get(bucket) ?? 0) + events);
    for (const key of this.buckets.keys()) if (key <= bucket - BUCKETS) this.buckets.delete(key);
  }

  /** Over the last BUCKETS whole seconds (the current, partial one left out so the rate does not dip at each second). */
  perSecond(): number {
    const current = Math.floor(this.now() / BUCKET_MS);
    let events = 0;
    for (const [bucket, n] of this.buckets) if (bucket < current && bucket >= current - BUCKETS) events += n;
    return events / BUCKETS;
  }
}

/**
 * How fast a backlog shrinks, net of what keeps arriving: new batches go on arriving while a
 * backlog drains after an outage, so the catch-up estimate divides by this, not by the drain
 * rate. Sampled at most once per second (by whoever sees the backlog change); the rate is over
 * the last ten seconds of samples.
 */
export class BacklogTrend {
  private readonly samples: Array<{ readonly atMs: number; readonly events: number }> = [];

  constructor(private readonly now: () => number) {}

  sample(events: number): void {
    const atMs = this.now();
    const last = this.samples[this.samples.length - 1];
    if (last !== undefined && atMs - last.atMs < BUCKET_MS) return;
    this.samples.push({ atMs, events });
    while (this.samples.length > 0 && (this.samples[0] as { atMs: number }).atMs < atMs - BUCKETS * BUCKET_MS) this.samples.shift();
  }

  /** Events per second the backlog shrank by over the last ten seconds (negative: it grew); 0 without two samples. */
  shrinkPerSecond(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (first === undefined || last === undefined || last.atMs - first.atMs < BUCKET_MS) return 0;
    if (this.now() - last.atMs > BUCKETS * BUCKET_MS) return 0;
    return ((first.events - last.events) * 1000) / (last.atMs - first.atMs);
  }
}
