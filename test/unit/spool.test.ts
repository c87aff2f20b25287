import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { appendFile, open, readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { MothershipError } from '../../src/lib/errors.js';
import { copyText } from '../../src/pipeline/copy-text.js';
import type { IngestEvent } from '../../src/pipeline/event.js';
import type { SinkName } from '../../src/sinks/sink.js';
import { SINK_BITS, Spool, type SpoolOptions } from '../../src/spool/spool.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { makeEvents, tempDir } from '../helpers/events.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function openSpool(dir: string, overrides: Partial<SpoolOptions> = {}): Promise<Spool> {
  const spool = await Spool.open({
    dir,
    maxBytes: 64 * 1024 * 1024,
    segmentBytes: 1024 * 1024,
    fsync: true,
    memoryBytes: 8 * 1024 * 1024,
    cacheEvents: false,
    sinks: ['tsdb'],
    logger: silentLogger(),
    now: () => 0,
    ...overrides,
  });
  return spool;
}

async function newDir(): Promise<string> {
  const t = await tempDir('spool-test-');
  cleanups.push(t.remove);
  return t.dir;
}

async function readAll(spool: Spool, sink: SinkName, count: number): Promise<Array<{ seq: number; ids: string[] }>> {
  const reader = spool.reader(sink);
  const out = [];
  for (let i = 0; i < count; i++) {
    const r = await reader.read(AbortSignal.timeout(5000));
    assert.ok(r !== null, 'record expected');
    out.push({ seq: r.seq, ids: r.events().map((e) => e.id) });
  }
  await reader.close();
  return out;
}

/** The open flags of this process's descriptor on `file` (Linux /proc). */
async function openFlagsOf(file: string): Promise<number> {
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target !== file) continue;
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8');
    const flags = /^flags:\s*([0-7]+)$/m.exec(info)?.[1];
    if (flags !== undefined) return Number.parseInt(flags, 8);
  }
  throw new Error(`${file} is not open in this process`);
}

describe('Spool', () => {
  test('concurrent appends get contiguous seqs and read back in order, from memory (as events or as bytes) and from disk', async () => {
    for (const [memoryBytes, cacheEvents] of [[8 * 1024 * 1024, true], [8 * 1024 * 1024, false], [0, false]] as const) {
      const dir = await newDir();
      const spool = await openSpool(dir, { memoryBytes, cacheEvents });
      const seqs = await Promise.all(Array.from({ length: 50 }, (_, i) => spool.append(makeEvents(i * 10, 10))));
      assert.deepEqual([...seqs].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
      const records = await readAll(spool, 'tsdb', 50);
      assert.deepEqual(records.map((r) => r.seq), seqs.slice().sort((a, b) => a - b));
      const ids = records.flatMap((r) => r.ids);
      assert.equal(new Set(ids).size, 500);
      await spool.close();
    }
  });

  test('records and the cursor survive a restart; the reader resumes after the cursor', async () => {
    const dir = await newDir();
    const first = await openSpool(dir);
    for (let i = 0; i < 5; i++) await first.append(makeEvents(i * 3, 3));
    first.ack('tsdb', 2, 6, 0);
    await first.close();
    const second = await openSpool(dir);
    assert.equal(second.durableSeq, 5);
    assert.equal(second.ackedSeq('tsdb'), 2);
    assert.equal(second.backlogOf('tsdb').events, 9);
    const records = await readAll(second, 'tsdb', 3);
    assert.deepEqual(records.map((r) => r.seq), [3, 4, 5]);
    assert.deepEqual(records[0]?.ids, makeEvents(6, 3).map((e) => e.id));
    assert.equal(await second.append(makeEvents(100, 1)), 6);
    await second.close();
  });

  test('a torn tail is cut and everything before it replays', async () => {
    const dir = await newDir();
    const spool = await openSpool(dir);
    for (let i = 0; i < 4; i++) await spool.append(makeEvents(i * 2, 2));
    await spool.close();
    const [segment] = (await readdir(dir)).filter((f) => f.endsWith('.seg'));
    assert.ok(segment !== undefined);
    const file = path.join(dir, segment);
    const before = (await stat(file)).size;
    // Half a record header and some payload: what a crash in the middle of a write leaves.
    await appendFile(file, Buffer.from([0x45, 0x53, 0x50, 0x31, 0xff, 0x00, 0x00, 0x00, 1, 2, 3]));
    const reopened = await openSpool(dir);
    assert.equal(reopened.recovery.tornBytes, 11);
    assert.equal((await stat(file)).size, before);
    assert.equal(reopened.durableSeq, 4);
    assert.equal((await readAll(reopened, 'tsdb', 4)).length, 4);
    assert.equal(await reopened.append(makeEvents(50, 1)), 5);
    await reopened.close();
  });

  test('a corrupt segment is quarantined, counted, and the rest replays', async () => {
    const dir = await newDir();
    const spool = await openSpool(dir, { segmentBytes: 4096 });
    for (let i = 0; i < 30; i++) await spool.append(makeEvents(i * 5, 5));
    await spool.close();
    const segments = (await readdir(dir)).filter((f) => f.endsWith('.seg')).sort();
    assert.ok(segments.length >= 3, `expected several segments, got ${segments.length}`);
    // A segment in the middle, so a sink reading from the start meets a gap.
    const victim = path.join(dir, segments[2] as string);
    const handle = await open(victim, 'r+');
    await handle.write(Buffer.from('XXXX'), 0, 4, 40);
    await handle.close();
    const reopened = await openSpool(dir, { segmentBytes: 4096 });
    assert.equal(reopened.recovery.quarantined.length, 1);
    assert.deepEqual(await readdir(path.join(dir, 'quarantine')).then((f) => f.length), 1);
    assert.equal(reopened.durableSeq, 30);
    const held = new Set<number>();
    for (const seg of reopened.segments()) for (let seq = seg.firstSeq; seq <= seg.lastSeq; seq++) held.add(seq);
    assert.ok(held.size < 30 && held.has(1) && held.has(30), 'a gap in the middle');
    // A sink reading from the start passes the gap as empty records (its cursor must not stop
    // there forever), and gets every record still held, in order.
    const reader = reopened.reader('tsdb');
    const seen: Array<{ seq: number; events: number }> = [];
    for (let seq = 1; seq <= 30; seq++) {
      const rec = await reader.read(AbortSignal.timeout(5000));
      assert.ok(rec !== null);
      seen.push({ seq: rec.seq, events: rec.eventCount });
    }
    assert.deepEqual(seen.map((r) => r.seq), Array.from({ length: 30 }, (_, i) => i + 1));
    for (const r of seen) assert.equal(r.events, held.has(r.seq) ? 5 : 0, `record ${r.seq}`);
    await reader.close();
    await reopened.close();
  });

  test('a full spool refuses with spool_full and Retry-After, and accepts again once drained', async () => {
    const dir = await newDir();
    const spool = await openSpool(dir, { maxBytes: 20_000, segmentBytes: 4096 });
    let refused: unknown = null;
    let last = 0;
    for (let i = 0; i < 1000 && refused === null; i++) {
      try {
        last = await spool.append(makeEvents(i * 5, 5));
      } catch (err) {
        refused = err;
      }
    }
    assert.ok(refused instanceof MothershipError);
    assert.equal(refused.code, 'spool_full');
    assert.ok((refused.retryAfterSeconds ?? 0) >= 1);
    spool.ack('tsdb', last, 0, 0);
    await spool.close();
    const reopened = await openSpool(dir, { maxBytes: 20_000, segmentBytes: 4096 });
    assert.ok(reopened.totalBytes < 20_000);
    await reopened.append(makeEvents(9999, 5));
    await reopened.close();
  });

  test('segments are deleted only once every sink has passed them', async () => {
    const dir = await newDir();
    const spool = await openSpool(dir, { segmentBytes: 4096, sinks: ['tsdb', 'loki'] });
    let last = 0;
    for (let i = 0; i < 30; i++) last = await spool.append(makeEvents(i * 5, 5));
    const count = async (): Promise<number> => (await readdir(dir)).filter((f) => f.endsWith('.seg')).length;
    const before = await count();
    spool.ack('tsdb', last, 0, 0);
    await spool.close();
    assert.equal(await count(), before, 'loki has not passed them');
    const again = await openSpool(dir, { segmentBytes: 4096, sinks: ['tsdb', 'loki'] });
    again.ack('loki', last, 0, 0);
    await again.close();
    assert.equal(await count(), 0, 'every segment both sinks passed is gone');
  });

  test('with fsync on, appends go to a segment opened O_DSYNC (each write durable when it returns); with it off, not', async (t) => {
    if (process.platform !== 'linux') {
      t.skip('reads the open flags from /proc/self/fdinfo');
      return;
    }
    for (const fsync of [true, false]) {
      const dir = await newDir();
      const spool = await openSpool(dir, { fsync });
      await spool.append(makeEvents(0, 3));
      const flags = await openFlagsOf(path.join(dir, (await readdir(dir)).find((n) => n.endsWith('.seg')) ?? ''));
      assert.equal((flags & constants.O_DSYNC) !== 0, fsync, `fsync ${fsync}: flags 0${flags.toString(8)}`);
      assert.ok((flags & constants.O_APPEND) !== 0);
      await spool.close();
    }
  });

  test('an append keeps its decoded events only for a cache that holds events and has room', async () => {
    // A burst that outruns the disk queues appends; what they hold is what memory holds then.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const cases = [
      { memoryBytes: 0, cacheEvents: true, kept: false, cached: false },
      { memoryBytes: 8 * 1024 * 1024, cacheEvents: false, kept: false, cached: true },
      { memoryBytes: 8 * 1024 * 1024, cacheEvents: true, kept: true, cached: true },
    ];
    for (const c of cases) {
      const dir = await newDir();
      const spool = await openSpool(dir, { memoryBytes: c.memoryBytes, cacheEvents: c.cacheEvents });
      let events: IngestEvent[] | null = makeEvents(0, 200);
      const held = new WeakRef(events);
      // A WeakRef keeps its target alive until the end of the job that made it: start a new one.
      await new Promise((resolve) => setImmediate(resolve));
      // From here to the check, one synchronous stretch: the append is still pending.
      const appended = spool.append(events);
      events = null;
      gc();
      assert.equal(held.deref() !== undefined, c.kept, `events kept while pending: ${JSON.stringify(c)}`);
      const seq = await appended;
      assert.equal(spool.cached(seq) !== undefined, c.cached, `cached: ${JSON.stringify(c)}`);
      assert.equal(spool.cached(seq)?.copyText?.length ?? 0, c.cached ? Buffer.byteLength(copyText(makeEvents(0, 200))) : 0);
      assert.equal((await readAll(spool, 'tsdb', 1))[0]?.ids.length, 200);
      await spool.close();
    }
  });

  test('records can target one sink only', async () => {
    const dir = await newDir();
    const spool = await openSpool(dir, { sinks: ['tsdb', 'loki'] });
    await spool.append(makeEvents(0, 2), SINK_BITS.loki);
    assert.equal(spool.backlogOf('tsdb').events, 0);
    assert.equal(spool.backlogOf('loki').events, 2);
    const reader = spool.reader('tsdb');
    const rec = await reader.read(AbortSignal.timeout(1000));
    assert.equal(rec?.targets, SINK_BITS.loki);
    await reader.close();
    await spool.close();
  });

  test('a sink re-enabled after its records were deleted resumes at the oldest record held', async () => {
    const dir = await newDir();
    const both = await openSpool(dir, { segmentBytes: 4096, sinks: ['tsdb', 'loki'] });
    for (let i = 0; i < 30; i++) await both.append(makeEvents(i * 5, 5));
    await both.close();
    // Loki is disabled: tsdb alone drains and the segments go.
    const tsdbOnly = await openSpool(dir, { segmentBytes: 4096, sinks: ['tsdb'] });
    tsdbOnly.ack('tsdb', 25, 0, 0);
    await tsdbOnly.close();
    const again = await openSpool(dir, { segmentBytes: 4096, sinks: ['tsdb', 'loki'] });
    const oldest = again.segments()[0]?.firstSeq ?? 0;
    assert.ok(oldest > 1 && oldest <= 26, `segments were deleted (oldest held ${oldest})`);
    assert.equal(again.ackedSeq('loki'), oldest - 1);
    const reader = again.reader('loki');
    const rec = await reader.read(AbortSignal.timeout(5000));
    assert.equal(rec?.seq, oldest);
    assert.equal(rec?.eventCount, 5);
    await reader.close();
    await again.close();
  });
});
