import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { IngestEvent } from '../../src/pipeline/event.js';

/** A distinct, realistic event; `n` makes it unique. */
export function makeEvent(n: number, overrides: Partial<IngestEvent> = {}): IngestEvent {
  const data = { message: `event ${n}`, host: 'edge-01', seq: n, nested: { ok: true } };
  return {
    id: `00000000-0000-0000-0000-${n.toString(16).padStart(12, '0')}`,
    timeMs: 1_755_882_687_880 + n,
    timeNanos: 579_000,
    receivedAtMs: 1_755_882_690_000,
    source: 'edge-01',
    type: 'syslog',
    service: 'sshd',
    host: 'edge-01',
    severity: 'info',
    message: `event ${n}`,
    data,
    dataJson: JSON.stringify(data),
    ...overrides,
  };
}

export function makeEvents(from: number, count: number): IngestEvent[] {
  return Array.from({ length: count }, (_, i) => makeEvent(from + i));
}

export async function tempDir(prefix = 'mothership-test-'): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
