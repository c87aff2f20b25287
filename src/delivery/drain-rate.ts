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
