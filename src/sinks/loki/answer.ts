import { MothershipError } from '../../lib/errors.js';
import type { HttpResult } from './http.js';

/** Longest Retry-After we honour; a larger one is most likely a misconfigured proxy. */
export const MAX_RETRY_AFTER_MS = 10 * 60 * 1000;

/**
 * Retry-After as milliseconds from `nowMs`: delay-seconds (`120`; a fraction such as `0.5` is
 * accepted too) or an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`). Undefined when absent or
 * unreadable; a date in the past gives 0; capped at MAX_RETRY_AFTER_MS.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(?:\.\d+)?$/.test(text)) return Math.min(MAX_RETRY_AFTER_MS, Math.round(Number(text) * 1000));
  // An HTTP date always names its zone (GMT), so Date.parse does not guess a local time.
  if (!/[a-z]{3},?\s+\d{1,2}[\s-][a-z]{3}[\s-]\d{2,4}\s+\d{2}:\d{2}:\d{2}\s+gmt$/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (!Number.isFinite(at)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, at - nowMs));
}

/** What one push's HTTP result means for its entries. */
export type PushVerdict =
  | { readonly kind: 'stored' }
  /** 400: Loki stored the valid entries; the body lists the others. */
  | { readonly kind: 'partial'; readonly body: string }
  /** 413: the push is too large for Loki or a proxy in front of it. */
  | { readonly kind: 'too_large'; readonly body: string }
  | { readonly kind: 'retry'; readonly error: MothershipError; readonly retryAfterMs?: number }
  /** Refused for good as a whole (another 4xx). */
  | { readonly kind: 'refused'; readonly error: MothershipError };

/**
 * 2xx stored; 400 partial; 413 too large; 408, 429 and 5xx (but 501) retry, with Retry-After;
 * network errors and timeouts retry; 501 and other 4xx refused. A 1xx/3xx (a redirect: LOKI_URL
 * points at the wrong place) is retried, so the data waits in the spool while an operator
 * fixes the URL.
 */
export function classifyAnswer(result: HttpResult, nowMs: number, shown: string): PushVerdict {
  if (result.kind === 'failed') {
    if (result.timedOut) return { kind: 'retry', error: new MothershipError('sink_timeout', `loki: ${shown} did not answer in time`) };
    if (result.aborted) return { kind: 'retry', error: new MothershipError('sink_unavailable', 'loki: the push was abandoned (stopping)') };
    return { kind: 'retry', error: new MothershipError('sink_unavailable', `loki: ${shown} is unreachable (${result.reason})`) };
  }
  const { status } = result;
  if (status >= 200 && status < 300) return { kind: 'stored' };
  const excerpt = bodyExcerpt(result.body);
  if (status === 400) return { kind: 'partial', body: result.body };
  if (status === 413) return { kind: 'too_large', body: result.body };
  if (status === 408 || status === 429 || (status >= 500 && status !== 501)) {
    const retryAfterMs = parseRetryAfter(result.retryAfter, nowMs);
    const error = new MothershipError(status === 429 ? 'sink_rate_limited' : 'sink_unavailable', `loki answered ${status}${excerpt}`, retryAfterMs === undefined ? undefined : { retryAfterSeconds: Math.ceil(retryAfterMs / 1000) });
    return retryAfterMs === undefined ? { kind: 'retry', error } : { kind: 'retry', error, retryAfterMs };
  }
  if (status >= 400) return { kind: 'refused', error: new MothershipError('loki_rejected', `loki refused the push: ${status}${excerpt}`) };
  return { kind: 'retry', error: new MothershipError('sink_unavailable', `loki answered ${status}${excerpt}; check LOKI_URL (${shown})`) };
}

/** `: first line of the body` (short, one line), or nothing. */
export function bodyExcerpt(body: string): string {
  const line = body.trim().split('\n', 1)[0]?.trim() ?? '';
  if (line === '') return '';
  return `: ${line.length > 300 ? `${line.slice(0, 300)}…` : line}`;
}
