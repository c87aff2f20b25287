/** `npm run docs:config`: rewrites the configuration table in docs/CONFIGURATION.md from the variables table. */
import { readFileSync, writeFileSync } from 'node:fs';
import { CONFIG_DOC, withConfigTable } from '../config/markdown.js';

const docPath = new URL('../../../docs/CONFIGURATION.md', import.meta.url);
const before = readFileSync(docPath, 'utf8');
const after = withConfigTable(before);
if (after !== before) writeFileSync(docPath, after);
process.stdout.write(`${CONFIG_DOC} configuration table ${before === after ? 'is up to date' : 'updated'}\n`);
