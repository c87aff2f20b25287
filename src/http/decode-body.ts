import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { MothershipError } from '../lib/errors.js';

const gunzip = promisify<zlib.InputType, zlib.ZlibOptions, Buffer>(zlib.gunzip);
const inflate = promisify<zlib.InputType, zlib.ZlibOptions, Buffer>(zlib.inflate);
const inflateRaw = promisify<zlib.InputType, zlib.ZlibOptions, Buffer>(zlib.inflateRaw);

export interface DecodeLimits {
  readonly maxDecompressedBytes: number;
}

/**
 * Bodies this small (on the wire, and, for gzip, by the size their trailer declares) are
 * inflated on the event loop, in one pass: a typical node batch (a few KiB of gzip, tens of KiB
 * of JSON) inflates in ~30 µs there, while the thread pool's hand-offs, one per 16 KiB of output,
 * cost ~3-5× that in CPU. The output is capped at INLINE_MAX_OUTPUT_BYTES, so the loop is never
 * held for more than about a millisecond, whatever the body claims.
 */
const INLINE_MAX_INPUT_BYTES = 64 * 1024;
const INLINE_MAX_OUTPUT_BYTES = 1024 * 1024;
/** Output chunk of the thread-pool path: one chunk for most bodies, bounded allocation for any. */
const MIN_CHUNK_BYTES = 64 * 1024;
const MAX_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Undoes Content-Encoding. Small bodies inflate inline (see INLINE_MAX_INPUT_BYTES), larger
 * ones on libuv's thread pool (the event loop stays free). Either way inflation stops as soon as
 * the output would pass the limit, so a gzip bomb costs at most `maxDecompressedBytes` of memory,
 * never its full expansion.
 */
export async function decodeBody(raw: Buffer, contentEncoding: string | undefined, limits: DecodeLimits): Promise<Buffer> {
  const encoding = normalizeEncoding(contentEncoding);
  if (encoding === 'identity') return raw;
  // "deflate" is zlib-wrapped per RFC 9110, but some clients send raw deflate; accept both.
  const format = encoding === 'gzip' ? 'gzip' : looksZlibWrapped(raw) ? 'zlib' : 'raw';
  // The gzip trailer's ISIZE: the last member's size mod 2^32. A hint only: it may lie.
  const declared = format === 'gzip' && raw.length >= 18 ? raw.readUInt32LE(raw.length - 4) : null;
  try {
    if (raw.length <= INLINE_MAX_INPUT_BYTES && (declared === null || declared <= INLINE_MAX_OUTPUT_BYTES)) {
      const inline = inflateInline(raw, format, Math.min(INLINE_MAX_OUTPUT_BYTES, limits.maxDecompressedBytes), declared);
      if (inline !== null) return inline;
    }
    const chunkSize = Math.min(MAX_CHUNK_BYTES, Math.max(MIN_CHUNK_BYTES, declared ?? 0));
    return await INFLATE[format](raw, { maxOutputLength: limits.maxDecompressedBytes, chunkSize });
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

type Format = 'gzip' | 'zlib' | 'raw';

const INFLATE: Readonly<Record<Format, (raw: Buffer, options: zlib.ZlibOptions) => Promise<Buffer>>> = { gzip: gunzip, zlib: inflate, raw: inflateRaw };
const INFLATE_SYNC: Readonly<Record<Format, (raw: Buffer, options: zlib.ZlibOptions) => Buffer>> = { gzip: zlib.gunzipSync, zlib: zlib.inflateSync, raw: zlib.inflateRawSync };

/**
 * Inflates on the event loop, up to `cap` bytes of output. Null when the output is larger than
 * `cap` (the caller inflates on the thread pool, with the real limit); throws on invalid data.
 */
function inflateInline(raw: Buffer, format: Format, cap: number, declared: number | null): Buffer | null {
  try {
    return INFLATE_SYNC[format](raw, { maxOutputLength: cap, chunkSize: Math.max(MIN_CHUNK_BYTES, Math.min(cap, (declared ?? 0) + 1)) });
  } catch (err) {
    if (isTooLarge(err)) return null;
    throw err;
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
