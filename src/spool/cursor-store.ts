import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SinkName } from '../sinks/sink.js';
import type { Logger } from '../telemetry/logger.js';

/**
 * Each sink's cursor: the highest seq such that every record up to it is handled (stored or
 * dead-lettered) by that sink. Written by atomic rename and not fsync'd on purpose: a cursor
 * that is lost or older after a power cut only makes the sink resend records it already has,
 * which idempotent writes absorb; a cursor ahead of the truth could never happen this way.
 */
export class CursorStore {
  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
  ) {}

  /** The persisted cursor, or null when this sink has none yet (newly enabled). */
  async read(sink: SinkName): Promise<number | null> {
    const file = this.file(sink);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    let parsed = Number.NaN;
    try {
      parsed = Number((JSON.parse(text) as { seq?: unknown }).seq);
    } catch {
      // handled below, like any other unreadable value
    }
    if (!Number.isSafeInteger(parsed) || parsed < 0) {
      this.logger.warn({ sink, file }, 'unreadable spool cursor; the sink will resend what the spool holds');
      return 0;
    }
    return parsed;
  }

  async write(sink: SinkName, seq: number): Promise<void> {
    const file = this.file(sink);
    const tmp = `${file}.tmp`;
    await writeFile(tmp, JSON.stringify({ seq }));
    await rename(tmp, file);
  }

  private file(sink: SinkName): string {
    return path.join(this.dir, `cursor.${sink}.json`);
  }
}
