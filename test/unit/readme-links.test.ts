/**
 * The README and the pages of docs/ stay usable: the README is short, every relative link (and
 * its #anchor) leads somewhere, every `npm run X` is a script of package.json, and every
 * environment variable the README names is one the code reads (or one of a few it names on
 * purpose: the CLI's and the tests' own).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VARIABLES } from '../../src/config/variables.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const README_MAX_LINES = 300;

/**
 * Variables the README may name although the server does not read them: the `mothership`
 * CLI's defaults (docs/CLI.md) and the test suite's peers.
 */
const NOT_SERVER_VARIABLES = new Set(['MOTHERSHIP_URL', 'AUTH_TOKEN', 'NODE_ID', 'TEST_DATABASE_URL', 'TEST_TIMESCALEDB_URL', 'TEST_LOKI_URL', 'TEST_NATS_URL', 'NATS_SERVER_BIN']);

/** README.md and every page of docs/, as paths relative to the repository root. */
function pages(): string[] {
  const docs = readdirSync(path.join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => path.join('docs', name));
  return ['README.md', ...docs];
}

const read = (rel: string): string => readFileSync(path.join(ROOT, rel), 'utf8');

/** The markdown without its fenced code blocks (lines kept, so line numbers stay true). */
export function withoutFences(md: string): string {
  let fence: string | null = null;
  return md
    .split('\n')
    .map((line) => {
      const m = /^\s*(`{3,}|~{3,})/.exec(line);
      if (m !== null && (fence === null || m[1]?.startsWith(fence) === true)) {
        fence = fence === null ? (m[1] ?? '').slice(0, 3) : null;
        return '';
      }
      return fence === null ? line : '';
    })
    .join('\n');
}

/** Link targets of `md` outside code: inline links and images, and reference definitions. */
export function linkTargets(md: string): string[] {
  const text = withoutFences(md).replace(/`[^`\n]*`/g, '');
  const targets: string[] = [];
  for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) targets.push(m[1] ?? '');
  for (const m of text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) targets.push(m[1] ?? '');
  return targets;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors a markdown page offers: its headings (duplicates numbered as GitHub does) and explicit ids. */
export function anchors(md: string): Set<string> {
  const found = new Set<string>();
  const seen = new Map<string, number>();
  for (const m of withoutFences(md).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    found.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of md.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) found.add(m[1] ?? '');
  return found;
}

/** The relative links of page `rel` (root-relative path) that lead nowhere, with the reason. */
export function brokenLinks(rel: string, md: string, readPage: (rel: string) => string | null): string[] {
  const broken: string[] = [];
  for (const target of linkTargets(md)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto: …
    const [file = '', anchor] = target.split('#', 2);
    const dest = file === '' ? rel : path.normalize(path.join(path.dirname(rel), decodeURIComponent(file)));
    if (dest.startsWith('..')) {
      broken.push(`${target}: leaves the repository`);
      continue;
    }
    const text = file === '' ? md : readPage(dest);
    if (text === null) {
      broken.push(`${target}: no such file`);
      continue;
    }
    if (anchor !== undefined && anchor !== '' && dest.endsWith('.md') && !anchors(text).has(anchor)) {
      broken.push(`${target}: no heading #${anchor} in ${dest}`);
    }
  }
  return broken;
}

/** Scripts named by `npm run X` in `md`, code blocks included. */
export function npmRunScripts(md: string): string[] {
  return [...md.matchAll(/\bnpm run(?:-script)?\s+([A-Za-z0-9_-]+(?::[A-Za-z0-9_-]+)*)/g)].map((m) => m[1] ?? '');
}

/** Names in backticks (inline code and fenced blocks) that look like environment variables: ALL_CAPS with an underscore. */
export function backtickedVariables(md: string): string[] {
  const code: string[] = [];
  const fenced = md.split('\n');
  let inFence = false;
  for (const line of fenced) {
    if (/^\s*(`{3,}|~{3,})/.test(line)) {
      inFence = !inFence;
      continue;
    }
    if (inFence) code.push(line);
  }
  for (const m of withoutFences(md).matchAll(/`([^`\n]+)`/g)) code.push(m[1] ?? '');
  const names = new Set<string>();
  for (const text of code) {
    // Not part of a longer word, a path (docs/LOKI_GRAFANA_SETUP.md) or a flag.
    for (const m of text.matchAll(/(?<![A-Za-z0-9_\-/.])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?![A-Za-z0-9_-]|\.[A-Za-z])/g)) names.add(m[1] ?? '');
  }
  return [...names];
}

function readPageOrNull(rel: string): string | null {
  const full = path.join(ROOT, rel);
  if (!existsSync(full)) return null;
  return statSync(full).isDirectory() ? '' : readFileSync(full, 'utf8');
}

test(`README.md has at most ${README_MAX_LINES} lines (reference material belongs in docs/)`, () => {
  const lines = read('README.md').split('\n').length - (read('README.md').endsWith('\n') ? 1 : 0);
  assert.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines`);
});

test('every relative link in README.md and docs/*.md leads to an existing file and heading', () => {
  const broken = pages().flatMap((rel) => brokenLinks(rel, read(rel), readPageOrNull).map((b) => `${rel}: ${b}`));
  assert.deepEqual(broken, []);
});

test('every `npm run X` in README.md and docs/*.md is a script of package.json', () => {
  const scripts = new Set(Object.keys((JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts));
  const unknown = pages().flatMap((rel) => npmRunScripts(read(rel)).filter((s) => !scripts.has(s)).map((s) => `${rel}: npm run ${s}`));
  assert.deepEqual(unknown, []);
});

test('every environment variable named in README.md is read by the code (or named on purpose)', () => {
  const read_ = new Set<string>(VARIABLES.map((v) => v.name));
  const unknown = backtickedVariables(read('README.md')).filter((name) => !read_.has(name) && !NOT_SERVER_VARIABLES.has(name));
  assert.deepEqual(unknown, [], 'add the variable to src/config/variables.ts, fix the name, or explain it in docs/');
  for (const name of NOT_SERVER_VARIABLES) assert.ok(!read_.has(name), `${name} is a server variable now: take it off the allow-list`);
});

test('the checks find what they look for', () => {
  const md = [
    '# Title',
    '## `GET /` and more',
    "## Operator's CLI",
    'See [a](docs/A.md#part-one), [b](docs/B.md), [c](#operators-cli), [d](#nope), [web](https://example.com/x.md).',
    '`[not a link](nowhere.md)` and `SERVER_PORT`, `MADE_UP_VAR=1`, `Retry-After`, `TSDB_*`, `$HOME`.',
    '```bash',
    '[also not a link](nowhere.md)',
    'NOT_READ_ANYWHERE=1 npm run nosuch -- --flag   # see docs/SOME_PAGE.md; npm run bench:matrix: figures',
    '```',
    '[ref]: docs/C.md',
  ].join('\n');
  const files: Record<string, string> = { 'docs/A.md': '# A\n## Part one\n', 'docs/C.md': '' };
  assert.deepEqual(brokenLinks('README.md', md, (rel) => files[rel] ?? null), ['docs/B.md: no such file', '#nope: no heading #nope in README.md']);
  assert.deepEqual(brokenLinks('docs/X.md', '[up](../../x.md) [ok](A.md#part-one) [bad](A.md#part-two)', (rel) => files[rel] ?? null), [
    '../../x.md: leaves the repository',
    'A.md#part-two: no heading #part-two in docs/A.md',
  ]);
  assert.ok(anchors(md).has('get--and-more'));
  assert.deepEqual(npmRunScripts(md), ['nosuch', 'bench:matrix']);
  assert.deepEqual(backtickedVariables(md).sort(), ['MADE_UP_VAR', 'NOT_READ_ANYWHERE', 'SERVER_PORT']);
  assert.deepEqual(anchors('## Same\n## Same\n'), new Set(['same', 'same-1']));
});
