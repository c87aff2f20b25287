import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, inflateSync } from 'node:zlib';
import snappy from 'snappyjs';
import type { LokiConfig } from '../../src/config/config.js';
import { loadConfig } from '../../src/config/load.js';
import { parseLabelSet } from '../../src/sinks/loki/label-text.js';

/**
 * A stand-in for Grafana Loki's push API, faithful on the wire:
 * - POST /loki/api/v1/push decodes snappy-compressed (block format) protobuf per
 *   grafana/loki pkg/push/push.proto — with its own hand-written wire reader, independent of
 *   the sink's protobufjs encoder — and the JSON push format; 415 for an unsupported
 *   Content-Type/Encoding, 400 for a body it cannot decode.
 * - Validates like Loki's distributor (label names and count ≤ 15, timestamps too old/too new,
 *   line size ≤ 256 KiB, structured metadata allowed or not), then like an ingester (per stream,
 *   an entry more than 1 h behind the newest is "too far behind"; exact duplicates — same stream,
 *   timestamp and line — are dropped silently). Valid entries are stored; a 400 lists the others
 *   with Loki's own message texts (partial acceptance).
 * - GET /ready answers 200 "ready" (or 503 when set not ready).
 * - Records tenant (X-Scope-OrgID) and Authorization headers of every request.
 * - Injects faults on demand: an answer with any status (429 + Retry-After, 500, 413…), a slow
 *   answer, a connection reset (after storing or not), and a full outage: `down()` cuts every
 *   open connection and every new one until `up()`. (The port stays bound during an outage, so
 *   no other test can take it and the stand-in is sure to come back on it.)
 * Adds `service_name` like Loki 3 does (discover_service_name), unless told not to.
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
}

const SERVICE_NAME_SOURCES = ['service', 'app', 'application', 'name', 'app_kubernetes_io_name', 'container', 'container_name', 'component', 'workload', 'job'];
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const NS_PER_MS = 1_000_000n;

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
    if (path !== '/loki/api/v1/push') return answer(404, '404 page not found');
    if (req.method !== 'POST') return answer(405, 'Method Not Allowed');
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
    return answer(400, result);
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
      else if (encoding !== '' && encoding !== 'snappy') return { kind: 'error', status: 415, message: `Content-Encoding "${contentEncoding}" not supported` };
    } catch (err) {
      return { kind: 'error', status: 400, message: (err as Error).message };
    }
    const media = (contentType ?? '').split(';', 1)[0]?.trim().toLowerCase() ?? '';
    try {
      if (media === 'application/json') return { kind: 'ok', streams: decodeJsonPush(raw.toString('utf8')) };
      if (media === '' || media === 'application/x-protobuf') {
        let plain: Uint8Array;
        try {
          plain = snappy.uncompress(new Uint8Array(raw), 64 * 1024 * 1024);
        } catch (err) {
          return { kind: 'error', status: 400, message: `snappy: corrupt input (${(err as Error).message})` };
        }
        return { kind: 'ok', streams: decodeProtoPush(plain) };
      }
    } catch (err) {
      return { kind: 'error', status: 400, message: (err as Error).message };
    }
    return { kind: 'error', status: 415, message: `unsupported content type: ${contentType ?? ''}` };
  }

  /** Distributor validation, then ingester appends. Null when everything was stored; else Loki's 400 text. */
  private ingest(tenant: string, streams: readonly DecodedStream[]): string | null {
    const o = this.options;
    const nowNs = BigInt(Math.floor(o.now())) * NS_PER_MS;
    const oldestNs = o.maxAgeMs === null || o.maxAgeMs === undefined ? null : nowNs - BigInt(o.maxAgeMs) * NS_PER_MS;
    const newestNs = nowNs + BigInt(o.creationGraceMs) * NS_PER_MS;
    const errors: string[] = [];
    const accepted: Array<{ labels: Record<string, string>; text: string; entries: DecodedEntry[] }> = [];
    for (const stream of streams) {
      if (stream.entries.length === 0) continue;
      const parsed = parseStreamLabels(stream.labels, o.maxLabelNames, o.discoverServiceName);
      if (typeof parsed === 'string') {
        errors.push(parsed);
        continue;
      }
      const valid: DecodedEntry[] = [];
      for (const entry of stream.entries) {
        if (oldestNs !== null && entry.tsNs < oldestNs) {
          errors.push(`entry for stream '${parsed.text}' has timestamp too old: ${rfc3339(entry.tsNs)}, oldest acceptable timestamp is: ${rfc3339(oldestNs)}`);
        } else if (entry.tsNs > newestNs) {
          errors.push(`entry for stream '${parsed.text}' has timestamp too new: ${rfc3339(entry.tsNs)}`);
        } else if (Buffer.byteLength(entry.line) > o.maxLineBytes) {
          errors.push(`Max entry size '${o.maxLineBytes}' bytes exceeded for stream '${parsed.text}' while adding an entry with length '${Buffer.byteLength(entry.line)}' bytes`);
        } else if (entry.metadata.length > 0 && !o.allowStructuredMetadata) {
          errors.push(`stream '${parsed.text}' includes structured metadata, but this feature is disallowed. Please see \`limits_config.allow_structured_metadata\` or contact your Loki administrator to enable it.`);
        } else {
          valid.push(entry);
        }
      }
      if (valid.length > 0) accepted.push({ labels: parsed.labels, text: parsed.text, entries: valid });
    }
    // The ingester: like Loki's, the answer carries only the last failing stream's errors.
    let ingesterError: string | null = null;
    let streamsOfTenant = this.tenants.get(tenant);
    if (streamsOfTenant === undefined) {
      streamsOfTenant = new Map();
      this.tenants.set(tenant, streamsOfTenant);
    }
    const windowNs = BigInt(o.outOfOrderWindowMs) * NS_PER_MS;
    for (const s of accepted) {
      let state = streamsOfTenant.get(s.text);
      if (state === undefined) {
        state = { labels: s.labels, text: s.text, keys: new Set(), entries: [], highest: -1n };
        streamsOfTenant.set(s.text, state);
      }
      const failed: string[] = [];
      for (const entry of s.entries) {
        if (state.highest >= 0n && entry.tsNs < state.highest - windowNs) {
          failed.push(
            `entry with timestamp ${goTimeString(entry.tsNs)} ignored, reason: 'entry too far behind, entry timestamp is: ${rfc3339(entry.tsNs)}, oldest acceptable timestamp is: ${rfc3339(state.highest - windowNs)}',`,
          );
          continue;
        }
        const key = `${entry.tsNs}\u0000${entry.line}`;
        if (state.keys.has(key)) continue;
        state.keys.add(key);
        state.entries.push({ tenant, labels: s.labels, stream: s.text, tsNs: entry.tsNs, line: entry.line, metadata: Object.fromEntries(entry.metadata) });
        if (entry.tsNs > state.highest) state.highest = entry.tsNs;
      }
      if (failed.length > 0) {
        ingesterError = `${failed.slice(0, 10).join('\n')}\nuser '${tenant}', total ignored: ${failed.length} out of ${s.entries.length} for stream: ${s.text}`;
      }
    }
    if (ingesterError !== null) return ingesterError;
    return errors.length === 0 ? null : groupErrors(errors);
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

/** Parses and validates one stream's labels; a string is Loki's error text for the stream. */
function parseStreamLabels(text: string, maxNames: number, discoverServiceName: boolean): { labels: Record<string, string>; text: string } | string {
  const trimmed = text.trim();
  const set = parseLabelSet(trimmed, 0);
  if (set === null || set.end !== trimmed.length) return `Error parsing labels '${text}' with error: 1:2: parse error: unexpected character in label set`;
  for (const name of set.labels.keys()) {
    if (!LABEL_NAME_RE.test(name)) return `Error parsing labels '${text}' with error: 1:2: parse error: invalid label name "${name}"`;
  }
  const labels: Record<string, string> = {};
  for (const [name, value] of set.labels) if (value !== '') labels[name] = value;
  const names = Object.keys(labels);
  if (names.length === 0) return 'error at least one label pair is required per stream';
  const counted = names.length - (Object.hasOwn(labels, 'service_name') ? 1 : 0);
  if (counted > maxNames) return `entry for stream '${text}' has ${counted} label names; limit ${maxNames}`;
  for (const name of names) {
    if (name.length > 1024) return `stream '${text}' has label name too long: '${name}'`;
    if (Buffer.byteLength(labels[name] as string) > 2048) return `stream '${text}' has label value too long: '${labels[name] as string}'`;
  }
  if (discoverServiceName && !Object.hasOwn(labels, 'service_name')) {
    const from = SERVICE_NAME_SOURCES.find((n) => labels[n] !== undefined);
    labels['service_name'] = from === undefined ? 'unknown_service' : (labels[from] as string);
  }
  const sorted = Object.keys(labels).sort();
  const canonical = `{${sorted.map((n) => `${n}=${JSON.stringify(labels[n])}`).join(', ')}}`;
  const ordered: Record<string, string> = {};
  for (const n of sorted) ordered[n] = labels[n] as string;
  return { labels: ordered, text: canonical };
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

function decodeJsonPush(text: string): DecodedStream[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new Error(`loghttp.PushRequest.Streams: ReadObject: ${(err as Error).message}`);
  }
  const streams = (body as { streams?: unknown }).streams;
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
      if (!Array.isArray(v) || v.length < 2 || v.length > 3) throw new Error('loghttp.Entry: a value must be [timestamp, line] or [timestamp, line, metadata]');
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
export function idOf(entry: StoredEntry): string | null {
  try {
    const parsed = JSON.parse(entry.line) as Record<string, unknown>;
    return typeof parsed['_id'] === 'string' ? parsed['_id'] : null;
  } catch {
    return null;
  }
}
