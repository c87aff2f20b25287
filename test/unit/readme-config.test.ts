import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { withConfigTable } from '../../src/config/markdown.js';
import { VARIABLES } from '../../src/config/variables.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

test('the README configuration table matches the variables the code reads (run `npm run docs:config`)', () => {
  assert.equal(readme, withConfigTable(readme));
});

test('every variable of the seed contract is still read', () => {
  const names = new Set(VARIABLES.map((v) => v.name));
  const seed = ['TSDB_ENABLED', 'TSDB_HOST', 'TSDB_PORT', 'TSDB_DATABASE', 'TSDB_USERNAME', 'TSDB_PASSWORD', 'LOKI_ENABLED', 'LOKI_URL', 'LOKI_TENANT_ID', 'LOKI_USERNAME', 'LOKI_PASSWORD', 'LOKI_BATCH_SIZE', 'LOKI_BATCH_TIMEOUT_SECONDS', 'SERVER_HOST', 'SERVER_PORT', 'LOG_LEVEL', 'LOG_FORMAT', 'DEV_MODE'];
  for (const name of seed) assert.ok(names.has(name as never), name);
});
