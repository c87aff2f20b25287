/**
 * Ready-to-send request bodies. The bulk is encoded before the clock starts (in worker threads,
 * one per core) so the generator's cost stays out of the figures; if a run outpaces that, one
 * worker tops the pool up during the run and the report says so (it then competes for CPU).
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { GenReply, GenRequest } from './gen-worker.js';
import type { RunSpec } from './payloads.js';

export interface Batch { readonly index: number; readonly body: Uint8Array }

export interface PoolStats {
  readonly pregenerated: number;
  readonly pregenSeconds: number;
  readonly pregenBytes: number;
  toppedUp: number;
  stalledMs: number;
}

/** One worker with its FIFO of pending requests (a worker answers in order). */
class GenWorker {
  private readonly worker: Worker;
  private readonly pending: Array<{ resolve: (bodies: Uint8Array[]) => void; reject: (err: Error) => void }> = [];
  constructor(run: RunSpec) {
    this.worker = new Worker(new URL('./gen-worker.js', import.meta.url), { workerData: run });
    this.worker.on('message', (reply: GenReply) => this.pending.shift()?.resolve(reply.bodies));
    this.worker.on('error', (err) => { for (const p of this.pending.splice(0)) p.reject(err); });
  }
  generate(from: number, count: number): Promise<Uint8Array[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      const req: GenRequest = { from, count };
      this.worker.postMessage(req);
    });
  }
  close(): Promise<number> { return this.worker.terminate(); }
}

export class BatchPool {
  readonly stats: PoolStats;
  private readonly queue: Array<Batch | undefined>;
  private head = 0;
  private nextIndex: number;
  private topUp: Promise<void> | null = null;

  private constructor(
    private readonly workers: readonly GenWorker[],
    initial: Batch[],
    stats: PoolStats,
    private readonly maxBatches: number,
    private readonly lowWater: number,
  ) {
    this.queue = initial;
    this.nextIndex = initial.length;
    this.stats = stats;
  }

  /** Encodes `initial` batches (split over the workers) and returns when they are ready. */
  static async create(run: RunSpec, initial: number, maxBatches: number, lowWater: number): Promise<BatchPool> {
    const n = Math.max(1, Math.min(2, os.availableParallelism()));
    const workers = Array.from({ length: n }, () => new GenWorker(run));
    const t0 = performance.now();
    const count = Math.min(initial, maxBatches);
    const per = Math.ceil(count / n);
    const parts = await Promise.all(workers.map(async (w, k) => {
      const from = k * per;
      const bodies = await w.generate(from, Math.max(0, Math.min(per, count - from)));
      return bodies.map((body, i) => ({ index: from + i, body }));
    }));
    const batches = parts.flat();
    const stats: PoolStats = {
      pregenerated: batches.length,
      pregenSeconds: (performance.now() - t0) / 1000,
      pregenBytes: batches.reduce((s, b) => s + b.body.byteLength, 0),
      toppedUp: 0,
      stalledMs: 0,
    };
    return new BatchPool(workers, batches, stats, maxBatches, lowWater);
  }

  /** The next unsent batch; null once the run's message cap is used up. */
  async next(): Promise<Batch | null> {
    for (;;) {
      if (this.queue.length - this.head < this.lowWater) this.startTopUp();
      const batch = this.queue[this.head];
      if (batch !== undefined) {
        this.queue[this.head++] = undefined; // let the sent body be collected
        if (this.head > 4096) { this.queue.splice(0, this.head); this.head = 0; }
        return batch;
      }
      if (this.topUp === null) return null;
      const t0 = performance.now();
      await this.topUp;
      this.stats.stalledMs += performance.now() - t0;
    }
  }

  private startTopUp(): void {
    if (this.topUp !== null || this.nextIndex >= this.maxBatches) return;
    const from = this.nextIndex;
    const count = Math.min(this.lowWater * 2, this.maxBatches - from);
    this.nextIndex += count;
    const worker = this.workers[0];
    if (worker === undefined) return;
    this.topUp = worker.generate(from, count).then((bodies) => {
      bodies.forEach((body, i) => this.queue.push({ index: from + i, body }));
      this.stats.toppedUp += bodies.length;
      this.topUp = null;
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
