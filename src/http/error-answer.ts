import type { FastifyReply, FastifyRequest } from 'fastify';
import { MothershipError, type ErrorCode } from '../lib/errors.js';
import type { Logger } from '../telemetry/logger.js';

export interface ErrorBody {
  status: 'error';
  error: ErrorCode;
  message: string;
}

/** Fastify's own error codes mapped to ours, so clients only ever see our stable codes. */
const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_envelope',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_envelope',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported_media_type',
  FST_ERR_BAD_URL: 'not_found',
  FST_ERR_ASYNC_CONSTRAINT: 'internal_error',
};

export function toMothershipError(err: unknown, maxBodyBytes: number): MothershipError {
  if (err instanceof MothershipError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const mapped = typeof code === 'string' ? FASTIFY_CODES[code] : undefined;
  if (mapped === 'body_too_large') {
    return new MothershipError('body_too_large', `The body is over the limit of ${maxBodyBytes} bytes (MAX_BODY_BYTES)`, { cause: err });
  }
  if (mapped !== undefined) return new MothershipError(mapped, undefined, { cause: err });
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  if (status === 408) return new MothershipError('request_timeout', undefined, { cause: err });
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new MothershipError('invalid_envelope', err instanceof Error ? err.message : 'Bad request', { cause: err });
  }
  return new MothershipError('internal_error', undefined, { cause: err });
}

/** The error code each refused request was answered with, for metrics (weak: no leak). */
const answeredCodes = new WeakMap<FastifyRequest, ErrorCode>();

export function answeredErrorCode(request: FastifyRequest): ErrorCode | undefined {
  return answeredCodes.get(request);
}

/** Writes `{"status":"error","error":code,"message"}` with the right status and headers, and logs it. */
export function sendError(err: unknown, request: FastifyRequest, reply: FastifyReply, logger: Logger, maxBodyBytes: number): FastifyReply {
  const error = toMothershipError(err, maxBodyBytes);
  answeredCodes.set(request, error.code);
  // The path only: a query string may carry a credential a client put there.
  const logFields = { reqId: request.id, method: request.method, url: request.url.split('?', 1)[0], err: { code: error.code, message: error.message } };
  if (error.status >= 500) logger.error({ ...logFields, cause: describeCause(error.cause) }, 'request failed');
  else logger.debug(logFields, 'request refused');
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  const body: ErrorBody = { status: 'error', error: error.code, message: error.message };
  return reply.code(error.status).type('application/json').send(body);
}

function describeCause(cause: unknown): string | undefined {
  if (cause === undefined) return undefined;
  if (cause instanceof Error) return `${cause.name}: ${cause.message}`;
  return String(cause);
}
