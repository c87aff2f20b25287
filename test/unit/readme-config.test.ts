/** The generated configuration table (docs/CONFIGURATION.md) matches the variables the code reads. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CONFIG_DOC, withConfigTable } from '../../src/config/markdown.js';
import { VARIABLES } from '../../src/config/variables.js';

const page = readFileSync(new URL(`../../../${CONFIG_DOC}`, import.meta.url), 'utf8');

test(`the ${CONFIG_DOC} configuration table matches the variables the code reads (run \`npm run docs:config\`)`, () => {
  assert.equal(page, withConfigTable(page));
});

test(`every variable the code reads has a row in ${CONFIG_DOC}`, () => {
  for (const v of VARIABLES) assert.ok(page.includes(`\n| \`${v.name}\` |`), v.name);
});

test('withConfigTable refuses a page without the markers, and replaces a stale table', () => {
  assert.throws(() => withConfigTable('# Configuration\n\nno table here\n'), /markers/);
  const stale = '# c\n<!-- config-table:start -->\n| `OLD_VARIABLE` | — | string | gone |\n<!-- config-table:end -->\n';
  const fresh = withConfigTable(stale);
  assert.ok(!fresh.includes('OLD_VARIABLE'));
  assert.ok(fresh.includes('| `SERVER_PORT` |'));
  assert.equal(withConfigTable(fresh), fresh);
});

test('every variable of the seed contract is still read', () => {
  const names = new Set(VARIABLES.map((v) => v.name));
  const seed = ['TSDB_ENABLED', 'TSDB_HOST', 'TSDB_PORT', 'TSDB_DATABASE', 'TSDB_USERNAME', 'TSDB_PASSWORD', 'LOKI_ENABLED', 'LOKI_URL', 'LOKI_TENANT_ID', 'LOKI_USERNAME', 'LOKI_PASSWORD', 'LOKI_BATCH_SIZE', 'LOKI_BATCH_TIMEOUT_SECONDS', 'SERVER_HOST', 'SERVER_PORT', 'LOG_LEVEL', 'LOG_FORMAT', 'DEV_MODE'];
  for (const name of seed) assert.ok(names.has(name as never), name);
});
