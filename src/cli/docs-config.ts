/** `npm run docs:config`: rewrites the configuration table in README.md from the variables table. */
import { readFileSync, writeFileSync } from 'node:fs';
import { withConfigTable } from '../config/markdown.js';

const readmePath = new URL('../../../README.md', import.meta.url);
const before = readFileSync(readmePath, 'utf8');
const after = withConfigTable(before);
writeFileSync(readmePath, after);
process.stdout.write(before === after ? 'README.md configuration table is up to date\n' : 'README.md configuration table updated\n');
