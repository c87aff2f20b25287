import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { FrameReader } from '../spool/segment-log.js';
import { SINK_BITS } from '../spool/spool.js';
import type { SinkName } from '../sinks/sink.js';

export interface SegmentReport {
  readonly file: string;
  readonly records: number;
  readonly events: number;
  readonly bytes: number;
  readonly firstSeq: number | null;
  readonly lastSeq: number | null;
  /** Why reading stopped early, if it did (a torn tail, or corruption). */
  readonly problem: string | null;
}

export interface SpoolReport {
  readonly dir: string;
  readonly segments: SegmentReport[];
  readonly cursors: Partial<Record<SinkName, number>>;
  readonly backlog: Partial<Record<SinkName, { records: number; events: number }>>;
  readonly quarantined: string[];
}

/**
 * Reads a spool folder without changing anything (no tail is cut, no cursor written), so it is
 * safe to run beside a live server.
 */
export async function inspectSpool(dir: string): Promise<SpoolReport> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.seg')).sort();
  const cursors: Partial<Record<SinkName, number>> = {};
  for (const sink of Object.keys(SINK_BITS) as SinkName[]) {
    try {
      const parsed = JSON.parse(await readFile(path.join(dir, `cursor.${sink}.json`), 'utf8')) as { seq?: unknown };
      if (typeof parsed.seq === 'number') cursors[sink] = parsed.seq;
    } catch {
      // no cursor: that sink was never enabled with this spool
    }
  }
  const backlog: Partial<Record<SinkName, { records: number; events: number }>> = {};
  for (const sink of Object.keys(cursors) as SinkName[]) backlog[sink] = { records: 0, events: 0 };
  const segments: SegmentReport[] = [];
  for (const name of names) {
    const reader = new FrameReader(path.join(dir, name), 0);
    let records = 0;
    let events = 0;
    let bytes = 0;
    let firstSeq: number | null = null;
    let lastSeq: number | null = null;
    let problem: string | null = null;
    try {
      for (;;) {
        const frame = await reader.next();
        if (frame.kind === 'end') break;
        if (frame.kind === 'torn') {
          problem = `incomplete record at byte ${reader.offset} (a torn tail; it is cut at the next start)`;
          break;
        }
        if (frame.kind === 'corrupt') {
          problem = `${frame.reason} at byte ${reader.offset}`;
          break;
        }
        records++;
        events += frame.eventCount;
        bytes += frame.length;
        firstSeq ??= frame.seq;
        lastSeq = frame.seq;
        for (const [sink, cursor] of Object.entries(cursors) as Array<[SinkName, number]>) {
          const b = backlog[sink];
          if (b !== undefined && frame.seq > cursor && (frame.targets & SINK_BITS[sink]) !== 0) {
            b.records++;
            b.events += frame.eventCount;
          }
        }
      }
    } finally {
      await reader.close();
    }
    segments.push({ file: name, records, events, bytes, firstSeq, lastSeq, problem });
  }
  let quarantined: string[] = [];
  try {
    quarantined = await readdir(path.join(dir, 'quarantine'));
  } catch {
    // none
  }
  return { dir, segments, cursors, backlog, quarantined };
}
