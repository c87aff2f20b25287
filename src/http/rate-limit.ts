import type { RateLimitConfig } from '../config/config.js';
import type { Clock } from '../lib/clock.js';
import { MothershipError } from '../lib/errors.js';

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/** Buckets kept at most; past it, full (idle) buckets are dropped first, then the oldest. */
const DEFAULT_MAX_KEYS = 100_000;

/**
 * A token bucket of messages per key (a node id, or a client IP): `messagesPerSecond` refill,
 * `burst` capacity. A batch takes as many tokens as it has messages. A batch larger than the
 * whole bucket is let through when the bucket is full, leaving it in debt, so a big batch is
 * slowed down, never refused for ever. Refusals carry the wait until the batch would fit.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly rate: number;
  private readonly capacity: number;

  constructor(
    config: RateLimitConfig,
    private readonly clock: Clock,
    private readonly maxKeys: number = DEFAULT_MAX_KEYS,
  ) {
    this.rate = config.messagesPerSecond;
    this.capacity = Math.max(1, config.burst);
  }

  /** Cheap check before the body is read: throws `rate_limited` when the key cannot send even one message now. */
  precheck(key: string): void {
    const bucket = this.buckets.get(key);
    if (bucket === undefined) return;
    this.refill(bucket);
    if (bucket.tokens < 1) throw this.refusal(1 - bucket.tokens);
  }

  /** Takes `messages` tokens for `key`, or throws `rate_limited` with Retry-After (nothing taken). */
  take(key: string, messages: number): void {
    if (messages <= 0) return;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.capacity, updatedMs: this.clock.now() };
      this.insert(key, bucket);
    } else {
      this.refill(bucket);
    }
    if (bucket.tokens >= messages || bucket.tokens >= this.capacity) {
      bucket.tokens -= messages;
      return;
    }
    throw this.refusal(Math.min(messages, this.capacity) - bucket.tokens);
  }

  /** Keys tracked now (bounded by `maxKeys`). */
  get size(): number {
    return this.buckets.size;
  }

  private refill(bucket: Bucket): void {
    const now = this.clock.now();
    const elapsed = now - bucket.updatedMs;
    if (elapsed > 0) {
      bucket.tokens = Math.min(this.capacity, bucket.tokens + (elapsed / 1000) * this.rate);
      bucket.updatedMs = now;
    }
  }

  private refusal(missing: number): MothershipError {
    const seconds = Math.max(1, Math.ceil(missing / this.rate));
    return new MothershipError(
      'rate_limited',
      `This node is over its rate limit of ${this.rate} messages/s (burst ${this.capacity}); retry in ${seconds} s`,
      { retryAfterSeconds: seconds },
    );
  }

  private insert(key: string, bucket: Bucket): void {
    if (this.buckets.size >= this.maxKeys) this.evict();
    this.buckets.set(key, bucket);
  }

  /** A full bucket is the same as no bucket: drop those; if none is full, drop the oldest tenth. */
  private evict(): void {
    for (const [key, bucket] of this.buckets) {
      this.refill(bucket);
      if (bucket.tokens >= this.capacity) this.buckets.delete(key);
    }
    if (this.buckets.size < this.maxKeys) return;
    let drop = Math.max(1, Math.floor(this.maxKeys / 10));
    for (const key of this.buckets.keys()) {
      if (drop-- <= 0) break;
      this.buckets.delete(key);
    }
  }
}
