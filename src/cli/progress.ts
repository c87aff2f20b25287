/**
 * What `mothership send` tells a human on stderr: a progress line redrawn in place on a terminal,
 * and a one-line summary at the end. The rendering is pure (time is a parameter); ProgressLine is
 * the small stateful part that draws it.
 */
import path from 'node:path';
import type { SendProgress, SendSummary } from './send.js';

/** 1234567 → "1,234,567" (the same on every locale). */
export function formatCount(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** 4200 → "4.2 s", 42000 → "42 s", 125000 → "2:05", 3725000 → "1:02:05". */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, ms) / 1000;
  if (seconds < 10) return `${(Math.floor(seconds * 10) / 10).toFixed(1)} s`;
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** Messages per second over `ms`: "1,250 msg/s", "3.5 msg/s", or "- msg/s" before any time has passed. */
export function formatRate(messages: number, ms: number): string {
  if (ms <= 0) return '- msg/s';
  const rate = (messages * 1000) / ms;
  return rate >= 100 ? `${formatCount(rate)} msg/s` : `${rate.toFixed(1)} msg/s`;
}

function plural(n: number, one: string, many: string): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

/**
 * The progress line for `progress` at time `now` (same clock as `progress.startedAt`), cut to
 * `width` characters when given (a terminal line must not wrap, or it cannot be redrawn):
 * "1,200/5,000 messages (24%)  3 batches  0 retries  400 msg/s  3.0 s  weather.csv"
 */
export function renderProgress(progress: SendProgress, now: number, width?: number): string {
  const elapsed = Math.max(0, now - progress.startedAt);
  const sent = formatCount(progress.messagesSent);
  const total = progress.messagesTotal;
  const count = total === null ? `${sent} messages` : `${sent}/${formatCount(total)} messages${total > 0 ? ` (${Math.floor((progress.messagesSent * 100) / total)}%)` : ''}`;
  const parts = [
    count,
    plural(progress.batches, 'batch', 'batches'),
    plural(progress.retries, 'retry', 'retries'),
    formatRate(progress.messagesSent, elapsed),
    formatDuration(elapsed),
    progress.retrying === null ? path.basename(progress.file) : `retrying: ${progress.retrying}`,
  ];
  const line = parts.join('  ');
  if (width === undefined || line.length <= width) return line;
  return width <= 3 ? line.slice(0, Math.max(0, width)) : `${line.slice(0, width - 3)}...`;
}

/**
 * The one-line human summary at the end of a send (stderr; the JSON summary goes to stdout):
 * "sent 33 messages in 5 batches from 3 files in 1.2 s (27.5 msg/s): 33 accepted (0 duplicates), 0 rejected, 0 retries"
 */
export function renderSummary(summary: SendSummary, total: number | null, elapsedMs: number): string {
  const messages = total === null || total === summary.messages ? plural(summary.messages, 'message', 'messages') : `${formatCount(summary.messages)} of ${plural(total, 'message', 'messages')}`;
  return (
    `sent ${messages} in ${plural(summary.batches, 'batch', 'batches')} from ${plural(summary.files, 'file', 'files')} ` +
    `in ${formatDuration(elapsedMs)} (${formatRate(summary.messages, elapsedMs)}): ` +
    `${formatCount(summary.accepted)} accepted (${plural(summary.duplicates, 'duplicate', 'duplicates')}), ${formatCount(summary.rejected)} rejected, ${plural(summary.retries, 'retry', 'retries')}`
  );
}

const CLEAR_LINE = '\r\x1b[2K';

/**
 * Draws progress on a terminal: one line, redrawn in place at most every `intervalMs` (and at
 * once for a retry), kept ticking while a batch is in flight; other lines (`log`) go above it.
 */
export class ProgressLine {
  private last: SendProgress | null = null;
  private drawnAt = Number.NEGATIVE_INFINITY;
  private shown = false;
  private readonly ticker: ReturnType<typeof setInterval> | null;

  constructor(
    private readonly write: (text: string) => void,
    private readonly now: () => number,
    private readonly width: () => number | undefined,
    private readonly intervalMs = 100,
    tickMs = 500,
  ) {
    this.ticker = tickMs > 0 ? setInterval(() => this.draw(), tickMs) : null;
    this.ticker?.unref();
  }

  update(progress: SendProgress): void {
    this.last = progress;
    if (progress.retrying !== null || this.now() - this.drawnAt >= this.intervalMs) this.draw();
  }

  /** A whole line above the progress line (a rejected message, say). */
  log(line: string): void {
    this.write(`${this.shown ? CLEAR_LINE : ''}${line}\n`);
    this.shown = false;
    this.draw();
  }

  /** Removes the progress line and stops redrawing. */
  done(): void {
    if (this.ticker !== null) clearInterval(this.ticker);
    if (this.shown) this.write(CLEAR_LINE);
    this.shown = false;
    this.last = null;
  }

  private draw(): void {
    if (this.last === null) return;
    const now = this.now();
    const width = this.width();
    this.write(`${CLEAR_LINE}${renderProgress(this.last, now, width === undefined ? undefined : width - 1)}`);
    this.drawnAt = now;
    this.shown = true;
  }
}
