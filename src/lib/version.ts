import { readFileSync } from 'node:fs';

/** The package version, read once from package.json (two levels above dist/src/lib). */
export const VERSION: string = readVersion();

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    // Running from an unusual layout (e.g. a bundled copy): the version is informational only.
    return '0.0.0';
  }
}
