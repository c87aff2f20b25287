/**
 * Loki (Prometheus) label names: `[a-zA-Z_][a-zA-Z0-9_]*`, and names starting with `__` are
 * reserved for Loki's own use. Pure and dependency-free: the config loader uses it too.
 */
export const MAX_LABELS_PER_STREAM = 15;

const VALID_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function isValidLabelName(name: string): boolean {
  return VALID_NAME_RE.test(name) && !name.startsWith('__');
}

/**
 * The label name for a field name: every character outside `[a-zA-Z0-9_]` becomes `_`, a
 * leading digit gets a `_` in front, a leading run of underscores shrinks to one (`__x` is
 * reserved). `source-ip` → `source_ip`, `@timestamp` → `_timestamp`, `1st` → `_1st`.
 * Null when nothing usable is left (an empty name).
 */
export function toLabelName(field: string): string | null {
  let name = field.trim().replace(/[^a-zA-Z0-9_]/g, '_');
  if (name.length === 0) return null;
  if (/^[0-9]/.test(name)) name = `_${name}`;
  name = name.replace(/^_{2,}/, '_');
  if (name === '_') return null;
  return name.length > 1024 ? name.slice(0, 1024) : name;
}
