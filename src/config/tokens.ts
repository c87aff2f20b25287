import { createHash } from 'node:crypto';
import { MothershipError } from '../lib/errors.js';
import type { TokenEntry } from './config.js';

/*
 * Ingest tokens
 * -------------
 * AUTH_TOKENS is a comma-separated list. Each entry is either
 *   node_id:token   the token authenticates the edge node `node_id` (it becomes the events' source)
 *   token           a bare token: accepted, but identifies no node (the behaviour before node ids)
 * A list mixes neither: bare and bound entries together are refused, since a bare token could
 * then write as any node. AUTH_TOKENS_FILE holds one `node_id token` per line (# starts a
 * comment line; a third field must be a # comment). Anywhere, a token may be written as
 * `sha256:<64 hex digits>`, the SHA-256 of the token, so the file need not hold the secret.
 * Error messages name the entry's position, never its text: it may be a secret.
 */

/** Node ids: what a node may be called (also a Loki label value and part of every event id). */
const NODE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$/;
const HASHED_RE = /^sha256:([0-9a-fA-F]{64})$/;

export function isValidNodeId(node: string): boolean {
  return NODE_ID_RE.test(node);
}

/** SHA-256 of a token, as lower-case hex: how every token is held once parsed. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The parsed AUTH_TOKENS variable; throws `config_invalid` naming the variable and entry number. */
export function parseTokenList(value: string | null): TokenEntry[] {
  if (value === null) return [];
  const entries: TokenEntry[] = [];
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const where = `AUTH_TOKENS: entry ${i + 1}`;
    if (HASHED_RE.test(part)) {
      entries.push({ node: null, sha256: secretDigest(part, where) });
      continue;
    }
    const colon = part.indexOf(':');
    if (colon < 0) {
      entries.push({ node: null, sha256: secretDigest(part, where) });
      continue;
    }
    const node = part.slice(0, colon).trim();
    const token = part.slice(colon + 1).trim();
    if (!isValidNodeId(node)) throw invalid(`${where}: the node id before ":" must be letters, digits, ".", "_" or "-" (at most 256)`);
    if (token.length === 0) throw invalid(`${where}: the token after "${node}:" is empty`);
    entries.push({ node, sha256: secretDigest(token, where) });
  }
  return checkEntries(entries, 'AUTH_TOKENS');
}

/** The parsed text of an AUTH_TOKENS_FILE; `name` is what error messages call it. */
export function parseTokenFile(text: string, name = 'AUTH_TOKENS_FILE'): TokenEntry[] {
  const entries: TokenEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `${name}: line ${i + 1}`;
    const fields = line.split(/\s+/);
    const node = fields[0] as string;
    const token = fields[1];
    if (token === undefined) throw invalid(`${where}: expected "node_id token"`);
    if (fields.length > 2 && !(fields[2] as string).startsWith('#')) throw invalid(`${where}: expected "node_id token" (a third field must be a # comment)`);
    if (!isValidNodeId(node)) throw invalid(`${where}: the node id must be letters, digits, ".", "_" or "-" (at most 256)`);
    entries.push({ node, sha256: secretDigest(token, where) });
  }
  return checkEntries(entries, name);
}

/**
 * Both sources together. One token may not open two nodes (which one would it be?), and bare
 * tokens may not sit beside bound ones (a bare token could write as any node).
 */
export function checkEntries(entries: readonly TokenEntry[], name: string): TokenEntry[] {
  const byDigest = new Map<string, TokenEntry>();
  let bare = 0;
  for (const entry of entries) {
    if (entry.node === null) bare++;
    const seen = byDigest.get(entry.sha256);
    if (seen !== undefined && seen.node !== entry.node) {
      throw invalid(`${name}: one token is given to two nodes${seen.node === null || entry.node === null ? '' : ` ("${seen.node}" and "${entry.node}")`}; give each node its own token`);
    }
    byDigest.set(entry.sha256, entry);
  }
  if (bare > 0 && bare < entries.length) {
    throw invalid(`${name}: bare tokens and node_id:token entries are mixed; bind every token to a node (a bare token could write as any node)`);
  }
  return [...byDigest.values()];
}

function secretDigest(token: string, where: string): string {
  const hashed = HASHED_RE.exec(token);
  if (hashed !== null) return (hashed[1] as string).toLowerCase();
  if (token.startsWith('sha256:')) throw invalid(`${where}: "sha256:" must be followed by 64 hex digits`);
  return tokenDigest(token);
}

function invalid(message: string): MothershipError {
  return new MothershipError('config_invalid', message);
}
