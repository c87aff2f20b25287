import { OUT_OF_ORDER_WINDOW_MS, type LokiEntry } from './batch.js';

/** Streams remembered; past this the longest-known one is forgotten (its entries then count as in order). */
const MAX_STREAMS = 100_000;

/**
 * The newest entry time this process may have stored in each stream, to tell which entries
 * Loki may refuse as "entry too far behind" (older than the newest of their stream by more than
 * OUT_OF_ORDER_WINDOW_MS).
 *
 * Why it matters: Loki 3.4.6 does not always say so. Its ingester reports the refusals of the
 * last stream of a push only: an entry refused in an earlier stream is dropped while the push is
 * answered 204, or answered 400 naming other problems (seen on the real server; see
 * test/integration/loki-real.test.ts). An entry that may be refused is therefore pushed in a
 * push of its own stream, whose answer names it if Loki refuses it.
 */
export class StreamHeads {
  private readonly newest = new Map<string, number>();

  constructor(
    private readonly windowMs = OUT_OF_ORDER_WINDOW_MS,
    private readonly maxStreams = MAX_STREAMS,
  ) {}

  /** Records entries Loki may have stored (answered 2xx or 400 without naming them, or no answer). */
  note(entries: readonly LokiEntry[]): void {
    for (const e of entries) {
      // Rounded up to the next ms: never below the entry's exact time.
      const time = e.timeNanos > 0 ? e.timeMs + 1 : e.timeMs;
      const known = this.newest.get(e.labelsText);
      if (known === undefined) {
        if (this.newest.size >= this.maxStreams) {
          const oldest = this.newest.keys().next();
          if (oldest.done !== true) this.newest.delete(oldest.value);
        }
        this.newest.set(e.labelsText, time);
      } else if (time > known) {
        this.newest.set(e.labelsText, time);
      }
    }
  }

  /**
   * Entries more than the window behind what was pushed to their stream (grouped by stream),
   * and the others. Entries of one send do not push each other behind: a send goes oldest first.
   */
  split(entries: readonly LokiEntry[]): { behind: LokiEntry[][]; rest: LokiEntry[] } {
    let behind: Map<string, LokiEntry[]> | null = null;
    const rest: LokiEntry[] = [];
    for (const e of entries) {
      const newest = this.newest.get(e.labelsText);
      if (newest !== undefined && e.timeMs < newest - this.windowMs) {
        behind ??= new Map();
        const group = behind.get(e.labelsText);
        if (group === undefined) behind.set(e.labelsText, [e]);
        else group.push(e);
      } else {
        rest.push(e);
      }
    }
    return { behind: behind === null ? [] : [...behind.values()], rest };
  }
}
