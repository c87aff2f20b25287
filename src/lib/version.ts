import { readFileSync } from 'node:fs';

/** The package version, read once from package.json (found from dist/src/lib, or src/lib under tsx). */
export const VERSION: string = readVersion();

function readVersion(): string {
  for (const relative of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'edgebot-mothership' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not at this level; try the next
    }
  }
  // An unusual layout (e.g. a bundled copy): the version is informational only.
  return '0.0.0';
}
