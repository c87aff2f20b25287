import { MothershipError } from '../lib/errors.js';

/**
 * Caps the request bytes held in memory at once (bodies as received, then inflated), so a
 * burst of large batches is answered 503 + Retry-After instead of growing the heap.
 */
export class InflightBudget {
  private used = 0;

  constructor(private readonly limit: number) {}

  get bytes(): number {
    return this.used;
  }

  /** Reserves `bytes` or throws `overloaded`. A request larger than the whole budget is still let through alone. */
  reserve(bytes: number): void {
    if (this.used > 0 && this.used + bytes > this.limit) {
      throw new MothershipError('overloaded', `Too much data in flight (${this.used} bytes, MAX_INFLIGHT_BYTES=${this.limit}); retry shortly`, {
        retryAfterSeconds: 1,
      });
    }
    this.used += bytes;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}
