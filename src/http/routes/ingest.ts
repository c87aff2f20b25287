import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerConfig } from '../../config/config.js';
import type { Clock } from '../../lib/clock.js';
import { MothershipError } from '../../lib/errors.js';
import type { Ingestor } from '../../pipeline/ingest.js';
import { decodeBody } from '../decode-body.js';
import { nodeOf } from '../identity.js';
import type { InflightBudget } from '../inflight-budget.js';
import type { RateLimiter } from '../rate-limit.js';

export interface IngestRouteDeps {
  readonly server: ServerConfig;
  readonly ingestor: Ingestor;
  readonly clock: Clock;
  readonly isAccepting: () => boolean;
  readonly inflight: InflightBudget;
  /** RATE_LIMIT_MESSAGES_PER_SECOND; null or absent: no limit. The ingestor takes the tokens. */
  readonly rateLimiter?: RateLimiter | null;
}

/**
 * Bytes a request holds in the in-flight budget: its body as sent, until the answer is sent (the
 * request keeps it), and its inflated copy, until its batch is in the spool (the payload waiting
 * for the disk is about that size; once durable, the answer's wait for the sinks holds nothing).
 */
interface Reservation {
  wire: number;
  inflated: number;
}

const reserved = new WeakMap<FastifyRequest, Reservation>();

/**
 * POST /ingest. The body arrives as raw bytes (the server's onRequest hook has already checked
 * auth and content type), and is inflated and parsed here.
 */
export function registerIngestRoute(app: FastifyInstance, deps: IngestRouteDeps): void {
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST' || request.url.split('?', 1)[0] !== '/ingest') return;
    if (!deps.isAccepting()) throw new MothershipError('shutting_down', undefined, { retryAfterSeconds: 5 });
    // A node already over its limit is refused before its body is read.
    deps.rateLimiter?.precheck(rateKey(request));
    const length = Number(request.headers['content-length']);
    const bytes = Number.isFinite(length) && length >= 0 ? Math.min(length, deps.server.maxBodyBytes) : deps.server.maxBodyBytes;
    deps.inflight.reserve(bytes);
    const reservation: Reservation = { wire: bytes, inflated: 0 };
    reserved.set(request, reservation);
    // 'close' fires for answered and abandoned requests alike, so the budget cannot leak.
    reply.raw.once('close', () => deps.inflight.release(reservation.wire + reservation.inflated));
  });
  app.post('/ingest', async (request) => {
    const receivedAtMs = deps.clock.now();
    const body = await parseBody(request, deps.server, deps.inflight);
    const node = nodeOf(request);
    return deps.ingestor.ingest({
      body,
      receivedAtMs,
      idempotencyKey: idempotencyKey(request),
      node,
      rateKey: (deps.rateLimiter ?? null) === null ? null : rateKey(request),
      onAppended: () => releaseInflated(request, deps.inflight),
    });
  });
}

function releaseInflated(request: FastifyRequest, inflight: InflightBudget): void {
  const reservation = reserved.get(request);
  if (reservation === undefined) return;
  inflight.release(reservation.inflated);
  reservation.inflated = 0;
}

/** The rate limit is per authenticated node; without a node identity, per client address. */
function rateKey(request: FastifyRequest): string {
  const node = nodeOf(request);
  return node === null ? `ip:${request.ip}` : `node:${node}`;
}

async function parseBody(request: FastifyRequest, server: ServerConfig, inflight: InflightBudget): Promise<unknown> {
  const raw = request.body;
  if (raw === undefined || raw === null) throw new MothershipError('invalid_envelope', 'The body is empty; send a JSON object with a "messages" array');
  if (!Buffer.isBuffer(raw)) throw new MothershipError('internal_error', 'The body was not read as bytes');
  const encoding = request.headers['content-encoding'];
  const decoded = await decodeBody(raw, typeof encoding === 'string' ? encoding : undefined, server);
  // The inflated copy (and the objects parsed from it) count too: a gzip batch is ~10× its wire
  // size. Every POST /ingest has a reservation: the onRequest hook made it.
  const reservation = reserved.get(request);
  if (decoded !== raw && reservation !== undefined) {
    inflight.reserve(decoded.length);
    reservation.inflated += decoded.length;
  }
  if (decoded.length === 0) throw new MothershipError('invalid_envelope', 'The body is empty; send a JSON object with a "messages" array');
  try {
    return JSON.parse(decoded.toString('utf8')) as unknown;
  } catch (err) {
    if (err instanceof RangeError) throw new MothershipError('invalid_json', 'The JSON is nested too deeply to parse', { cause: err });
    throw new MothershipError('invalid_json', `The body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function idempotencyKey(request: FastifyRequest): string | null {
  const value = request.headers['idempotency-key'];
  if (typeof value !== 'string') return null;
  const key = value.trim();
  return key === '' ? null : key.slice(0, 256);
}

/** Content types we take as JSON; anything else is refused with 415 before the body is read. */
export function isJsonContentType(contentType: string): boolean {
  const essence = contentType.split(';', 1)[0]?.trim().toLowerCase() ?? '';
  return essence === 'application/json' || essence.endsWith('+json');
}
