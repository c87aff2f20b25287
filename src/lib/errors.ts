/**
 * The one registry of error codes. A code is stable: it reaches the HTTP answer (`error`),
 * the log line (`err.code`) and metric labels, so operators and nodes can match on it.
 * Adding a code is fine; renaming one breaks users.
 */
export const ERROR_CODES = {
  // Request level (the whole request is refused)
  invalid_json: { status: 400, message: 'The body is not valid JSON' },
  invalid_envelope: { status: 400, message: 'The body is not a valid batch envelope' },
  body_too_large: { status: 413, message: 'The body is over the size limit' },
  too_many_messages: { status: 413, message: 'The batch has more messages than allowed' },
  unsupported_media_type: { status: 415, message: 'Unsupported Content-Type' },
  unsupported_encoding: { status: 415, message: 'Unsupported Content-Encoding' },
  invalid_encoding: { status: 400, message: 'The body could not be decompressed' },
  invalid_parameter: { status: 400, message: 'A query or body parameter is invalid' },
  unauthorized: { status: 401, message: 'Missing or invalid bearer token' },
  not_found: { status: 404, message: 'No such endpoint' },
  method_not_allowed: { status: 405, message: 'Method not allowed' },
  request_timeout: { status: 408, message: 'The request took too long to arrive' },
  headers_too_large: { status: 431, message: 'The request line and headers are over the size limit' },
  bad_request: { status: 400, message: 'The HTTP request is malformed' },
  rate_limited: { status: 429, message: 'This node sends more messages than its rate limit; retry after the Retry-After delay' },
  storage_unavailable: { status: 503, message: 'The batch could not be stored; retry later' },
  spool_full: { status: 503, message: 'The spool is full while sinks catch up; retry later' },
  overloaded: { status: 503, message: 'Too much data in flight; retry later' },
  shutting_down: { status: 503, message: 'The server is shutting down; retry later' },
  internal_error: { status: 500, message: 'Internal error' },
  // Message level (one message is rejected, the rest of the batch is accepted)
  message_not_object: { status: 400, message: 'The message is not a JSON object or string' },
  message_too_deep: { status: 400, message: 'The message is nested deeper than allowed' },
  message_too_many_keys: { status: 400, message: 'The message has more object keys than allowed' },
  message_string_too_long: { status: 400, message: 'The message holds a string longer than allowed' },
  // Sink level (never sent to clients as a request error; logged and counted)
  sink_unavailable: { status: 503, message: 'The sink is unreachable' },
  sink_timeout: { status: 503, message: 'The sink did not answer in time' },
  sink_misconfigured: { status: 503, message: 'The sink is up but refuses us until its configuration, rights or extension are fixed (see the log and /health)' },
  sink_rejected: { status: 500, message: 'The sink refused the data for good' },
  sink_rate_limited: { status: 503, message: 'The sink asked us to slow down (HTTP 429); retry later' },
  // Loki refusals of single entries (dead-letter codes; see the Loki sink)
  loki_entry_too_old: { status: 500, message: 'Loki refused the entry: timestamp too old' },
  loki_entry_too_new: { status: 500, message: 'Loki refused the entry: timestamp too far in the future' },
  loki_entry_out_of_order: { status: 500, message: 'Loki refused the entry: too far behind the newest entry of its stream' },
  loki_line_too_long: { status: 500, message: 'Loki refused the entry: line too long' },
  loki_invalid_labels: { status: 500, message: 'Loki refused the stream labels' },
  loki_structured_metadata: { status: 500, message: 'Loki refused the structured metadata' },
  loki_payload_too_large: { status: 500, message: 'Loki refused the entry: too large for one push (HTTP 413)' },
  loki_rejected: { status: 500, message: 'Loki refused the push for good' },
  config_invalid: { status: 500, message: 'Invalid configuration' },
  startup_failed: { status: 500, message: 'Start-up failed' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class MothershipError extends Error {
  override readonly name = 'MothershipError';
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds a client should wait before retrying (503/429 answers). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message ?? ERROR_CODES[code].message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

export function isMothershipError(err: unknown): err is MothershipError {
  return err instanceof MothershipError;
}

/** A short, secret-free description of any thrown value, for logs and answers. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
