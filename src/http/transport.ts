import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { ServerConfig, TlsConfig } from '../config/config.js';
import { MothershipError, type ErrorCode } from '../lib/errors.js';
import type { Logger } from '../telemetry/logger.js';

/** Longer than typical load-balancer idle timeouts, so the balancer closes first and no request races a close. */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** The PEM contents of the TLS files, checked to make a working context. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Client CA(s): set means mutual TLS. */
  readonly ca: Buffer | null;
}

/**
 * Reads TLS_CERT_FILE, TLS_KEY_FILE and TLS_CLIENT_CA_FILE and checks that they make a
 * context (key matches certificate, PEM parses). Throws `config_invalid` naming the variable;
 * never includes file contents.
 */
export async function readTlsMaterial(config: TlsConfig): Promise<TlsMaterial> {
  const cert = await readPem(config.certFile, 'TLS_CERT_FILE');
  const key = await readPem(config.keyFile, 'TLS_KEY_FILE');
  const ca = config.clientCaFile === null ? null : await readPem(config.clientCaFile, 'TLS_CLIENT_CA_FILE');
  try {
    tls.createSecureContext(secureContextOptions({ cert, key, ca }));
  } catch (err) {
    throw new MothershipError('config_invalid', `TLS_CERT_FILE/TLS_KEY_FILE${ca === null ? '' : '/TLS_CLIENT_CA_FILE'}: not a usable certificate, key and CA (${tlsReason(err)})`);
  }
  return { cert, key, ca };
}

async function readPem(file: string, variable: string): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    throw new MothershipError('config_invalid', `${variable}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!data.includes('-----BEGIN ')) throw new MothershipError('config_invalid', `${variable}: ${file} is not a PEM file`);
  return data;
}

/** OpenSSL reasons are short and never hold key material; keep only the reason. */
function tlsReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n', 1)[0]?.slice(0, 200) ?? 'error';
}

export function secureContextOptions(material: TlsMaterial): tls.SecureContextOptions {
  return material.ca === null ? { cert: material.cert, key: material.key } : { cert: material.cert, key: material.key, ca: material.ca };
}

/**
 * The Node server under Fastify, with every guard against slow or oversized requests:
 * - `headersTimeout`: the request line and headers must arrive within it (slow-loris);
 * - `requestTimeout`: the whole request, body included;
 * - `setTimeout(connectionTimeout)`: a connection idle that long mid-request is closed;
 * - `maxHeaderSize`: larger header blocks get 431;
 * - `maxConnections`: connections past it are closed as they arrive;
 * - TLS: `handshakeTimeout` as the header timeout; mutual TLS with `requestCert` + `rejectUnauthorized`.
 * Node checks the header and request deadlines every `connectionsCheckingInterval` (30 s by
 * default): a quarter of the header timeout, at most 1 s, keeps them close to what is configured.
 */
export function createRawServer(
  server: ServerConfig,
  material: TlsMaterial | null,
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): http.Server {
  const options: http.ServerOptions = {
    maxHeaderSize: server.maxHeaderBytes,
    headersTimeout: server.headersTimeoutMs,
    requestTimeout: server.requestTimeoutMs,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(server.headersTimeoutMs / 4))),
  };
  const raw: http.Server =
    material === null
      ? http.createServer(options, handler)
      : (https.createServer(
          {
            ...options,
            ...secureContextOptions(material),
            handshakeTimeout: server.headersTimeoutMs,
            ...(material.ca === null ? {} : { requestCert: true, rejectUnauthorized: true }),
          },
          handler,
        ) as unknown as http.Server);
  raw.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  raw.headersTimeout = server.headersTimeoutMs;
  raw.requestTimeout = server.requestTimeoutMs;
  raw.setTimeout(server.connectionTimeoutMs);
  raw.on('timeout', onIdleSocket);
  raw.maxConnections = server.maxConnections;
  return raw;
}

/**
 * A connection on which nothing moved for SERVER_CONNECTION_TIMEOUT_MS is closed, unless it is
 * the server that is still working on the answer (an /ingest waiting for the spool or a sink):
 * the client's silence counts, ours does not. Slow headers and bodies have their own deadlines.
 */
function onIdleSocket(socket: Socket): void {
  const response = (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
  if (response !== undefined && response !== null && !response.headersSent) return;
  socket.destroy();
}

/** Swaps the certificate, key and client CA of a listening HTTPS server; open connections keep theirs. */
export function setSecureContext(raw: http.Server, material: TlsMaterial): void {
  (raw as unknown as https.Server).setSecureContext(secureContextOptions(material));
}

const CLIENT_ERRORS: Readonly<Record<string, ErrorCode>> = {
  ERR_HTTP_REQUEST_TIMEOUT: 'request_timeout',
  HPE_HEADER_OVERFLOW: 'headers_too_large',
};

/**
 * Answers requests Node refuses before Fastify sees them (too slow, header block too large,
 * malformed) in our error shape, then closes the connection. Nothing of the request is logged
 * but the error code: its bytes may hold a token.
 */
export function clientErrorHandler(logger: Logger, limits: Pick<ServerConfig, 'maxHeaderBytes' | 'headersTimeoutMs' | 'requestTimeoutMs'>) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const code = CLIENT_ERRORS[err.code ?? ''] ?? 'bad_request';
    const message =
      code === 'request_timeout'
        ? `The request did not arrive in time (headers within ${limits.headersTimeoutMs} ms, whole request within ${limits.requestTimeoutMs} ms)`
        : code === 'headers_too_large'
          ? `The request line and headers are over the limit of ${limits.maxHeaderBytes} bytes (MAX_HEADER_BYTES)`
          : 'The HTTP request is malformed';
    logger.debug({ err: { code, parser: err.code }, remote: socket.remoteAddress }, 'connection refused a request');
    const response = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && response?.headersSent !== true) {
      const error = new MothershipError(code, message);
      const body = JSON.stringify({ status: 'error', error: code, message: error.message });
      socket.end(
        `HTTP/1.1 ${error.status} ${http.STATUS_CODES[error.status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      // `end` flushes the answer first; a client that never reads does not keep the socket.
      setTimeout(() => socket.destroy(), 1000).unref();
    } else {
      socket.destroy();
    }
  };
}
