import { recordEvents, type RecordEvents } from './record-codec.js';
import { FrameReader, type Segment } from './segment-log.js';
import type { Spool } from './spool.js';

/**
 * One record, as a sink worker gets it. Its events are objects already when the spool's memory
 * kept them (Loki enabled); otherwise they are decoded from its bytes only if a sink asks.
 */
export interface SpoolRecord extends RecordEvents {
  readonly seq: number;
  readonly targets: number;
  /** Frame bytes on disk, for backlog accounting. */
  readonly bytes: number;
  /** Set when the record passed its checksum but could not be decoded (written by another version). */
  readonly decodeError?: string;
}

const NO_EVENTS: RecordEvents = { eventCount: 0, events: () => [], copyText: null, receivedAtMs: null };

/**
 * Reads records in seq order from one starting point: from the spool's memory cache while it
 * holds them, else from the segment files (after a restart, or when a backlog outgrew memory).
 */
export class SpoolReader {
  private disk: { segment: Segment; reader: FrameReader } | null = null;
  /** Where the record `nextSeq` starts, when known. */
  private position: { segment: Segment; offset: number } | null = null;
  /** End of the gap being skipped, once reported. */
  private lostThrough = 0;

  constructor(
    private readonly spool: Spool,
    private nextSeq: number,
  ) {}

  get next(): number {
    return this.nextSeq;
  }

  /** The next record; waits for one to be appended. Null only when the signal aborts. */
  async read(signal: AbortSignal): Promise<SpoolRecord | null> {
    for (;;) {
      if (signal.aborted) return null;
      if (this.nextSeq > this.spool.durableSeq) {
        await this.spool.waitForAppend(this.nextSeq - 1, signal);
        continue;
      }
      const cached = this.spool.cached(this.nextSeq);
      if (cached !== undefined) {
        const { eventCount, events, copyText, receivedAtMs } = cached;
        const record: SpoolRecord = { seq: this.nextSeq, targets: cached.targets, eventCount, events, copyText, receivedAtMs, bytes: cached.length };
        this.position = { segment: cached.segment, offset: cached.offset + cached.length };
        this.nextSeq++;
        return record;
      }
      const record = await this.readFromDisk();
      if (record !== null) return record;
    }
  }

  async close(): Promise<void> {
    await this.disk?.reader.close();
    this.disk = null;
  }

  private async readFromDisk(): Promise<SpoolRecord | null> {
    const segment = this.segmentFor(this.nextSeq);
    if (segment === null) return this.skipLost();
    if (this.disk === null || this.disk.segment !== segment) {
      await this.disk?.reader.close();
      const offset = this.position?.segment === segment ? this.position.offset : 0;
      this.disk = { segment, reader: new FrameReader(segment.path, offset) };
    } else if (this.position !== null && this.disk.reader.offset !== this.position.offset) {
      this.disk.reader.rewindTo(this.position.offset);
    }
    const frame = await this.disk.reader.next();
    if (frame.kind !== 'record') {
      // The file may have grown since this reader saw its end: read again from where we are.
      const at = this.disk.reader.offset;
      this.disk.reader.rewindTo(at);
      if ((frame.kind === 'end' || frame.kind === 'torn') && at < segment.size) return null;
      if (frame.kind === 'end' || frame.kind === 'torn') throw new Error(`spool record ${this.nextSeq} missing from ${segment.path}`);
      throw new Error(`spool segment ${segment.path} is corrupt at ${this.disk.reader.offset}: ${frame.reason}`);
    }
    this.position = { segment, offset: frame.offset + frame.length };
    if (frame.seq < this.nextSeq) return null;
    if (frame.seq > this.nextSeq) throw new Error(`spool record ${this.nextSeq} missing; found ${frame.seq}`);
    this.nextSeq++;
    try {
      return { seq: frame.seq, targets: frame.targets, bytes: frame.length, ...recordEvents(frame.payload, frame.eventCount) };
    } catch (err) {
      return { seq: frame.seq, targets: frame.targets, bytes: frame.length, ...NO_EVENTS, decodeError: (err as Error).message };
    }
  }

  /**
   * A record no segment holds any more (its segment was quarantined at recovery): handed on as
   * an empty record, so the sink's cursor moves past the gap instead of stopping at it forever.
   */
  private skipLost(): SpoolRecord {
    const seq = this.nextSeq;
    if (seq > this.lostThrough) {
      const later = this.spool.segments().find((s) => s.firstSeq > seq);
      this.lostThrough = later === undefined ? this.spool.durableSeq : later.firstSeq - 1;
      this.spool.reportLost(seq, this.lostThrough);
    }
    this.nextSeq++;
    this.position = null;
    return { seq, targets: 0, bytes: 0, ...NO_EVENTS };
  }

  private segmentFor(seq: number): Segment | null {
    for (const s of this.spool.segments()) if (seq >= s.firstSeq && seq <= s.lastSeq) return s;
    return null;
  }
}
