import type { FastifyInstance, FastifyRequest } from 'fastify';
import { fromDeadEvent, type DeadLetterFilter, type DeadLetterStore } from '../../deadletter/store.js';
import type { SinkWorker } from '../../delivery/sink-worker.js';
import { MothershipError } from '../../lib/errors.js';
import type { SinkName } from '../../sinks/sink.js';
import { SINK_BITS } from '../../spool/spool.js';
import type { SpoolStore } from '../../spool/store.js';
import type { BearerAuth } from '../auth.js';

export interface AdminRouteDeps {
  readonly auth: BearerAuth;
  readonly spool: SpoolStore;
  readonly workers: readonly SinkWorker[];
  readonly deadLetters: DeadLetterStore;
}

const MAX_LIST = 1000;
const MAX_REPLAY = 100_000;

/**
 * The operator's endpoints for the spool and the dead letters. Registered only when
 * ADMIN_TOKEN is set; every route requires it as a bearer token.
 */
export function registerAdminRoutes(app: FastifyInstance, deps: AdminRouteDeps): void {
  const sinkNames = deps.workers.map((w) => w.sink.name);
  app.register(
    async (admin) => {
      admin.addHook('onRequest', async (request) => deps.auth.check(request.headers.authorization));

      admin.get('/spool', async () => ({
        ...deps.spool.adminView(),
        sinks: Object.fromEntries(
          deps.workers.map((w) => {
            const backlog = deps.spool.backlogOf(w.sink.name);
            const status = w.status();
            return [w.sink.name, { acked_seq: backlog.ackedSeq, backlog_records: backlog.records, backlog_events: backlog.events, backlog_bytes: backlog.bytes, circuit: status.circuit, in_flight: status.inFlight, last_error: status.lastError }];
          }),
        ),
      }));

      admin.get('/deadletters', async (request) => {
        const q = query(request);
        const sink = sinkParam(q.sink, sinkNames);
        const offset = intParam(q.offset, 0, 0, Number.MAX_SAFE_INTEGER);
        const limit = intParam(q.limit, 100, 1, MAX_LIST);
        const { total, items } = await deps.deadLetters.list(sink, offset, limit, filterParams(q));
        return { sink, total, offset, limit, items };
      });

      admin.post('/deadletters/replay', async (request) => {
        const q = { ...query(request), ...bodyParams(request.body) };
        const sink = sinkParam(q.sink, sinkNames);
        const limit = intParam(q.limit, MAX_REPLAY, 1, MAX_REPLAY);
        const letters = await deps.deadLetters.take(sink, filterParams(q), limit);
        if (letters.length === 0) return { sink, replayed: 0 };
        try {
          const seq = await deps.spool.append(letters.map((l) => fromDeadEvent(l.event)), { targets: SINK_BITS[sink], dedupe: false });
          return { sink, replayed: letters.length, seq };
        } catch (err) {
          await deps.deadLetters.restore(sink, letters);
          throw err;
        }
      });

      admin.delete('/deadletters', async (request) => {
        const q = query(request);
        const sink = sinkParam(q.sink, sinkNames);
        const purged = await deps.deadLetters.purge(sink, filterParams(q));
        return { sink, purged };
      });
    },
    { prefix: '/admin' },
  );
}

type Params = Record<string, unknown>;

function query(request: FastifyRequest): Params {
  return (request.query ?? {}) as Params;
}

/** The replay body may be JSON bytes (our parser keeps bodies raw) or absent. */
function bodyParams(body: unknown): Params {
  if (!Buffer.isBuffer(body) || body.length === 0) return {};
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Params;
  } catch (err) {
    throw new MothershipError('invalid_json', `The body is not valid JSON: ${(err as Error).message}`);
  }
  throw new MothershipError('invalid_parameter', 'The body must be a JSON object');
}

function sinkParam(value: unknown, sinks: readonly SinkName[]): SinkName {
  if (sinks.length === 1 && (value === undefined || value === '')) return sinks[0] as SinkName;
  const found = sinks.find((s) => s === value);
  if (found === undefined) throw new MothershipError('invalid_parameter', `"sink" must be one of: ${sinks.join(', ')}`);
  return found;
}

function intParam(value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new MothershipError('invalid_parameter', `expected a whole number from ${min} to ${max}, got "${String(value).slice(0, 20)}"`);
  return n;
}

function filterParams(q: Params): DeadLetterFilter {
  const filter: { code?: string; source?: string; idIn?: string[] } = {};
  if (typeof q.code === 'string' && q.code !== '') filter.code = q.code;
  if (typeof q.source === 'string' && q.source !== '') filter.source = q.source;
  if (Array.isArray(q.ids)) filter.idIn = q.ids.filter((x): x is string => typeof x === 'string');
  else if (typeof q.ids === 'string' && q.ids !== '') filter.idIn = q.ids.split(',');
  return filter;
}
