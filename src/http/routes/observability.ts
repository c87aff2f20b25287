import type { FastifyInstance } from 'fastify';
import type { HealthBody } from '../../delivery/health-report.js';
import type { Metrics } from '../../telemetry/metrics.js';
import { answeredErrorCode } from '../error-answer.js';

export interface ObservabilityRouteDeps {
  readonly metrics: Metrics;
  readonly health: () => Promise<HealthBody>;
}

/**
 * GET /metrics (Prometheus text), and Kubernetes-style probes: /livez answers while the process
 * serves HTTP at all; /readyz answers 200 only while batches are accepted (same rule as /health).
 */
export function registerObservabilityRoutes(app: FastifyInstance, deps: ObservabilityRouteDeps): void {
  app.addHook('onResponse', async (request, reply) => {
    if (request.method === 'POST' && request.url.split('?', 1)[0] === '/ingest') {
      deps.metrics.ingestAnswered(reply.statusCode, answeredErrorCode(request) ?? '');
    }
  });

  app.get('/metrics', async (_request, reply) => {
    reply.type(deps.metrics.contentType);
    return deps.metrics.text();
  });

  app.get('/livez', async () => ({ status: 'alive' }));

  app.get('/readyz', async (_request, reply) => {
    const health = await deps.health();
    const ready = health.status !== 'unhealthy';
    reply.code(ready ? 200 : 503);
    return ready ? { status: 'ready' } : { status: 'not_ready', reason: health.reason ?? health.status };
  });
}
