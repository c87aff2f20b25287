/**
 * One bench run (bench/run.js --json) in a process of its own, for the commands that compare
 * several: bench:matrix and `bench --jetstream`. A fresh process per case keeps one case's
 * payload pool, heap and JIT state out of the next one's figures.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchReport } from './report.js';

export interface ChildRun {
  /** The run's report; null when it printed none (it failed before the end). */
  readonly report: BenchReport | null;
  /** Null when it exited 0; else how it ended, with its last progress lines when it printed no report. */
  readonly error: string | null;
  readonly exitCode: number | null;
}

const RUN_JS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'run.js');

/** Runs bench/run.js with `args` (plus --json); `onLine` gets each progress line as it comes. */
export function runBenchChild(args: readonly string[], onLine?: (line: string) => void): Promise<ChildRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN_JS, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // A Ctrl-C at the terminal reaches the child too (same process group): it cleans up and
    // still prints its partial report, which the parent then shows.
    const out: Buffer[] = [];
    let err = '';
    let partial = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => {
      const text = b.toString('utf8');
      err += text;
      if (err.length > 20_000) err = err.slice(-10_000);
      if (onLine === undefined) return;
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    });
    child.on('close', (code) => {
      if (onLine !== undefined && partial !== '') onLine(partial);
      try {
        resolve({ report: JSON.parse(Buffer.concat(out).toString('utf8')) as BenchReport, error: code === 0 ? null : `exit ${String(code)}`, exitCode: code });
      } catch {
        resolve({ report: null, error: `exit ${String(code)}: ${err.trim().split('\n').slice(-3).join(' / ')}`, exitCode: code });
      }
    });
  });
}
