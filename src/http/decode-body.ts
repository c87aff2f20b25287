import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { MothershipError } from '../lib/errors.js';

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const inflateRaw = promisify(zlib.inflateRaw);

export interface DecodeLimits {
  readonly maxDecompressedBytes: number;
}

/**
 * Undoes Content-Encoding. Inflation runs on libuv's thread pool (the event loop stays free)
 * and stops as soon as the output would pass the limit, so a gzip bomb costs at most
 * `maxDecompressedBytes` of memory, never its full expansion.
 */
export async function decodeBody(raw: Buffer, contentEncoding: string | undefined, limits: DecodeLimits): Promise<Buffer> {
  const encoding = normalizeEncoding(contentEncoding);
  if (encoding === 'identity') return raw;
  const options = { maxOutputLength: limits.maxDecompressedBytes };
  try {
    if (encoding === 'gzip') return await gunzip(raw, options);
    // "deflate" is zlib-wrapped per RFC 9110, but some clients send raw deflate; accept both.
    return await (looksZlibWrapped(raw) ? inflate(raw, options) : inflateRaw(raw, options));
  } catch (err) {
    if (isTooLarge(err)) {
      throw new MothershipError(
        'body_too_large',
        `The decompressed body is over the limit of ${limits.maxDecompressedBytes} bytes (MAX_DECOMPRESSED_BYTES)`,
        { cause: err },
      );
    }
    throw new MothershipError('invalid_encoding', `The body is not valid ${encoding} data`, { cause: err });
  }
}

function normalizeEncoding(header: string | undefined): 'identity' | 'gzip' | 'deflate' {
  if (header === undefined) return 'identity';
  const value = header.trim().toLowerCase();
  if (value === '' || value === 'identity') return 'identity';
  if (value === 'gzip' || value === 'x-gzip') return 'gzip';
  if (value === 'deflate') return 'deflate';
  throw new MothershipError(
    'unsupported_encoding',
    `Content-Encoding "${header.slice(0, 40)}" is not supported; use gzip, deflate or none`,
  );
}

function looksZlibWrapped(raw: Buffer): boolean {
  const cmf = raw[0];
  const flg = raw[1];
  if (cmf === undefined || flg === undefined) return false;
  return (cmf & 0x0f) === 8 && ((cmf << 8) | flg) % 31 === 0;
}

function isTooLarge(err: unknown): boolean {
  return err instanceof RangeError || (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE');
}
