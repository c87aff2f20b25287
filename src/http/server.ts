import Fastify, { type FastifyInstance } from 'fastify';
import type { ServerConfig } from '../config/config.js';
import { MothershipError } from '../lib/errors.js';
import type { Logger } from '../telemetry/logger.js';
import type { TokenAuth } from './auth.js';
import { sendError } from './error-answer.js';
import { authenticateNode } from './identity.js';
import { registerAdminRoutes, type AdminRouteDeps } from './routes/admin.js';
import { isJsonContentType, registerIngestRoute, type IngestRouteDeps } from './routes/ingest.js';
import { registerObservabilityRoutes, type ObservabilityRouteDeps } from './routes/observability.js';
import { registerStatusRoutes, type StatusRouteDeps } from './routes/status.js';
import { clientErrorHandler, createRawServer, type TlsMaterial } from './transport.js';

/**
 * Routes anyone may call: ingest (which has its own auth), health, probes and metrics.
 * Every other route needs ADMIN_TOKEN, and does not exist without it (default deny).
 */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/', '/health', '/ingest', '/metrics', '/livez', '/readyz']);

export interface HttpDeps extends IngestRouteDeps, Omit<StatusRouteDeps, 'adminEnabled'>, ObservabilityRouteDeps {
  readonly server: ServerConfig;
  readonly logger: Logger;
  /** Bearer tokens for POST /ingest (bound to nodes, or bare). */
  readonly auth: TokenAuth;
  /** HTTPS certificate and key (with a client CA: mutual TLS). Null or absent: plain HTTP. */
  readonly tls?: TlsMaterial | null;
  /** Null: no ADMIN_TOKEN, the admin endpoints do not exist. */
  readonly admin: AdminRouteDeps | null;
}

/** Builds the Fastify instance (routes, parsers, error answers) without listening, so tests can `inject`. */
export function buildHttpServer(deps: HttpDeps): FastifyInstance {
  const tls = deps.tls ?? null;
  const mtls = tls !== null && tls.ca !== null;
  const app = Fastify({
    logger: false,
    bodyLimit: deps.server.maxBodyBytes,
    // Requests that arrive while closing get our own 503 `shutting_down` answer, with Retry-After.
    return503OnClosing: false,
    // The Node server (timeouts, header and connection limits, TLS) is made in transport.ts.
    serverFactory: (handler) => createRawServer(deps.server, tls, handler),
    clientErrorHandler: clientErrorHandler(deps.logger, deps.server),
  });

  // Default deny: a route that is not public needs the admin token, and without one it does not exist.
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (route === undefined || PUBLIC_ROUTES.has(route)) return;
    if (deps.admin === null) throw new MothershipError('not_found', `No endpoint ${request.method} ${route}`);
    deps.admin.auth.check(request.headers.authorization);
  });

  // Bodies are read as raw bytes and decoded in the route: the content encoding decides how,
  // and auth must run before any inflating or parsing.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
    done(null, body);
  });

  app.addHook('onRequest', async (request) => {
    if (request.method !== 'POST') return;
    if (request.url.split('?', 1)[0] === '/ingest') authenticateNode(request, { tokens: deps.auth, mtls });
    const contentType = request.headers['content-type'];
    if (contentType === undefined || contentType.trim() === '') {
      // Older node builds and hand-written curl calls omit it; the body is JSON or it fails as JSON.
      request.headers['content-type'] = 'application/json';
    } else if (!isJsonContentType(contentType)) {
      throw new MothershipError('unsupported_media_type', `Content-Type "${contentType.slice(0, 60)}" is not supported; send application/json`);
    }
  });

  app.setErrorHandler((err, request, reply) => sendError(err, request, reply, deps.logger, deps.server.maxBodyBytes));
  app.setNotFoundHandler((request, reply) =>
    sendError(new MothershipError('not_found', `No endpoint ${request.method} ${request.url.split('?', 1)[0] ?? ''}`), request, reply, deps.logger, deps.server.maxBodyBytes),
  );

  registerIngestRoute(app, deps);
  registerStatusRoutes(app, { ...deps, adminEnabled: deps.admin !== null });
  registerObservabilityRoutes(app, deps);
  if (deps.admin !== null) registerAdminRoutes(app, deps.admin);
  return app;
}
