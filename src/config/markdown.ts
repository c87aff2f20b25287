import { VARIABLES, type VariableKind, type VariableSpec } from './variables.js';

/** The page that holds the generated configuration table, relative to the repository root. */
export const CONFIG_DOC = 'docs/CONFIGURATION.md';

/** The configuration table of CONFIG_DOC, generated from the variables table so the two cannot drift. */
export function configTableMarkdown(): string {
  const rows = (VARIABLES as readonly VariableSpec[]).map(
    (v) => `| \`${v.name}\` | ${v.default === undefined ? '—' : `\`${v.default}\``} | ${kindText(v.kind)} | ${v.description}${v.secret === true ? ' *(secret: never logged)*' : ''} |`,
  );
  return ['| variable | default | type | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

function kindText(kind: VariableKind): string {
  switch (kind.type) {
    case 'integer':
      return `integer ${kind.min}–${kind.max}`;
    case 'number':
      return `number ${kind.min}–${kind.max}`;
    case 'enum':
      return kind.values.join(' \\| ');
    case 'list':
      return 'comma-separated list';
    default:
      return kind.type;
  }
}

export const TABLE_START = '<!-- config-table:start -->';
export const TABLE_END = '<!-- config-table:end -->';

/** `page` (the text of CONFIG_DOC) with the text between the markers replaced by the current table. */
export function withConfigTable(page: string): string {
  const start = page.indexOf(TABLE_START);
  const end = page.indexOf(TABLE_END);
  if (start < 0 || end < start) throw new Error(`${CONFIG_DOC} has no ${TABLE_START} … ${TABLE_END} markers`);
  return `${page.slice(0, start + TABLE_START.length)}\n${configTableMarkdown()}\n${page.slice(end)}`;
}
