/**
 * A clone with nothing beside it must build, test and bench: no source, test, bench or CI file may
 * read a path outside the repository. The only exception is `.ci/run` starting the optional real
 * peers (TimescaleDB, Loki) from the team's shared folder beside the clone, when that folder exists.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const THIS_FILE = path.join('test', 'unit', 'self-contained.test.ts');
/** Spelled in pieces so that this file's own examples are not themselves a path to flag. */
const SHARED = ['..', 'shared'].join('/');

/** Places in a machine's file system that only this team's machines have. */
const FOREIGN = [/\.\.\/shared\b/, /\bshared\/samples\b/, /(?<![\w.])\/(?:work|home|root|Users)\//];
/** `.ci/run` may start the optional peers, and nothing else from beside the clone. */
const CI_ALLOWED = /\.\.\/shared\/peers\b/g;

export interface OutsidePath {
  readonly line: number;
  readonly text: string;
}

/**
 * Paths in `source` (the file at `file`, relative to the repository root) that lead outside the
 * repository: a known foreign folder, or a relative literal that climbs above the root when
 * resolved from where the code runs (the built file under dist/). Module specifiers (import/export … from) are resolved by the compiler and
 * are not file reads, so they are left out.
 */
export function outsidePaths(file: string, source: string): OutsidePath[] {
  const found: OutsidePath[] = [];
  const builtDir = path.join('dist', path.dirname(file));
  source.split('\n').forEach((raw, i) => {
    const text = file === '.ci/run' ? raw.replace(CI_ALLOWED, '') : raw;
    if (/^\s*(import|export)\b.*\bfrom\s/.test(text) || /^\s*\}\s*from\s/.test(text) || /\bimport\(['"]/.test(text)) return;
    if (FOREIGN.some((re) => re.test(text))) {
      found.push({ line: i + 1, text: raw.trim() });
      return;
    }
    for (const m of text.matchAll(/['"`]((?:\.\.\/)+)[^'"`]*['"`]/g)) {
      const climb = m[1] ?? '';
      const fromBuilt = path.normalize(path.join(builtDir, climb));
      if (fromBuilt === '..' || fromBuilt.startsWith('../')) found.push({ line: i + 1, text: raw.trim() });
    }
  });
  return found;
}

function sourceFiles(): string[] {
  const files: string[] = ['.ci/run', 'package.json'];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (rel !== path.join('test', 'fixtures')) walk(rel);
      } else if (/\.(ts|js|mjs|cjs|sh|json)$/.test(entry.name) && rel !== THIS_FILE) files.push(rel);
    }
  };
  for (const dir of ['src', 'test', 'bench']) walk(dir);
  return files;
}

test('no source, test, bench or CI file reads a path outside the repository', () => {
  const offenders = sourceFiles().flatMap((file) =>
    outsidePaths(file, readFileSync(path.join(ROOT, file), 'utf8')).map((p) => `${file}:${p.line}: ${p.text}`),
  );
  assert.deepEqual(offenders, [], `these read outside the repository (copy the data into test/fixtures/):\n${offenders.join('\n')}`);
});

test('the guard catches the ways a path leaves the repository', () => {
  const flagged = (file: string, line: string): boolean => outsidePaths(file, line).length > 0;
  assert.ok(flagged('test/helpers/samples.ts', `const dir = path.resolve(process.cwd(), '${SHARED}/samples');`));
  assert.ok(flagged('test/helpers/samples.ts', `new URL('../../../${SHARED}/samples', import.meta.url)`));
  assert.ok(flagged('test/helpers/samples.ts', "new URL('../../../../elsewhere/data.json', import.meta.url)"));
  assert.ok(flagged('bench/run.ts', "const dir = '/work/shared/samples';"));
  assert.ok(flagged('bench/run.ts', "readFileSync('/home/me/payload.json')"));
  assert.ok(flagged('.ci/run', `cp ${SHARED}/samples/* test/fixtures/`));
  assert.ok(!flagged('.ci/run', `if [ -d ${SHARED}/peers ]; then ${SHARED}/peers/start-loki; fi`));
  assert.ok(!flagged('bench/run.ts', "const repoRoot = fileURLToPath(new URL('../../', import.meta.url));"));
  assert.ok(!flagged('src/cli/docs-config.ts', "new URL('../../../README.md', import.meta.url)"));
  assert.ok(!flagged('test/unit/x.test.ts', "import { a } from '../../src/a.js';"));
  assert.ok(!flagged('test/unit/x.test.ts', "const readme = '/tmp/x';"));
});

test('the samples the tests use are in the repository', () => {
  const dir = path.join(ROOT, 'test', 'fixtures', 'samples');
  const names = readdirSync(dir);
  for (const name of ['payload-20250822_171127_936.json', 'payload-20250822_171127_936.json.gz', 'syslog_events.jsonl', 'snmp_metrics.jsonl', 'weather_data.csv']) {
    assert.ok(names.includes(name), `${name} missing from test/fixtures/samples`);
  }
});
