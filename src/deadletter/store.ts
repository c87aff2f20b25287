import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { IngestEvent } from '../pipeline/event.js';
import { formatPgTimestamp } from '../pipeline/time.js';
import type { SinkName } from '../sinks/sink.js';
import type { Logger } from '../telemetry/logger.js';

/** One line of a dead-letter file. */
export interface DeadLetter {
  readonly sink: SinkName;
  readonly code: string;
  readonly reason: string;
  readonly first_attempt: string;
  readonly last_attempt: string;
  readonly event: DeadEvent;
}

/** The event as it would have been stored, with `time` kept exact (ms + ns) for a faithful replay. */
export interface DeadEvent {
  readonly id: string;
  readonly time: string;
  readonly time_ms: number;
  readonly time_nanos: number;
  readonly received_at_ms: number;
  readonly source: string | null;
  readonly type: string | null;
  readonly service: string | null;
  readonly host: string | null;
  readonly severity: string | null;
  readonly message: string | null;
  readonly data: Readonly<Record<string, unknown>>;
}

export interface DeadLetterFilter {
  readonly code?: string;
  readonly source?: string;
  readonly idIn?: readonly string[];
}

/**
 * Events a sink refused for good, one NDJSON file per sink under `dir`, fsync'd on write.
 * Capped at `maxBytes` in all: past the cap new dead letters are counted and logged with
 * their ids, never silently lost from view.
 */
export class DeadLetterStore {
  private readonly counts = new Map<SinkName, number>();
  private readonly bytes = new Map<SinkName, number>();
  private dropped = 0;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly logger: Logger,
  ) {}

  static async open(dir: string, maxBytes: number, sinks: readonly SinkName[], logger: Logger): Promise<DeadLetterStore> {
    await mkdir(dir, { recursive: true });
    const store = new DeadLetterStore(dir, maxBytes, logger);
    for (const sink of sinks) {
      const text = await readIfExists(store.file(sink));
      store.counts.set(sink, countLines(text));
      store.bytes.set(sink, Buffer.byteLength(text));
    }
    return store;
  }

  count(sink: SinkName): number {
    return this.counts.get(sink) ?? 0;
  }

  get droppedOverCap(): number {
    return this.dropped;
  }

  /** Adds dead letters for one sink; resolves once they are on disk. */
  add(sink: SinkName, entries: ReadonlyArray<{ event: IngestEvent; code: string; reason: string; firstAttemptMs: number; lastAttemptMs: number }>): Promise<void> {
    return this.serialize(async () => {
      let text = '';
      for (const e of entries) {
        const letter: DeadLetter = {
          sink,
          code: e.code,
          reason: e.reason,
          first_attempt: new Date(e.firstAttemptMs).toISOString(),
          last_attempt: new Date(e.lastAttemptMs).toISOString(),
          event: toDeadEvent(e.event),
        };
        text += `${JSON.stringify(letter)}\n`;
      }
      const size = Buffer.byteLength(text);
      if (this.totalBytes() + size > this.maxBytes) {
        this.dropped += entries.length;
        this.logger.error(
          { sink, events: entries.length, ids: entries.slice(0, 20).map((e) => e.event.id), maxBytes: this.maxBytes },
          'dead-letter store is full (DEADLETTER_MAX_BYTES); these refused events are not kept',
        );
        return;
      }
      const handle = await open(this.file(sink), 'a');
      try {
        await handle.writeFile(text);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      this.counts.set(sink, this.count(sink) + entries.length);
      this.bytes.set(sink, (this.bytes.get(sink) ?? 0) + size);
    });
  }

  async list(sink: SinkName, offset: number, limit: number, filter: DeadLetterFilter = {}): Promise<{ total: number; items: DeadLetter[] }> {
    const all = (await this.readAll(sink)).filter((l) => matches(l, filter));
    return { total: all.length, items: all.slice(offset, offset + limit) };
  }

  /** Removes and returns the matching dead letters (for replay); the rest stay. */
  take(sink: SinkName, filter: DeadLetterFilter, limit: number): Promise<DeadLetter[]> {
    return this.serialize(async () => {
      const all = await this.readAll(sink);
      const taken: DeadLetter[] = [];
      const kept: DeadLetter[] = [];
      for (const l of all) (taken.length < limit && matches(l, filter) ? taken : kept).push(l);
      if (taken.length > 0) await this.rewrite(sink, kept);
      return taken;
    });
  }

  purge(sink: SinkName, filter: DeadLetterFilter = {}): Promise<number> {
    return this.serialize(async () => {
      const all = await this.readAll(sink);
      const kept = all.filter((l) => !matches(l, filter));
      await this.rewrite(sink, kept);
      return all.length - kept.length;
    });
  }

  /** Put back dead letters taken for a replay that could not be spooled. */
  restore(sink: SinkName, letters: readonly DeadLetter[]): Promise<void> {
    return this.serialize(async () => {
      const all = await this.readAll(sink);
      await this.rewrite(sink, [...letters, ...all]);
    });
  }

  private async rewrite(sink: SinkName, letters: readonly DeadLetter[]): Promise<void> {
    const text = letters.map((l) => `${JSON.stringify(l)}\n`).join('');
    const tmp = `${this.file(sink)}.tmp`;
    await writeFile(tmp, text, { flush: true });
    await rename(tmp, this.file(sink));
    this.counts.set(sink, letters.length);
    this.bytes.set(sink, Buffer.byteLength(text));
  }

  private async readAll(sink: SinkName): Promise<DeadLetter[]> {
    const text = await readIfExists(this.file(sink));
    const letters: DeadLetter[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        letters.push(JSON.parse(line) as DeadLetter);
      } catch {
        // A torn last line from a crash mid-append: the events in it were never acknowledged as dead-lettered.
        this.logger.warn({ sink }, 'skipping an unreadable dead-letter line');
      }
    }
    return letters;
  }

  private totalBytes(): number {
    let total = 0;
    for (const b of this.bytes.values()) total += b;
    return total;
  }

  private file(sink: SinkName): string {
    return path.join(this.dir, `${sink}.ndjson`);
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

export function toDeadEvent(e: IngestEvent): DeadEvent {
  return {
    id: e.id,
    time: formatPgTimestamp(e.timeMs, e.timeNanos),
    time_ms: e.timeMs,
    time_nanos: e.timeNanos,
    received_at_ms: e.receivedAtMs,
    source: e.source,
    type: e.type,
    service: e.service,
    host: e.host,
    severity: e.severity,
    message: e.message,
    data: e.data,
  };
}

export function fromDeadEvent(d: DeadEvent): IngestEvent {
  return {
    id: d.id,
    timeMs: d.time_ms,
    timeNanos: d.time_nanos,
    receivedAtMs: d.received_at_ms,
    source: d.source,
    type: d.type,
    service: d.service,
    host: d.host,
    severity: d.severity,
    message: d.message,
    data: d.data,
    dataJson: JSON.stringify(d.data),
  };
}

function matches(l: DeadLetter, f: DeadLetterFilter): boolean {
  if (f.code !== undefined && l.code !== f.code) return false;
  if (f.source !== undefined && l.event.source !== f.source) return false;
  if (f.idIn !== undefined && !f.idIn.includes(l.event.id)) return false;
  return true;
}

async function readIfExists(file: string): Promise<string> {
  try {
    await stat(file);
  } catch {
    return '';
  }
  return readFile(file, 'utf8');
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
