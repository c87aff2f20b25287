import type { SinkHealth } from '../sink.js';
import { bodyExcerpt } from './answer.js';
import { exchange, type FetchLike, type LokiTarget } from './http.js';

export const HEALTH_TIMEOUT_MS = 2_000;

/** `GET {LOKI_URL}/ready` with the push's tenant and auth headers: 200 is healthy, anything else is not. */
export async function probeReady(target: LokiTarget, fetch: FetchLike, timeoutMs: number, signal: AbortSignal): Promise<SinkHealth> {
  const result = await exchange({ method: 'GET', url: target.readyUrl, headers: target.headers, timeoutMs, signal, fetch });
  if (result.kind === 'failed') {
    const why = result.timedOut ? `no answer within ${timeoutMs} ms` : result.reason;
    return { healthy: false, reason: `loki at ${target.shown} is unreachable (${why})` };
  }
  if (result.status === 200) return { healthy: true };
  return { healthy: false, reason: `loki /ready answered ${result.status}${bodyExcerpt(result.body)}` };
}
