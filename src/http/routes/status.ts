import type { FastifyInstance } from 'fastify';
import type { HealthBody } from '../../delivery/health-report.js';
import type { SinkName } from '../../sinks/sink.js';

export interface StatusRouteDeps {
  readonly version: string;
  readonly enabledSinks: readonly SinkName[];
  readonly isAccepting: () => boolean;
  readonly health: () => Promise<HealthBody>;
  readonly adminEnabled: boolean;
}

/** GET / and GET /health, in the seed's shapes. Neither shows secrets, URLs with passwords or paths. */
export function registerStatusRoutes(app: FastifyInstance, deps: StatusRouteDeps): void {
  app.get('/', async () => ({
    service: 'edgebot-mothership',
    version: deps.version,
    status: deps.isAccepting() ? 'running' : 'stopping',
    endpoints: {
      ingest: 'POST /ingest',
      health: 'GET /health',
      info: 'GET /',
      metrics: 'GET /metrics',
      liveness: 'GET /livez',
      readiness: 'GET /readyz',
      ...(deps.adminEnabled ? { admin: 'GET /admin/spool, GET|DELETE /admin/deadletters, POST /admin/deadletters/replay' } : {}),
    },
    enabled_sinks: deps.enabledSinks,
  }));

  app.get('/health', async (_request, reply) => {
    const body = await deps.health();
    reply.code(body.status === 'unhealthy' ? 503 : 200);
    return body;
  });
}
