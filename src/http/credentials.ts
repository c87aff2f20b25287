import { readFile, stat } from 'node:fs/promises';
import type http from 'node:http';
import type { ServerConfig, TokenEntry } from '../config/config.js';
import { checkEntries, parseTokenFile } from '../config/tokens.js';
import { MothershipError } from '../lib/errors.js';
import type { Logger } from '../telemetry/logger.js';
import { TokenAuth } from './auth.js';
import { readTlsMaterial, setSecureContext, type TlsMaterial } from './transport.js';

export type ReloadResult = 'reloaded' | 'failed' | 'off';

export interface ReloadReport {
  readonly tokens: ReloadResult;
  readonly tls: ReloadResult;
}

/**
 * What proves who a client is: the ingest tokens (AUTH_TOKENS plus AUTH_TOKENS_FILE) and the
 * TLS certificate, key and client CA. `reload` (SIGHUP) re-reads the files; a file that fails
 * to load or parse keeps what was in force, so a typo never locks the fleet out. Open
 * connections are never dropped: new tokens apply to the next request, a new certificate to
 * the next handshake.
 */
export class Credentials {
  private server: http.Server | null = null;

  private constructor(
    private readonly config: ServerConfig,
    private readonly logger: Logger,
    readonly tokens: TokenAuth,
    private material: TlsMaterial | null,
  ) {}

  /** Loads everything once; a bad file stops start-up (`config_invalid`, naming the variable). */
  static async open(config: ServerConfig, logger: Logger): Promise<Credentials> {
    const entries = await loadTokens(config, logger);
    const material = config.tls === null ? null : await readTlsMaterial(config.tls);
    // With a token file, auth stays on even when the file lists no token: emptying it locks every node out.
    return new Credentials(config, logger, new TokenAuth(entries, { required: config.authTokensFile !== null }), material);
  }

  get tls(): TlsMaterial | null {
    return this.material;
  }

  /** Whether tokens bind node ids or client certificates name them: events are stamped with the node. */
  get summary(): { tokens: number; tls: boolean; mtls: boolean } {
    return { tokens: this.tokens.size, tls: this.material !== null, mtls: (this.material?.ca ?? null) !== null };
  }

  /** The listening HTTPS server whose certificate `reload` replaces. */
  attach(server: http.Server): void {
    this.server = server;
  }

  async reload(): Promise<ReloadReport> {
    const tokens = await this.reloadTokens();
    const tls = await this.reloadTls();
    return { tokens, tls };
  }

  private async reloadTokens(): Promise<ReloadResult> {
    if (this.config.authTokensFile === null) return 'off';
    try {
      const entries = await loadTokens(this.config, this.logger);
      this.tokens.replace(entries);
      this.logger.info({ tokens: entries.length, nodes: new Set(entries.map((e) => e.node)).size }, 'ingest tokens reloaded');
      return 'reloaded';
    } catch (err) {
      this.logger.error({ err: { code: codeOf(err), message: messageOf(err) } }, 'ingest tokens NOT reloaded; the previous tokens stay in force');
      return 'failed';
    }
  }

  private async reloadTls(): Promise<ReloadResult> {
    if (this.config.tls === null || this.material === null) return 'off';
    try {
      const material = await readTlsMaterial(this.config.tls);
      if (this.server !== null) setSecureContext(this.server, material);
      this.material = material;
      this.logger.info({ mtls: material.ca !== null }, 'TLS certificate reloaded');
      return 'reloaded';
    } catch (err) {
      this.logger.error({ err: { code: codeOf(err), message: messageOf(err) } }, 'TLS certificate NOT reloaded; the previous one stays in force');
      return 'failed';
    }
  }
}

/** AUTH_TOKENS, plus the file's entries when AUTH_TOKENS_FILE is set, checked together. */
async function loadTokens(config: ServerConfig, logger: Logger): Promise<TokenEntry[]> {
  const file = config.authTokensFile;
  if (file === null) return [...config.authTokens];
  let text: string;
  try {
    const info = await stat(file);
    if ((info.mode & 0o004) !== 0) logger.warn({ file }, 'AUTH_TOKENS_FILE is readable by every user: chmod 600 it, or store sha256:<hex> hashes');
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new MothershipError('config_invalid', `AUTH_TOKENS_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const entries = checkEntries([...config.authTokens, ...parseTokenFile(text)], 'AUTH_TOKENS and AUTH_TOKENS_FILE');
  if (entries.length === 0) logger.warn({ file }, 'AUTH_TOKENS_FILE lists no token: every ingest request is refused until it does');
  return entries;
}

function codeOf(err: unknown): string {
  return err instanceof MothershipError ? err.code : 'error';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
