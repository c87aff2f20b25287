import { createHash, timingSafeEqual } from 'node:crypto';
import { MothershipError } from '../lib/errors.js';

/**
 * Bearer-token check for /ingest. Tokens are compared as SHA-256 digests with
 * `timingSafeEqual`, and every configured token is always compared, so neither the
 * position of a match nor the length of a guess leaks through timing.
 */
export class BearerAuth {
  private readonly digests: readonly Buffer[];

  constructor(tokens: readonly string[]) {
    this.digests = tokens.map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /** Throws `unauthorized` unless auth is off or the header carries a configured token. */
  check(authorization: string | undefined): void {
    if (!this.enabled) return;
    const token = bearerToken(authorization);
    if (token === null) throw new MothershipError('unauthorized', 'Missing bearer token: send "Authorization: Bearer <token>"');
    const candidate = digest(token);
    let matched = false;
    for (const known of this.digests) matched = timingSafeEqual(known, candidate) || matched;
    if (!matched) throw new MothershipError('unauthorized', 'Invalid bearer token');
  }
}

function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
