import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, inflateSync } from 'node:zlib';
import snappy from 'snappyjs';
import type { LokiConfig } from '../../src/config/config.js';
import { loadConfig } from '../../src/config/load.js';
import { parseLabelSet } from '../../src/sinks/loki/label-text.js';

/**
 * A stand-in for Grafana Loki's push API, faithful on the wire and checked against a real
 * Loki 3.4.6 (test/integration/loki-real.test.ts runs the same pushes against both; each rule
 * below that differs from a first guess says what the real one answered):
 * - POST /loki/api/v1/push decodes snappy-compressed (block format) protobuf per
 *   grafana/loki pkg/push/push.proto — with its own hand-written wire reader, independent of
 *   the sink's protobufjs encoder — and the JSON push format. Any Content-Type but
 *   application/json is read as protobuf; no Content-Type, an unknown Content-Encoding or a body
 *   it cannot decode is a 400; a push with no stream is a 422.
 * - A label set that does not parse refuses the whole push (400 "couldn't parse labels: …").
 * - Validates like Loki's distributor (label count ≤ 15 not counting service_name, name ≤ 1024
 *   and value ≤ 2048 bytes, no duplicate name; timestamps too old/too new; line ≤ 256 KiB;
 *   structured metadata allowed, ≤ 128 pairs and ≤ 64 KiB), adds `service_name` and, as
 *   structured metadata, `detected_level`, then appends like an ingester (per stream, an entry
 *   more than 1 h behind the newest is "too far behind"; exact duplicates — same stream,
 *   timestamp and line, whatever the metadata — are dropped silently). Valid entries are stored.
 * - Answers like Loki 3.4.6, flaws included: the ingester's refusals are reported for the last
 *   stream of the push only (an entry refused in an earlier stream is dropped while the push is
 *   answered 204 if the last stream went in); a push with ingester refusals is answered with
 *   those alone, hiding the distributor's; otherwise a 400 lists every distributor problem.
 * - A push whose valid lines exceed the ingestion burst (6 MB) is refused whole with a 429.
 * - GET /ready answers 200 "ready" (or 503 when set not ready).
 * - Records tenant (X-Scope-OrgID) and Authorization headers of every request.
 * - Injects faults on demand: an answer with any status (429 + Retry-After, 500, 413…), a slow
 *   answer, a connection reset (after storing or not), and a full outage: `down()` cuts every
 *   open connection and every new one until `up()`. (The port stays bound during an outage, so
 *   no other test can take it and the stand-in is sure to come back on it.)
 */

export interface StandinOptions {
  /** The stand-in's clock, ms since the epoch. */
  readonly now?: () => number;
  /** reject_old_samples_max_age; null accepts any age. Default 7 days. */
  readonly maxAgeMs?: number | null;
  /** creation_grace_period. Default 10 minutes. */
  readonly creationGraceMs?: number;
  /** max_line_size. Default 256 KiB. */
  readonly maxLineBytes?: number;
  readonly maxLabelNames?: number;
  /** Half of max_chunk_age: how far behind the newest entry of its stream an entry may be. Default 1 h. */
  readonly outOfOrderWindowMs?: number;
  readonly allowStructuredMetadata?: boolean;
  /** Adds service_name (Loki 3 default). Default true. */
  readonly discoverServiceName?: boolean;
  /** Adds detected_level structured metadata (Loki 3 default, with structured metadata allowed). Default true. */
  readonly discoverLogLevels?: boolean;
  /** ingestion_burst_size_mb: a push with more valid line bytes is refused (429). Default 6 MB. */
  readonly ingestionBurstBytes?: number;
  /** 413 for bodies over this size (a proxy's client_max_body_size). */
  readonly maxBodyBytes?: number;
  /** When set, requests without this basic auth get 401. */
  readonly basicAuth?: { readonly username: string; readonly password: string };
}

export type Fault =
  /** Handles the push normally (to place a fault on a later push). */
  | { readonly kind: 'none' }
  | { readonly kind: 'status'; readonly status: number; readonly body?: string; readonly retryAfter?: string }
  /** Waits before handling the push normally (a slow Loki). */
  | { readonly kind: 'delay'; readonly ms: number }
  /** Destroys the connection without an answer; with `store`, after storing the push (the answer is lost). */
  | { readonly kind: 'reset'; readonly store?: boolean };

export interface StoredEntry {
  readonly tenant: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly stream: string;
  readonly tsNs: bigint;
  readonly line: string;
  readonly metadata: Readonly<Record<string, string>>;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly tenant: string | null;
  readonly authorization: string | null;
  readonly contentType: string | null;
  readonly contentEncoding: string | null;
  readonly bytes: number;
  status: number | null;
  /** Entries in the push, once decoded. */
  entries: number;
}

interface DecodedEntry {
  readonly tsNs: bigint;
  readonly line: string;
  readonly metadata: ReadonlyArray<readonly [string, string]>;
}

interface DecodedStream {
  /** The label text as sent (protobuf), or built from the JSON map. */
  readonly labels: string;
  readonly entries: readonly DecodedEntry[];
}

interface StreamState {
  readonly labels: Record<string, string>;
  readonly text: string;
  readonly keys: Set<string>;
  readonly entries: StoredEntry[];
  highest: bigint;
  /** The last entry appended (timestamp and line): Loki skips a repeat of it before any other check. */
  last: string | null;
}

/** Where Loki 3.4.6 takes service_name from, first found wins (tried pair by pair on the real one). */
const SERVICE_NAME_SOURCES = ['service', 'app', 'application', 'app_name', 'name', 'app_kubernetes_io_name', 'container', 'container_name', 'k8s_container_name', 'component', 'workload', 'job', 'k8s_job_name'];
const NS_PER_MS = 1_000_000n;
const MAX_METADATA_PAIRS = 128;
const MAX_METADATA_BYTES = 64 * 1024;

export class LokiStandin {
  readonly requests: RecordedRequest[] = [];
  readonly faults: Fault[] = [];
  ready = true;
  private readonly server: http.Server;
  private readonly tenants = new Map<string, Map<string, StreamState>>();
  private port = 0;
  private listening = false;
  private dropping = false;
  private readonly options: Required<Omit<StandinOptions, 'maxBodyBytes' | 'basicAuth' | 'maxAgeMs'>> & StandinOptions;

  private constructor(options: StandinOptions) {
    this.options = {
      now: Date.now,
      creationGraceMs: 10 * 60 * 1000,
      maxLineBytes: 256 * 1024,
      maxLabelNames: 15,
      outOfOrderWindowMs: 60 * 60 * 1000,
      allowStructuredMetadata: true,
      discoverServiceName: true,
      discoverLogLevels: true,
      ingestionBurstBytes: 6 * 1024 * 1024,
      ...options,
    };
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent && !res.destroyed) res.writeHead(500).end();
      });
    });
    this.server.keepAliveTimeout = 60_000;
    this.server.on('connection', (socket) => {
      if (this.dropping) socket.destroy();
    });
  }

  static async start(options: StandinOptions = {}): Promise<LokiStandin> {
    const standin = new LokiStandin(options);
    await standin.up();
    return standin;
  }

  /** Base URL (what LOKI_URL would be). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The end of an outage: connections are accepted again. */
  async up(): Promise<void> {
    this.dropping = false;
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    // A stand-in a failed test forgot to close must not keep the test process alive.
    this.server.unref();
    this.port = (this.server.address() as AddressInfo).port;
    this.listening = true;
  }

  /** An outage: open connections are cut, and every new one is cut on arrival, until `up()`. */
  async down(): Promise<void> {
    this.dropping = true;
    this.server.closeAllConnections();
  }

  /** Closes the port for good. */
  async close(): Promise<void> {
    this.dropping = true;
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Every stored entry (all tenants unless one is named), in arrival order per stream. */
  entries(tenant?: string): StoredEntry[] {
    const out: StoredEntry[] = [];
    for (const [name, streams] of this.tenants) {
      if (tenant !== undefined && name !== tenant) continue;
      for (const s of streams.values()) out.push(...s.entries);
    }
    return out;
  }

  /** Stored streams: their labels and entry counts. */
  streams(tenant?: string): Array<{ readonly labels: Readonly<Record<string, string>>; readonly text: string; readonly entries: number }> {
    const out = [];
    for (const [name, streams] of this.tenants) {
      if (tenant !== undefined && name !== tenant) continue;
      for (const s of streams.values()) out.push({ labels: s.labels, text: s.text, entries: s.entries.length });
    }
    return out;
  }

  /** Push requests received (not /ready). */
  pushes(): RecordedRequest[] {
    return this.requests.filter((r) => r.path === '/loki/api/v1/push');
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const record: RecordedRequest = {
      method: req.method ?? '',
      path,
      tenant: header(req, 'x-scope-orgid'),
      authorization: header(req, 'authorization'),
      contentType: header(req, 'content-type'),
      contentEncoding: header(req, 'content-encoding'),
      bytes: body.length,
      status: null,
      entries: 0,
    };
    this.requests.push(record);
    const answer = (status: number, text = '', headers: Record<string, string> = {}): void => {
      record.status = status;
      if (res.destroyed) return;
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
      res.end(text === '' ? undefined : text.endsWith('\n') ? text : `${text}\n`);
    };
    if (path === '/ready' && req.method === 'GET') {
      if (this.ready) answer(200, 'ready');
      else answer(503, 'Ingester not ready: waiting for 15s after being ready');
      return;
    }
    // Loki 3.4.6 answers a GET on the push path 404 on a fresh start (seen in CI) and 405 with an
    // empty body on a long-running one; the stand-in takes the fresh answer
    if (path !== '/loki/api/v1/push' || req.method !== 'POST') return answer(404, '404 page not found');
    if (!this.authorized(record.authorization)) return answer(401, 'Unauthorized', { 'WWW-Authenticate': 'Basic realm="loki"' });

    let fault = this.faults.shift();
    if (fault?.kind === 'delay') {
      await new Promise((r) => setTimeout(r, fault?.kind === 'delay' ? fault.ms : 0));
      fault = undefined;
    }
    if (fault?.kind === 'status') {
      return answer(fault.status, fault.body ?? defaultFaultBody(fault.status), fault.retryAfter === undefined ? {} : { 'Retry-After': fault.retryAfter });
    }
    if (fault?.kind === 'reset' && fault.store !== true) {
      record.status = 0;
      req.socket.destroy();
      return;
    }
    if (this.options.maxBodyBytes !== undefined && body.length > this.options.maxBodyBytes) {
      return answer(413, `request body too large: ${body.length} bytes, limit: ${this.options.maxBodyBytes} bytes`);
    }
    const decoded = this.decode(body, record.contentType, record.contentEncoding);
    if (decoded.kind === 'error') return answer(decoded.status, decoded.message);
    record.entries = decoded.streams.reduce((n, s) => n + s.entries.length, 0);
    const result = this.ingest(record.tenant ?? 'fake', decoded.streams);
    if (fault?.kind === 'reset') {
      record.status = 0;
      req.socket.destroy();
      return;
    }
    if (result === null) return answer(204);
    return answer(result.status, result.text);
  }

  private authorized(authorization: string | null): boolean {
    const expected = this.options.basicAuth;
    if (expected === undefined) return true;
    const want = `Basic ${Buffer.from(`${expected.username}:${expected.password}`).toString('base64')}`;
    return authorization === want;
  }

  private decode(body: Buffer, contentType: string | null, contentEncoding: string | null): { kind: 'ok'; streams: DecodedStream[] } | { kind: 'error'; status: number; message: string } {
    let raw = body;
    const encoding = (contentEncoding ?? '').trim().toLowerCase();
    try {
      if (encoding === 'gzip') raw = gunzipSync(body);
      else if (encoding === 'deflate') raw = inflateSync(body);
      // Loki 3.4.6 answered `400 Content-Encoding "br" not supported` (not 415).
      else if (encoding !== '' && encoding !== 'snappy') return { kind: 'error', status: 400, message: `Content-Encoding "${contentEncoding}" not supported` };
    } catch (err) {
      return { kind: 'error', status: 400, message: (err as Error).message };
    }
    // Loki 3.4.6: no Content-Type is `400 mime: no media type`; any type but JSON (text/plain
    // too) is read as snappy protobuf, so a wrong one is `400 snappy: corrupt input`, not a 415.
    if (contentType === null || contentType.trim() === '') return { kind: 'error', status: 400, message: 'mime: no media type' };
    const media = contentType.split(';', 1)[0]?.trim().toLowerCase() ?? '';
    try {
      if (media === 'application/json') return { kind: 'ok', streams: decodeJsonPush(raw.toString('utf8')) };
      let plain: Uint8Array;
      try {
        if (!snappyBlockIsWhole(raw)) throw new Error('short');
        plain = snappy.uncompress(new Uint8Array(raw), 64 * 1024 * 1024);
      } catch {
        return { kind: 'error', status: 400, message: 'snappy: corrupt input' };
      }
      return { kind: 'ok', streams: decodeProtoPush(plain) };
    } catch (err) {
      return { kind: 'error', status: 400, message: (err as Error).message };
    }
  }

  /** Distributor validation, then ingester appends; null when Loki would answer 204. */
  private ingest(tenant: string, streams: readonly DecodedStream[]): { status: number; text: string } | null {
    const o = this.options;
    // Loki 3.4.6 answered 422 to a push with no stream, JSON `{"streams":[]}` and empty protobuf alike.
    if (streams.length === 0) return { status: 422, text: 'error at least one valid stream is required for ingestion' };
    // Every label set is parsed before anything is validated or stored: one that does not parse
    // refuses the whole push (Loki 3.4.6, protobuf and JSON alike; the valid streams of that push
    // were not stored either).
    const parsedSets: Array<Array<readonly [string, string]>> = [];
    for (const stream of streams) {
      const parsed = parseLabelText(stream.labels);
      if (typeof parsed === 'string') return { status: 400, text: `couldn't parse labels: ${parsed}` };
      parsedSets.push(parsed);
    }
    const nowNs = BigInt(Math.floor(o.now())) * NS_PER_MS;
    // Unset is Loki's default, 7 days (the option's doc always said so; it used to accept any age).
    const maxAgeMs = o.maxAgeMs === undefined ? 7 * 24 * 3_600_000 : o.maxAgeMs;
    const oldestNs = maxAgeMs === null ? null : nowNs - BigInt(maxAgeMs) * NS_PER_MS;
    const newestNs = nowNs + BigInt(o.creationGraceMs) * NS_PER_MS;
    const errors: string[] = [];
    const accepted: Array<{ labels: Record<string, string>; text: string; entries: DecodedEntry[] }> = [];
    let validLineBytes = 0;
    let validLines = 0;
    streams.forEach((stream, i) => {
      if (stream.entries.length === 0) return;
      const parsed = validateLabels(parsedSets[i] ?? [], o.maxLabelNames, o.discoverServiceName);
      if (typeof parsed === 'string') {
        errors.push(parsed);
        return;
      }
      const valid: DecodedEntry[] = [];
      for (const entry of stream.entries) {
        const problem = this.entryProblem(entry, parsed.text, oldestNs, newestNs);
        if (problem !== null) {
          errors.push(problem);
          continue;
        }
        validLineBytes += Buffer.byteLength(entry.line);
        validLines++;
        valid.push(o.allowStructuredMetadata && o.discoverLogLevels ? withDetectedLevel(entry, parsed.labels) : entry);
      }
      if (valid.length > 0) accepted.push({ labels: parsed.labels, text: parsed.text, entries: valid });
    });
    if (validLineBytes > o.ingestionBurstBytes) {
      // Refused whole, before anything is stored; Loki 3.4.6 sends no Retry-After with it.
      return {
        status: 429,
        text: `Ingestion rate limit exceeded for user ${tenant} (limit: 4194304 bytes/sec) while attempting to ingest '${validLines}' lines totaling '${validLineBytes}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased`,
      };
    }
    let streamsOfTenant = this.tenants.get(tenant);
    if (streamsOfTenant === undefined) {
      streamsOfTenant = new Map();
      this.tenants.set(tenant, streamsOfTenant);
    }
    // The ingester. Like Loki 3.4.6's, its answer is that of the last stream of the push: a
    // stream that went in clears the refusals of the streams before it.
    let ingesterError: string | null = null;
    const windowNs = BigInt(o.outOfOrderWindowMs) * NS_PER_MS;
    for (const s of accepted) {
      let state = streamsOfTenant.get(s.text);
      if (state === undefined) {
        state = { labels: s.labels, text: s.text, keys: new Set(), entries: [], highest: -1n, last: null };
        streamsOfTenant.set(s.text, state);
      }
      const failed: string[] = [];
      for (const entry of s.entries) {
        const key = `${entry.tsNs}\u0000${entry.line}`;
        if (key === state.last) continue;
        if (state.highest >= 0n && entry.tsNs < state.highest - windowNs) {
          failed.push(
            `entry with timestamp ${goTimeString(entry.tsNs)} ignored, reason: 'entry too far behind, entry timestamp is: ${rfc3339(entry.tsNs)}, oldest acceptable timestamp is: ${rfc3339(state.highest - windowNs)}',`,
          );
          continue;
        }
        state.last = key;
        if (entry.tsNs > state.highest) state.highest = entry.tsNs;
        if (state.keys.has(key)) continue;
        state.keys.add(key);
        state.entries.push({ tenant, labels: s.labels, stream: s.text, tsNs: entry.tsNs, line: entry.line, metadata: Object.fromEntries(entry.metadata) });
      }
      ingesterError = failed.length === 0 ? null : `${failed.slice(0, 10).join('\n')}\nuser '${tenant}', total ignored: ${failed.length} out of ${s.entries.length} for stream: ${s.text}`;
    }
    if (ingesterError !== null) return { status: 400, text: ingesterError };
    return errors.length === 0 ? null : { status: 400, text: groupErrors(errors) };
  }

  /** The distributor's objection to one entry, in Loki's words, or null. */
  private entryProblem(entry: DecodedEntry, stream: string, oldestNs: bigint | null, newestNs: bigint): string | null {
    const o = this.options;
    if (oldestNs !== null && entry.tsNs < oldestNs) return `entry for stream '${stream}' has timestamp too old: ${rfc3339(entry.tsNs)}, oldest acceptable timestamp is: ${rfc3339(oldestNs)}`;
    if (entry.tsNs > newestNs) return `entry for stream '${stream}' has timestamp too new: ${rfc3339(entry.tsNs)}`;
    const lineBytes = Buffer.byteLength(entry.line);
    if (lineBytes > o.maxLineBytes) return `Max entry size '${o.maxLineBytes}' bytes exceeded for stream '${stream}' while adding an entry with length '${lineBytes}' bytes`;
    if (entry.metadata.length === 0) return null;
    if (!o.allowStructuredMetadata) {
      return `stream '${stream}' includes structured metadata, but this feature is disallowed. Please see \`limits_config.allow_structured_metadata\` or contact your Loki administrator to enable it.`;
    }
    // Both texts as Loki 3.4.6 wrote them; the size counts names and values (70003 for one pair 'big' of 70000 bytes).
    const metadataBytes = entry.metadata.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
    if (metadataBytes > MAX_METADATA_BYTES) {
      return `stream '${stream}' has structured metadata too large: '${metadataBytes}' bytes, limit: '${MAX_METADATA_BYTES}' bytes. Please see \`limits_config.max_structured_metadata_size\` or contact your Loki administrator to increase it.`;
    }
    if (entry.metadata.length > MAX_METADATA_PAIRS) {
      return `stream '${stream}' has too many structured metadata labels: '${entry.metadata.length}', limit: '${MAX_METADATA_PAIRS}'. Please see \`limits_config.max_structured_metadata_entries_count\` or contact your Loki administrator to increase it.`;
    }
    return null;
  }
}

function header(req: http.IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  return typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : null;
}

function defaultFaultBody(status: number): string {
  if (status === 429) return "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while attempting to ingest '100' lines totaling '10000' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased";
  if (status === 413) return 'request body too large';
  if (status >= 500) return 'rpc error: code = Unavailable desc = at least 1 live replicas required, could only find 0';
  return `error ${status}`;
}

/** util.GroupedErrors: identical messages once, "N errors like: " when there are several, "; " between. */
function groupErrors(errors: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const e of errors) counts.set(e, (counts.get(e) ?? 0) + 1);
  const parts = [];
  for (const [message, n] of counts) parts.push(counts.size > 1 || n > 1 ? `${n} errors like: ${message}` : message);
  return parts.join('; ');
}

/**
 * Whether a snappy block's elements produce exactly the length its header declares (snappyjs
 * does not check; Go's decoder, Loki's, answers "snappy: corrupt input" — e.g. to the body `x`).
 */
function snappyBlockIsWhole(block: Uint8Array): boolean {
  let pos = 0;
  let declared = 0;
  for (let shift = 0; ; shift += 7) {
    if (pos >= block.length || shift > 28) return false;
    const b = block[pos++] as number;
    declared += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
  }
  let produced = 0;
  while (pos < block.length) {
    const tag = block[pos++] as number;
    const kind = tag & 3;
    if (kind === 0) {
      let len = tag >> 2;
      if (len >= 60) {
        const extra = len - 59;
        if (pos + extra > block.length) return false;
        len = 0;
        for (let i = 0; i < extra; i++) len += (block[pos + i] as number) * 2 ** (8 * i);
        pos += extra;
      }
      produced += len + 1;
      pos += len + 1;
      if (pos > block.length) return false;
    } else {
      const offsetBytes = kind === 1 ? 1 : kind === 2 ? 2 : 4;
      if (pos + offsetBytes > block.length) return false;
      pos += offsetBytes;
      produced += kind === 1 ? ((tag >> 2) & 7) + 4 : (tag >> 2) + 1;
    }
    if (produced > declared) return false;
  }
  return produced === declared;
}

// --- labels ---------------------------------------------------------------------------------

/**
 * A label set as Loki reads it from a push: `{name="value", …}`, names plain, values in Go
 * string syntax, in any order and with duplicates kept (validation refuses those). A string is
 * the parser's complaint, `<line>:<column>: parse error: …`; for a `-` in a name Loki 3.4.6
 * wrote exactly `1:5: parse error: unexpected character inside braces: '-'` (for `{bad-name=…`).
 */
function parseLabelText(text: string): Array<readonly [string, string]> | string {
  const pairs: Array<readonly [string, string]> = [];
  const fail = (at: number, what: string): string => `1:${at + 1}: parse error: ${what}`;
  let i = skipBlanks(text, 0);
  if (text.charAt(i) !== '{') return fail(i, i < text.length ? `unexpected character: '${text.charAt(i)}'` : 'unexpected end of input');
  i = skipBlanks(text, i + 1);
  if (text.charAt(i) === '}') return skipBlanks(text, i + 1) === text.length ? pairs : fail(i + 1, 'unexpected character after label set');
  for (;;) {
    const nameStart = i;
    if (!/[a-zA-Z_]/.test(text.charAt(i))) return fail(i, `unexpected character inside braces: '${text.charAt(i)}'`);
    while (i < text.length && /[a-zA-Z0-9_]/.test(text.charAt(i))) i++;
    const name = text.slice(nameStart, i);
    i = skipBlanks(text, i);
    if (text.charAt(i) !== '=') return fail(i, `unexpected character inside braces: '${text.charAt(i)}'`);
    i = skipBlanks(text, i + 1);
    if (text.charAt(i) !== '"') return fail(i, 'unexpected character: expected a quoted string');
    let end = i + 1;
    while (end < text.length && text.charAt(end) !== '"') end += text.charAt(end) === '\\' ? 2 : 1;
    if (end >= text.length) return fail(i, 'unterminated quoted string');
    // The Go unquoting itself is the sink's own reader's (label-text.ts); the structure above is not.
    const value = parseLabelSet(`{x=${text.slice(i, end + 1)}}`)?.labels.get('x');
    if (value === undefined) return fail(i, `invalid quoted string ${text.slice(i, end + 1)}`);
    pairs.push([name, value]);
    i = skipBlanks(text, end + 1);
    if (text.charAt(i) === '}') return skipBlanks(text, i + 1) === text.length ? pairs : fail(i + 1, 'unexpected character after label set');
    if (text.charAt(i) !== ',') return fail(i, `unexpected character inside braces: '${text.charAt(i)}'`);
    i = skipBlanks(text, i + 1);
  }
}

function skipBlanks(text: string, i: number): number {
  while (i < text.length && /\s/.test(text.charAt(i))) i++;
  return i;
}

/**
 * Validates a parsed label set like the distributor and gives the stream's labels and text:
 * empty values dropped, service_name added, names sorted — the text Loki writes in its answers
 * (`{host="h", service_name="unknown_service", source="s"}`). A string is Loki's objection.
 */
function validateLabels(pairs: ReadonlyArray<readonly [string, string]>, maxNames: number, discoverServiceName: boolean): { labels: Record<string, string>; text: string } | string {
  const kept = pairs.filter(([, value]) => value !== '');
  if (discoverServiceName && !kept.some(([name]) => name === 'service_name')) {
    // Loki 3.4.6 stored `{}` (and `{source=""}`) as {service_name="unknown_service"}.
    const from = SERVICE_NAME_SOURCES.map((n) => kept.find(([name]) => name === n)).find((p) => p !== undefined);
    kept.push(['service_name', from === undefined ? 'unknown_service' : from[1]]);
  }
  if (kept.length === 0) return 'error at least one label pair is required per stream';
  const sorted = [...kept].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const text = `{${sorted.map(([n, v]) => `${n}=${JSON.stringify(v)}`).join(', ')}}`;
  // 15 user labels and service_name went in; 16 did not ("has 16 label names; limit 15").
  const counted = sorted.filter(([name]) => name !== 'service_name').length;
  if (counted > maxNames) return `entry for stream '${text}' has ${counted} label names; limit ${maxNames}`;
  let previous: string | null = null;
  for (const [name, value] of sorted) {
    if (name.length > 1024) return `stream '${text}' has label name too long: '${name}'`;
    if (Buffer.byteLength(value) > 2048) return `stream '${text}' has label value too long: '${value}'`;
    if (name === previous) return `stream '${text}' has duplicate label name: '${name}'`;
    previous = name;
  }
  return { labels: Object.fromEntries(sorted), text };
}

// --- detected_level -------------------------------------------------------------------------

const LEVEL_FIELDS = new Set(['level', 'LEVEL', 'Level', 'severity', 'SEVERITY', 'Severity', 'lvl', 'LVL', 'Lvl']);
/** Level words in a JSON or logfmt value, any case. */
const LEVEL_WORDS: Readonly<Record<string, string>> = { trace: 'trace', trc: 'trace', debug: 'debug', dbg: 'debug', info: 'info', inf: 'info', information: 'info', warn: 'warn', wrn: 'warn', warning: 'warn', error: 'error', err: 'error', critical: 'critical', fatal: 'fatal' };
const LEVEL_KEY_RE = /"(?:level|LEVEL|Level|severity|SEVERITY|Severity|lvl|LVL|Lvl)"\s*:/;
/** Words searched in the line otherwise, case-sensitive, first rule that matches wins. */
const LINE_WORDS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['info', ['info', 'INFO']],
  ['error', ['error', 'ERROR', 'err:', 'ERR:', '[err]', '[ERR]']],
  ['warn', ['warning', 'WARNING', 'warn:', 'WARN:', '[warn]', '[WARN]']],
  ['critical', ['critical:', 'CRITICAL:', '[critical]', '[CRITICAL]']],
  ['debug', ['debug:', 'DEBUG:', '[debug]', '[DEBUG]']],
];

/**
 * The entry with `detected_level` in its structured metadata, as Loki 3.4.6 adds it to every
 * entry (a value the client sent under that name is replaced). What the real one answered:
 * a level label (`severity="crit"`) or metadata pair is taken as it is (`crit`, `Error`, `WARN`);
 * a JSON line's string field `level`/`severity`/`lvl` (nested too), or a logfmt key, is
 * normalised (`WARNING` → warn, `dbg` → debug, `information` → info, `err` → error); other lines
 * are searched for words (`x error y` → error, but `x Error y`, `x warn y`, `x debug` → unknown);
 * else `unknown`.
 */
function withDetectedLevel(entry: DecodedEntry, labels: Readonly<Record<string, string>>): DecodedEntry {
  const metadata = entry.metadata.filter(([name]) => name !== 'detected_level');
  const fromLabel = Object.keys(labels).find((name) => LEVEL_FIELDS.has(name));
  const fromMetadata = metadata.find(([name]) => LEVEL_FIELDS.has(name));
  const level = fromLabel !== undefined ? (labels[fromLabel] as string) : fromMetadata !== undefined ? fromMetadata[1] : levelOfLine(entry.line);
  return { ...entry, metadata: [...metadata, ['detected_level', level]] };
}

function levelOfLine(line: string): string {
  const text = line.trim();
  let found: string | null = null;
  if (text.startsWith('{') && text.endsWith('}')) {
    // Parsed only when a level key is there at all: the benches push through this stand-in.
    if (!LEVEL_KEY_RE.test(text)) return levelOfWords(line);
    try {
      found = levelInJson(JSON.parse(text) as unknown);
    } catch {
      found = null;
    }
  } else if (text.includes('=')) {
    for (const m of text.matchAll(/(?:^|\s)([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
      if (LEVEL_FIELDS.has(m[1] as string) || [...LEVEL_FIELDS].some((f) => f.toLowerCase() === (m[1] as string).toLowerCase())) {
        found = (m[2] as string).replace(/^"|"$/g, '');
        break;
      }
    }
  }
  const word = found === null ? undefined : LEVEL_WORDS[found.toLowerCase()];
  return word ?? levelOfWords(line);
}

function levelOfWords(line: string): string {
  return LINE_WORDS.find(([, words]) => words.some((w) => line.includes(w)))?.[0] ?? 'unknown';
}

function levelInJson(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v === 'string' && LEVEL_FIELDS.has(key)) return v;
    const nested = levelInJson(v);
    if (nested !== null) return nested;
  }
  return null;
}

/** Go's time.Format(time.RFC3339) in UTC: to the second, truncated. */
function rfc3339(ns: bigint): string {
  const ms = Number(ns / NS_PER_MS);
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Go's time.Time.String() in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`. */
function goTimeString(ns: bigint): string {
  const seconds = ns / 1_000_000_000n;
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19).replace('T', ' ');
  return `${base}${frac === '' ? '' : `.${frac}`} +0000 UTC`;
}

// --- JSON push format ---------------------------------------------------------------------

/**
 * Loki's JSON push. Error texts are ours (Loki's come from its JSON library: an empty body is
 * `EOF`, a bad one `readObjectStart: expect { or n, but found g, …`), the statuses Loki's: 400.
 * A body without streams is no error here (the caller answers 422, as Loki 3.4.6 did for
 * `{"foo":1}` and `{"streams":[]}`); a value with more than three elements went in on Loki 3.4.6.
 */
function decodeJsonPush(text: string): DecodedStream[] {
  if (text.trim() === '') throw new Error('EOF');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new Error(`loghttp.PushRequest.Streams: ReadObject: ${(err as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('loghttp.PushRequest: expect { or n');
  const streams = (body as { streams?: unknown }).streams ?? [];
  if (!Array.isArray(streams)) throw new Error('loghttp.PushRequest: "streams" must be an array');
  return streams.map((s: unknown) => {
    const stream = (s as { stream?: unknown }).stream;
    const values = (s as { values?: unknown }).values;
    if (typeof stream !== 'object' || stream === null || Array.isArray(stream)) throw new Error('loghttp.Stream: "stream" must be an object of labels');
    if (!Array.isArray(values)) throw new Error('loghttp.Stream: "values" must be an array');
    const pairs = Object.entries(stream as Record<string, unknown>).map(([k, v]) => {
      if (typeof v !== 'string') throw new Error(`loghttp.Stream: label ${k} must be a string`);
      return [k, v] as const;
    });
    pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const labels = `{${pairs.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}}`;
    const entries = values.map((v: unknown): DecodedEntry => {
      if (!Array.isArray(v) || v.length < 2) throw new Error('loghttp.Entry: a value must be [timestamp, line] or [timestamp, line, metadata]');
      const [ts, line, meta] = v as [unknown, unknown, unknown];
      if (typeof ts !== 'string' || !/^\d{1,19}$/.test(ts)) throw new Error(`loghttp.Entry: could not parse timestamp ${JSON.stringify(ts)}`);
      if (typeof line !== 'string') throw new Error('loghttp.Entry: the line must be a string');
      const metadata: Array<readonly [string, string]> = [];
      if (meta !== undefined) {
        if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new Error('loghttp.Entry: structured metadata must be an object');
        for (const [k, mv] of Object.entries(meta as Record<string, unknown>)) {
          if (typeof mv !== 'string') throw new Error(`loghttp.Entry: structured metadata ${k} must be a string`);
          metadata.push([k, mv]);
        }
      }
      return { tsNs: BigInt(ts), line, metadata };
    });
    return { labels, entries };
  });
}

// --- protobuf wire format (push.proto), read by hand ---------------------------------------

const utf8 = new TextDecoder();

class WireReader {
  constructor(
    private readonly buf: Uint8Array,
    public pos = 0,
    readonly end = buf.length,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error('proto: unexpected EOF');
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result & 0xffff_ffff_ffff_ffffn;
      shift += 7n;
    }
    throw new Error('proto: integer overflow');
  }

  tag(): { field: number; wire: number } {
    const t = Number(this.varint());
    return { field: t >>> 3, wire: t & 7 };
  }

  sub(): WireReader {
    const len = Number(this.varint());
    if (this.pos + len > this.end) throw new Error('proto: unexpected EOF');
    const reader = new WireReader(this.buf, this.pos, this.pos + len);
    this.pos += len;
    return reader;
  }

  string(): string {
    const r = this.sub();
    return utf8.decode(this.buf.subarray(r.pos, r.end));
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.sub();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`proto: illegal wireType ${wire}`);
    if (this.pos > this.end) throw new Error('proto: unexpected EOF');
  }
}

function expectWire(actual: number, expected: number, what: string): void {
  if (actual !== expected) throw new Error(`proto: wrong wireType = ${actual} for field ${what}`);
}

function decodeProtoPush(buf: Uint8Array): DecodedStream[] {
  const r = new WireReader(buf);
  const streams: DecodedStream[] = [];
  while (!r.done) {
    const { field, wire } = r.tag();
    if (field === 1) {
      expectWire(wire, 2, 'Streams');
      streams.push(decodeStream(r.sub()));
    } else r.skip(wire);
  }
  return streams;
}

function decodeStream(r: WireReader): DecodedStream {
  let labels = '';
  const entries: DecodedEntry[] = [];
  while (!r.done) {
    const { field, wire } = r.tag();
    if (field === 1) {
      expectWire(wire, 2, 'Labels');
      labels = r.string();
    } else if (field === 2) {
      expectWire(wire, 2, 'Entries');
      entries.push(decodeEntry(r.sub()));
    } else r.skip(wire); // 3: hash
  }
  return { labels, entries };
}

function decodeEntry(r: WireReader): DecodedEntry {
  let seconds = 0n;
  let nanos = 0n;
  let line = '';
  const metadata: Array<readonly [string, string]> = [];
  while (!r.done) {
    const { field, wire } = r.tag();
    if (field === 1) {
      expectWire(wire, 2, 'Timestamp');
      const t = r.sub();
      while (!t.done) {
        const tt = t.tag();
        if (tt.field === 1) seconds = BigInt.asIntN(64, t.varint());
        else if (tt.field === 2) nanos = BigInt.asIntN(32, t.varint());
        else t.skip(tt.wire);
      }
    } else if (field === 2) {
      expectWire(wire, 2, 'Line');
      line = r.string();
    } else if (field === 3) {
      expectWire(wire, 2, 'StructuredMetadata');
      const p = r.sub();
      let name = '';
      let value = '';
      while (!p.done) {
        const pt = p.tag();
        if (pt.field === 1) name = p.string();
        else if (pt.field === 2) value = p.string();
        else p.skip(pt.wire);
      }
      metadata.push([name, value]);
    } else r.skip(wire);
  }
  if (nanos < 0n || nanos > 999_999_999n) throw new Error(`proto: invalid timestamp nanos ${nanos}`);
  return { tsNs: seconds * 1_000_000_000n + nanos, line, metadata };
}

/** The Loki config a user would get with LOKI_URL pointing at `url`, with test overrides. */
export function lokiConfigFor(url: string, overrides: Partial<LokiConfig> = {}): LokiConfig {
  return { ...loadConfig({ LOKI_ENABLED: 'true', LOKI_URL: url }).loki, ...overrides };
}

/** The event id a JSON line carries (`_id`), or null. */
export function idOf(entry: { readonly line: string }): string | null {
  try {
    const parsed = JSON.parse(entry.line) as Record<string, unknown>;
    return typeof parsed['_id'] === 'string' ? parsed['_id'] : null;
  } catch {
    return null;
  }
}

/** Entries grouped by the event id in their line (`_id`), stand-in or real Loki alike; an entry without one fails the test. */
export function entriesById<E extends { readonly line: string }>(entries: readonly E[]): Map<string, E[]> {
  const map = new Map<string, E[]>();
  for (const e of entries) {
    const id = idOf(e);
    if (id === null) throw new Error(`line without _id: ${e.line.slice(0, 80)}`);
    map.set(id, [...(map.get(id) ?? []), e]);
  }
  return map;
}

/** Loki test files' common time units and per-test deadline (a hang fails the test that hung instead of stalling the run). */
export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
export const LOKI_TEST = { timeout: 30_000 } as const;
