import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { MothershipError } from '../lib/errors.js';
import { capString, storableString } from '../pipeline/storable.js';
import type { TokenAuth } from './auth.js';

const MAX_NODE_LENGTH = 256;

/** The names a verified client certificate vouches for; `primary` is its node id. */
export interface CertificateNames {
  readonly primary: string;
  /** CN, then DNS and URI SANs, in that order, primary first. */
  readonly names: readonly string[];
}

/** What a certificate as Node reports it (`getPeerCertificate()`) holds that we read. */
export interface PeerCertificateFields {
  readonly subject?: { readonly CN?: string | readonly string[] } | null;
  readonly subjectaltname?: string;
}

/**
 * The node names of a client certificate: its subject CN, else its first DNS SAN, else its
 * first URI SAN is the node id; all of them count when a token's node must agree with it.
 */
export function certificateNames(cert: PeerCertificateFields): CertificateNames | null {
  const names: string[] = [];
  const cn = cert.subject?.CN;
  for (const value of typeof cn === 'string' ? [cn] : (cn ?? [])) addName(names, value);
  const dns: string[] = [];
  const uri: string[] = [];
  // Node writes e.g. `DNS:edge-01, URI:spiffe://fleet/edge-01, IP Address:10.0.0.1`, quoting
  // (JSON-style) a value that holds a comma or a quote.
  for (const m of (cert.subjectaltname ?? '').matchAll(/(?:^|,\s*)(DNS|URI):("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const raw = m[2] ?? '';
    let value = raw;
    if (raw.startsWith('"')) {
      try {
        value = JSON.parse(raw) as string;
      } catch {
        continue;
      }
    }
    (m[1] === 'DNS' ? dns : uri).push(value);
  }
  for (const value of dns) addName(names, value);
  for (const value of uri) addName(names, value);
  const primary = names[0];
  return primary === undefined ? null : { primary, names };
}

function addName(names: string[], value: string): void {
  const name = storableString(capString(value.trim(), MAX_NODE_LENGTH));
  if (name.length > 0 && !names.includes(name)) names.push(name);
}

/** The verified client certificate of a TLS request, or null (plain HTTP, inject, no certificate). */
export function peerCertificateNames(request: FastifyRequest): CertificateNames | null {
  const socket = request.raw.socket as Partial<TLSSocket> | undefined;
  if (socket === undefined || socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return null;
  const cert = socket.getPeerCertificate(false) as PeerCertificateFields | null;
  if (cert === null || Object.keys(cert).length === 0) return null;
  return certificateNames(cert);
}

export interface IdentityOptions {
  readonly tokens: TokenAuth;
  /** Mutual TLS is on: every request must come with a verified client certificate. */
  readonly mtls: boolean;
}

/** The node id of each authenticated /ingest request, set by `authenticateNode`. */
const nodes = new WeakMap<FastifyRequest, string>();

/**
 * Authenticates a POST /ingest request and returns its node id: from the bearer token's binding
 * or from the client certificate; when both name a node they must agree. Null: no identity
 * (auth off, or a bare token), so the envelope's `source` stands, as before node ids.
 * Throws `unauthorized` (401).
 */
export function authenticateNode(request: FastifyRequest, options: IdentityOptions): string | null {
  const tokenNode = options.tokens.check(request.headers.authorization);
  let node = tokenNode;
  if (options.mtls) {
    const cert = peerCertificateNames(request);
    if (cert === null) throw new MothershipError('unauthorized', 'A client certificate signed by the configured CA is required');
    if (tokenNode !== null && !cert.names.includes(tokenNode)) {
      throw new MothershipError('unauthorized', 'The bearer token and the client certificate belong to different nodes');
    }
    node = tokenNode ?? cert.primary;
  }
  if (node !== null) nodes.set(request, node);
  return node;
}

/** The node id `authenticateNode` found for this request, or null. */
export function nodeOf(request: FastifyRequest): string | null {
  return nodes.get(request) ?? null;
}
