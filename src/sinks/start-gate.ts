import { MothershipError } from '../lib/errors.js';
import type { Logger } from '../telemetry/logger.js';
import type { SendBatch, SendOutcome, Sink, SinkHealth } from './sink.js';

export interface StartGateOptions {
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  /** Injectable for tests. */
  readonly setTimer?: (fn: () => void, ms: number) => { unref?: () => void };
  readonly random?: () => number;
}

/**
 * Lets the server come up while a sink's backend is down: the sink's `start` (connect,
 * migrate) is retried in the background with capped, jittered backoff, and until it succeeds
 * every send is answered retryable, never attempted against an unmigrated database.
 */
export class StartGate implements Sink {
  readonly name: Sink['name'];
  private started = false;
  private stopped = false;
  private lastError: string | null = null;
  private attempt = 0;
  private current: Promise<void> | null = null;

  constructor(
    private readonly inner: Sink,
    private readonly logger: Logger,
    private readonly options: StartGateOptions = { minDelayMs: 500, maxDelayMs: 30_000 },
  ) {
    this.name = inner.name;
  }

  /** Tries once; on failure keeps retrying in the background and resolves anyway. */
  async start(signal: AbortSignal): Promise<void> {
    await this.tryStart(signal);
  }

  /** Resolves once the inner sink has started (for callers that must wait, e.g. tests). */
  get isStarted(): boolean {
    return this.started;
  }

  private async tryStart(signal: AbortSignal): Promise<void> {
    if (this.started || this.stopped) return;
    this.current ??= this.inner.start(signal).then(
      () => {
        this.started = true;
        this.lastError = null;
        if (this.attempt > 0) this.logger.info({ sink: this.name, attempts: this.attempt + 1 }, 'sink started');
      },
      (err: unknown) => {
        this.lastError = err instanceof Error ? err.message : String(err);
        const delay = this.backoff();
        this.logger.warn({ sink: this.name, err: { message: this.lastError }, retryInMs: delay }, 'sink could not start; retrying');
        const timer = (this.options.setTimer ?? setTimeout)(() => {
          void this.tryStart(AbortSignal.timeout(60_000));
        }, delay);
        timer.unref?.();
      },
    );
    const running = this.current;
    await running;
    if (this.current === running) this.current = null;
  }

  private backoff(): number {
    const cap = Math.min(this.options.maxDelayMs, this.options.minDelayMs * 2 ** this.attempt);
    this.attempt++;
    return Math.max(this.options.minDelayMs, Math.round(cap * (this.options.random ?? Math.random)()));
  }

  async send(batch: SendBatch, signal: AbortSignal): Promise<SendOutcome> {
    if (!this.started) {
      return { kind: 'retryable', error: new MothershipError('sink_unavailable', `${this.name} is not ready: ${this.lastError ?? 'starting'}`) };
    }
    return this.inner.send(batch, signal);
  }

  async healthcheck(signal: AbortSignal): Promise<SinkHealth> {
    if (!this.started) return { healthy: false, reason: `not started: ${this.lastError ?? 'starting'}` };
    return this.inner.healthcheck(signal);
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    await this.inner.shutdown();
  }
}
