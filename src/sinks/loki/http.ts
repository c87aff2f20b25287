import type { LokiConfig } from '../../config/config.js';
import { redactUrl } from '../../config/describe.js';
import { VERSION } from '../../lib/version.js';

/** Where and how to reach Loki, resolved once from the config. */
export interface LokiTarget {
  readonly pushUrl: string;
  readonly readyUrl: string;
  /** X-Scope-OrgID, Authorization, User-Agent. Holds a secret: never log it. */
  readonly headers: Readonly<Record<string, string>>;
  /** The base URL without any password, for logs and /health. */
  readonly shown: string;
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

const PUSH_PATH = '/loki/api/v1/push';
/** An error answer's body is only read this far: Loki's are short; a proxy's HTML page need not be read whole. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * The push and ready URLs from LOKI_URL (a base such as `https://logs.example/loki-gw`; a URL
 * already ending in /loki/api/v1/push is accepted too). `fetch` refuses URLs with credentials,
 * so user:password in the URL move to the Authorization header, unless LOKI_USERNAME is set.
 */
export function resolveTarget(config: Pick<LokiConfig, 'url' | 'tenantId' | 'username' | 'password'>): LokiTarget {
  const url = new URL(config.url);
  const urlUser = decodeURIComponent(url.username);
  const urlPassword = decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  let base = url.toString().replace(/\/+$/, '');
  if (base.endsWith(PUSH_PATH)) base = base.slice(0, -PUSH_PATH.length);
  const headers: Record<string, string> = { 'User-Agent': `edgebot-mothership/${VERSION}` };
  if (config.tenantId !== null && config.tenantId !== '') headers['X-Scope-OrgID'] = config.tenantId;
  const user = config.username ?? (urlUser === '' ? null : urlUser);
  const password = config.username !== null ? (config.password ?? '') : urlPassword;
  if (user !== null) headers['Authorization'] = `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
  return { pushUrl: base + PUSH_PATH, readyUrl: `${base}/ready`, headers, shown: redactUrl(base) };
}

/** What came back from one HTTP exchange. */
export type HttpResult =
  | { readonly kind: 'answer'; readonly status: number; readonly retryAfter: string | null; readonly body: string }
  | {
      readonly kind: 'failed';
      /** Our deadline passed (as opposed to the caller aborting, or a network error). */
      readonly timedOut: boolean;
      readonly aborted: boolean;
      /** A short description: an errno code (ECONNREFUSED…) or the error message. */
      readonly reason: string;
    };

export interface ExchangeOptions {
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Uint8Array;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  readonly fetch: FetchLike;
}

/** One request with a deadline; never throws. Redirects are not followed (a POST must not turn into a GET). */
export async function exchange(options: ExchangeOptions): Promise<HttpResult> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([options.signal, deadline]);
  try {
    const init: RequestInit = { method: options.method, headers: options.headers, signal, redirect: 'manual' };
    if (options.body !== undefined) init.body = options.body;
    const response = await options.fetch(options.url, init);
    const body = await readLimited(response, MAX_ANSWER_BYTES);
    return { kind: 'answer', status: response.status, retryAfter: response.headers.get('retry-after'), body };
  } catch (err) {
    return {
      kind: 'failed',
      timedOut: deadline.aborted && !options.signal.aborted,
      aborted: options.signal.aborted,
      reason: networkReason(err),
    };
  }
}

async function readLimited(response: Response, maxBytes: number): Promise<string> {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
      if (size >= maxBytes) {
        await reader.cancel().catch(() => undefined);
        break;
      }
    }
  } finally {
    reader.releaseLock();
  }
  return Buffer.concat(chunks).subarray(0, maxBytes).toString('utf8');
}

/** `ECONNREFUSED`, `ECONNRESET`, `UND_ERR_SOCKET`… from undici's error chain, else the message. */
export function networkReason(err: unknown): string {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (typeof e === 'object' && 'code' in e && typeof e.code === 'string') return e.code;
    if (e instanceof AggregateError) {
      const inner = e.errors.map(networkReason).find((r) => /^[A-Z_]+$/.test(r));
      if (inner !== undefined) return inner;
    }
    e = typeof e === 'object' && 'cause' in e ? e.cause : undefined;
  }
  return err instanceof Error ? err.message : String(err);
}
