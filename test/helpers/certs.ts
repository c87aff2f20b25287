import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export interface KeyPair {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface CertificateAuthority extends KeyPair {
  /** Signs a new certificate for `subject` (e.g. "/CN=edge-01") with the given X.509 extensions. */
  issue(name: string, subject: string, extensions: string): Promise<KeyPair>;
}

/** A CA made with the openssl CLI, as the README tells operators to, in `dir`. */
export async function makeCa(dir: string, name: string): Promise<CertificateAuthority> {
  const keyFile = path.join(dir, `${name}.key`);
  const certFile = path.join(dir, `${name}.crt`);
  await run('openssl', ['req', '-x509', '-new', ...EC, '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const ca = { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
  return {
    ...ca,
    async issue(leaf, subject, extensions) {
      const leafKey = path.join(dir, `${leaf}.key`);
      const leafCert = path.join(dir, `${leaf}.crt`);
      const csr = path.join(dir, `${leaf}.csr`);
      const ext = path.join(dir, `${leaf}.ext`);
      writeFileSync(ext, `${extensions}\n`);
      await run('openssl', ['req', '-new', ...EC, '-keyout', leafKey, '-out', csr, '-subj', subject]);
      await run('openssl', ['x509', '-req', '-in', csr, '-CA', certFile, '-CAkey', keyFile, '-CAcreateserial', '-out', leafCert, '-days', '2', '-extfile', ext]);
      return { certFile: leafCert, keyFile: leafKey, cert: readFileSync(leafCert), key: readFileSync(leafKey) };
    },
  };
}

export const SERVER_EXTENSIONS = 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth';
export const CLIENT_EXTENSIONS = 'extendedKeyUsage=clientAuth';
