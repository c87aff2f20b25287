import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../telemetry/logger.js';
import { checkFrame, FRAME_HEADER_BYTES, frameHeader } from './frame.js';

const SEGMENT_RE = /^(\d{20})\.seg$/;
const SCAN_CHUNK = 4 * 1024 * 1024;
const APPEND = constants.O_RDWR | constants.O_CREAT | constants.O_APPEND;
/** Every write is durable when it returns (SPOOL_FSYNC on). */
const APPEND_DURABLY = APPEND | constants.O_DSYNC;

export interface Segment {
  readonly firstSeq: number;
  readonly path: string;
  /** Bytes of valid records. */
  size: number;
  /** Seq of the last record; firstSeq - 1 while empty. */
  lastSeq: number;
}

export interface AppendedRecord {
  readonly seq: number;
  readonly segment: Segment;
  readonly offset: number;
  readonly length: number;
}

export interface RecoveryReport {
  readonly segments: number;
  readonly records: number;
  readonly tornBytes: number;
  readonly quarantined: readonly string[];
}

export interface SegmentLogOptions {
  readonly dir: string;
  readonly segmentBytes: number;
  readonly fsync: boolean;
  readonly logger: Logger;
  /** The first seq to use when the log is empty (one past the highest cursor ever persisted). */
  readonly minNextSeq: number;
  /** Called for every valid record found at recovery, in seq order. */
  readonly onRecoveredRecord?: (seq: number, targets: number, eventCount: number) => void;
}

/**
 * The append-only, checksummed record log behind the spool: a folder of segment files named
 * by their first seq. Appends are on disk (with fsync on: O_DSYNC writes) before they resolve;
 * whole segments are deleted once every reader has passed them. Not safe for concurrent
 * appends: the spool serializes them (that is where group commit happens).
 */
export class SegmentLog {
  readonly segments: Segment[] = [];
  private active: { segment: Segment; handle: FileHandle } | null = null;
  private next: number;

  private constructor(private readonly options: SegmentLogOptions) {
    this.next = options.minNextSeq;
  }

  static async open(options: SegmentLogOptions): Promise<{ log: SegmentLog; report: RecoveryReport }> {
    const log = new SegmentLog(options);
    const report = await log.recover();
    return { log, report };
  }

  /** The seq the next appended record will get. */
  get nextSeq(): number {
    return this.next;
  }

  get totalBytes(): number {
    let total = 0;
    for (const s of this.segments) total += s.size;
    return total;
  }

  async append(records: ReadonlyArray<{ readonly targets: number; readonly eventCount: number; readonly payload: Buffer }>): Promise<AppendedRecord[]> {
    const active = await this.activeSegment();
    const frames: Buffer[] = [];
    const appended: AppendedRecord[] = [];
    let offset = active.segment.size;
    for (const r of records) {
      const length = FRAME_HEADER_BYTES + r.payload.length;
      frames.push(frameHeader(this.next, r.targets, r.eventCount, r.payload), r.payload);
      appended.push({ seq: this.next, segment: active.segment, offset, length });
      offset += length;
      this.next++;
    }
    try {
      // With fsync on the segment is open with O_DSYNC: the write returns once the data (and the
      // size needed to read it) is on disk, as write + fdatasync would, in one thread-pool trip
      // instead of two; each trip waits for a turn of the busy event loop.
      await active.handle.writev(frames, active.segment.size);
    } catch (err) {
      // Nothing was acknowledged: forget the seqs and cut whatever part of the write landed.
      this.next -= records.length;
      await active.handle.truncate(active.segment.size).catch(() => undefined);
      throw err;
    }
    active.segment.size = offset;
    active.segment.lastSeq = this.next - 1;
    if (active.segment.size >= this.options.segmentBytes) await this.closeActive();
    return appended;
  }

  /** Deletes every closed segment whose records all have seq <= `seq`. */
  async removeThrough(seq: number): Promise<number> {
    let removed = 0;
    while (this.segments.length > 0) {
      const oldest = this.segments[0] as Segment;
      if (oldest.lastSeq > seq || this.active?.segment === oldest) break;
      if (oldest.lastSeq < oldest.firstSeq && this.segments.length === 1) break;
      await rm(oldest.path, { force: true });
      this.segments.shift();
      removed++;
    }
    return removed;
  }

  async close(): Promise<void> {
    await this.closeActive();
  }

  private async activeSegment(): Promise<{ segment: Segment; handle: FileHandle }> {
    if (this.active !== null) return this.active;
    const last = this.segments[this.segments.length - 1];
    let segment: Segment;
    if (last !== undefined && last.size < this.options.segmentBytes) {
      segment = last;
    } else {
      segment = { firstSeq: this.next, path: path.join(this.options.dir, segmentName(this.next)), size: 0, lastSeq: this.next - 1 };
      this.segments.push(segment);
    }
    const handle = await open(segment.path, this.options.fsync ? APPEND_DURABLY : APPEND);
    if (segment.size === 0) await syncDir(this.options.dir);
    this.active = { segment, handle };
    return this.active;
  }

  private async closeActive(): Promise<void> {
    const active = this.active;
    this.active = null;
    if (active !== null) await active.handle.close();
  }

  /** Scans every segment: cuts a torn tail, moves corrupt segments aside, finds the next seq. */
  private async recover(): Promise<RecoveryReport> {
    const { dir, logger } = this.options;
    await mkdir(dir, { recursive: true });
    const names = (await readdir(dir)).filter((n) => SEGMENT_RE.test(n)).sort();
    const quarantined: string[] = [];
    let tornBytes = 0;
    let records = 0;
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const file = path.join(dir, name);
      const firstSeq = Number(SEGMENT_RE.exec(name)?.[1]);
      const isLast = i === names.length - 1;
      const scan = await scanSegment(file, firstSeq);
      if (scan.problem !== null && !(isLast && scan.problem.tornTail)) {
        const target = await quarantine(dir, name);
        quarantined.push(target);
        logger.error({ segment: name, movedTo: target, offset: scan.validBytes, reason: scan.problem.reason }, 'spool segment is corrupt; moved aside');
        continue;
      }
      if (scan.problem !== null) {
        const cut = (await stat(file)).size - scan.validBytes;
        tornBytes += cut;
        const handle = await open(file, 'r+');
        try {
          await handle.truncate(scan.validBytes);
          await handle.datasync();
        } finally {
          await handle.close();
        }
        logger.warn({ segment: name, offset: scan.validBytes, bytes: cut, reason: scan.problem.reason }, 'spool tail was torn by a crash; cut it');
      }
      records += scan.records;
      const onRecord = this.options.onRecoveredRecord;
      if (onRecord !== undefined) {
        for (let r = 0; r < scan.found.length; r += 3) onRecord(scan.found[r] as number, scan.found[r + 1] as number, scan.found[r + 2] as number);
      }
      if (scan.records === 0 && i < names.length - 1) {
        await rm(file, { force: true });
        continue;
      }
      this.segments.push({ firstSeq, path: file, size: scan.validBytes, lastSeq: firstSeq + scan.records - 1 });
      this.next = Math.max(this.next, firstSeq + scan.records);
    }
    return { segments: this.segments.length, records, tornBytes, quarantined };
  }
}

interface ScanResult {
  readonly records: number;
  /** (seq, targets, eventCount) of each valid record, flattened. */
  readonly found: readonly number[];
  readonly validBytes: number;
  readonly problem: { readonly reason: string; readonly tornTail: boolean } | null;
}

async function scanSegment(file: string, firstSeq: number): Promise<ScanResult> {
  const found: number[] = [];
  let records = 0;
  let validBytes = 0;
  let expectedSeq = firstSeq;
  const reader = new FrameReader(file, 0);
  try {
    for (;;) {
      const frame = await reader.next();
      if (frame.kind === 'end') return { records, validBytes, found, problem: null };
      if (frame.kind === 'torn') return { records, validBytes, found, problem: { reason: 'incomplete record at end of file', tornTail: true } };
      if (frame.kind === 'corrupt') {
        // A bad frame with nothing valid after it is what an interrupted write leaves behind.
        const tornTail = !(await reader.anyValidFrameAfter(validBytes + 1));
        return { records, validBytes, found, problem: { reason: frame.reason, tornTail } };
      }
      if (frame.seq !== expectedSeq) return { records, validBytes, found, problem: { reason: `seq ${frame.seq} where ${expectedSeq} was expected`, tornTail: false } };
      expectedSeq++;
      records++;
      found.push(frame.seq, frame.targets, frame.eventCount);
      validBytes = frame.offset + frame.length;
    }
  } finally {
    await reader.close();
  }
}

export type ReadFrame =
  | {
      readonly kind: 'record';
      readonly seq: number;
      readonly targets: number;
      readonly eventCount: number;
      readonly payload: Buffer;
      readonly offset: number;
      readonly length: number;
    }
  | { readonly kind: 'end' }
  | { readonly kind: 'torn' }
  | { readonly kind: 'corrupt'; readonly reason: string };

/** Sequential, buffered reading of frames from one segment file, starting at a byte offset. */
export class FrameReader {
  private handle: FileHandle | null = null;
  private buf: Buffer = Buffer.alloc(0);
  /** File offset of buf[0]. */
  private bufStart: number;
  private pos: number;
  private eof = false;

  constructor(
    private readonly file: string,
    offset: number,
  ) {
    this.bufStart = offset;
    this.pos = offset;
  }

  get offset(): number {
    return this.pos;
  }

  async next(): Promise<ReadFrame> {
    for (;;) {
      const at = this.pos - this.bufStart;
      const check = checkFrame(this.buf, at);
      if (check.kind === 'ok') {
        const payload = Buffer.from(this.buf.subarray(at + 24, at + check.frameLength));
        const { seq, targets, eventCount } = check.header;
        const frame: ReadFrame = { kind: 'record', seq, targets, eventCount, payload, offset: this.pos, length: check.frameLength };
        this.pos += check.frameLength;
        return frame;
      }
      if (check.kind === 'corrupt') return check;
      if (this.eof) return this.buf.length - at === 0 ? { kind: 'end' } : { kind: 'torn' };
      await this.fill(check.needed);
    }
  }

  /** Re-reads from `from` (the file may have grown since EOF was seen). */
  rewindTo(from: number): void {
    this.buf = Buffer.alloc(0);
    this.bufStart = from;
    this.pos = from;
    this.eof = false;
  }

  async anyValidFrameAfter(from: number): Promise<boolean> {
    const handle = await this.open();
    const size = (await handle.stat()).size;
    const chunk = Buffer.alloc(Math.min(SCAN_CHUNK, Math.max(0, size - from)));
    // Consecutive windows overlap by a header so a frame start on a boundary is not missed.
    const step = Math.max(1, chunk.length - 24);
    for (let start = from; start < size; start += step) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, start);
      const view = chunk.subarray(0, bytesRead);
      for (let i = view.indexOf('ESP1'); i >= 0; i = view.indexOf('ESP1', i + 1)) {
        const c = checkFrame(view, i);
        if (c.kind === 'ok') return true;
        if (c.kind === 'incomplete' && start + i + c.needed <= size) {
          const whole = Buffer.alloc(c.needed);
          await handle.read(whole, 0, c.needed, start + i);
          if (checkFrame(whole, 0).kind === 'ok') return true;
        }
      }
      if (bytesRead < chunk.length) break;
    }
    return false;
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    if (handle !== null) await handle.close();
  }

  private async open(): Promise<FileHandle> {
    this.handle ??= await open(this.file, 'r');
    return this.handle;
  }

  private async fill(needed: number): Promise<void> {
    const handle = await this.open();
    const keep = this.buf.subarray(this.pos - this.bufStart);
    const size = Math.max(needed, SCAN_CHUNK);
    const next = Buffer.allocUnsafe(size);
    keep.copy(next, 0);
    const { bytesRead } = await handle.read(next, keep.length, size - keep.length, this.pos + keep.length);
    this.buf = next.subarray(0, keep.length + bytesRead);
    this.bufStart = this.pos;
    if (keep.length + bytesRead < needed) this.eof = true;
  }
}

export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}.seg`;
}

async function quarantine(dir: string, name: string): Promise<string> {
  const qdir = path.join(dir, 'quarantine');
  await mkdir(qdir, { recursive: true });
  const target = path.join(qdir, `${name}.${Date.now()}.corrupt`);
  await rename(path.join(dir, name), target);
  return target;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
