import { createHash, timingSafeEqual } from 'node:crypto';
import type { TokenEntry } from '../config/config.js';
import { MothershipError } from '../lib/errors.js';

/**
 * A single-secret bearer check (the admin token). The token is compared as a SHA-256 digest
 * with `timingSafeEqual`, so the length of a guess does not leak through timing.
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

interface TokenTable {
  readonly digests: readonly Buffer[];
  readonly nodes: ReadonlyArray<string | null>;
}

/**
 * The ingest tokens: each is held as its SHA-256 and may be bound to a node id. The table can
 * be replaced while the server runs (SIGHUP), and a check in progress keeps the table it began
 * with. Every token is compared, in constant time, whatever matched, so neither the position
 * of a match nor the length of a guess leaks through timing.
 */
export class TokenAuth {
  private table: TokenTable;
  private readonly required: boolean;

  /** `required`: auth is on even with no token (AUTH_TOKENS_FILE is set): every request is refused then. */
  constructor(entries: readonly TokenEntry[], options: { required?: boolean } = {}) {
    this.table = toTable(entries);
    this.required = options.required ?? false;
  }

  /** Swaps in a new set of tokens (already validated). A token left out stops working at once. */
  replace(entries: readonly TokenEntry[]): void {
    this.table = toTable(entries);
  }

  get enabled(): boolean {
    return this.required || this.table.digests.length > 0;
  }

  get size(): number {
    return this.table.digests.length;
  }

  /**
   * Throws `unauthorized` unless auth is off or the header carries a known token; returns the
   * node id bound to that token, or null (auth off, or a bare token that names no node).
   */
  check(authorization: string | undefined): string | null {
    const table = this.table;
    if (!this.enabled) return null;
    const token = bearerToken(authorization);
    if (token === null) throw new MothershipError('unauthorized', 'Missing bearer token: send "Authorization: Bearer <token>"');
    const candidate = digest(token);
    let found = -1;
    for (let i = 0; i < table.digests.length; i++) {
      if (timingSafeEqual(table.digests[i] as Buffer, candidate)) found = i;
    }
    if (found < 0) throw new MothershipError('unauthorized', 'Invalid bearer token');
    return table.nodes[found] ?? null;
  }
}

function toTable(entries: readonly TokenEntry[]): TokenTable {
  return { digests: entries.map((e) => Buffer.from(e.sha256, 'hex')), nodes: entries.map((e) => e.node) };
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
