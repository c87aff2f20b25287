import { MothershipError } from '../../src/lib/errors.js';
import type { IngestEvent } from '../../src/pipeline/event.js';
import { copyText } from '../../src/pipeline/copy-text.js';
import type { SendBatch, SendOutcome, Sink, SinkHealth, SinkName } from '../../src/sinks/sink.js';

/**
 * A sink that stores events in memory, keyed like the real table on (id, time), with switches
 * to make it fail: down (retryable), or refusing events whose message matches `poison`.
 */
export class MemorySink implements Sink {
  readonly stored = new Map<string, IngestEvent>();
  sends = 0;
  down = false;
  poison: RegExp | null = null;
  /** Each send waits this long first (a slow database). */
  delayMs = 0;
  /** Sends that came with the records' COPY rows (each checked to encode exactly the events sent). */
  sendsWithRows = 0;

  constructor(readonly name: SinkName = 'tsdb') {}

  async start(): Promise<void> {}

  async send(batch: SendBatch): Promise<SendOutcome> {
    this.sends++;
    const events = batch.events();
    const rows = batch.rows;
    if (events.length !== batch.size) throw new Error(`memory sink: the batch says ${batch.size} events but holds ${events.length}`);
    if (rows !== undefined) {
      // The contract a COPY-writing sink relies on: the rows are these events, in this order.
      if (Buffer.concat(rows).toString('utf8') !== copyText(events)) throw new Error('memory sink: the rows given are not the events sent');
      this.sendsWithRows++;
    }
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.down) return { kind: 'retryable', error: new MothershipError('sink_unavailable', 'memory sink is down') };
    const poison = this.poison;
    if (poison !== null && events.some((e) => e.message !== null && poison.test(e.message))) {
      return { kind: 'rejected', error: new MothershipError('sink_rejected', 'memory sink refuses poison') };
    }
    let written = 0;
    const duplicatePositions: number[] = [];
    for (let i = 0; i < events.length; i++) {
      const e = events[i] as IngestEvent;
      const key = `${e.id}@${e.timeMs}.${e.timeNanos}`;
      if (this.stored.has(key)) {
        duplicatePositions.push(i);
      } else {
        this.stored.set(key, e);
        written++;
      }
    }
    return { kind: 'delivered', written, duplicates: events.length - written, duplicatePositions };
  }

  async healthcheck(): Promise<SinkHealth> {
    return this.down ? { healthy: false, reason: 'down' } : { healthy: true };
  }

  async shutdown(): Promise<void> {}
}
