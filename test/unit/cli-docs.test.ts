/** docs/CLI.md documents every command and option of the CLI's table (src/cli/commands.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { usageLine } from '../../src/cli/args.js';
import { COMMANDS } from '../../src/cli/commands.js';

const doc = readFileSync(new URL('../../../docs/CLI.md', import.meta.url), 'utf8');

/** The text of the `## \`mothership <path>\`` section, up to the next `## `. */
function section(path: readonly string[]): string {
  const heading = `## \`mothership ${path.join(' ')}\``;
  const start = doc.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `docs/CLI.md has a section "${heading}"`);
  const end = doc.indexOf('\n## ', start + heading.length + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

for (const command of COMMANDS) {
  test(`docs/CLI.md documents mothership ${command.path.join(' ')}`, () => {
    const text = section(command.path);
    assert.ok(text.includes(`usage: ${usageLine(command)}`), `its usage line: ${usageLine(command)}`);
    for (const o of command.options) {
      assert.ok(text.includes(`\`--${o.name}${o.value === undefined ? '' : ` ${o.value}`}\``), `--${o.name}`);
      if (o.env !== undefined) {
        assert.ok(text.includes(`\`${o.env}\``), `${o.env} in the section`);
        assert.ok(doc.includes(`| \`${o.env}\` |`), `${o.env} in the environment table`);
      }
      if (o.default !== undefined) assert.ok(text.includes(`\`${o.default}\``), `the default of --${o.name}`);
    }
  });
}

test('docs/CLI.md has the exit codes table', () => {
  for (const code of ['0', '1', '2']) assert.match(doc, new RegExp(`^\\| \`${code}\` \\|`, 'm'));
});
