/**
 * The CLI's argument parsing and help, derived from one declarative description per command
 * (see commands.ts): the same table gives node:util parseArgs its options, validates values
 * (from the command line, else the environment, else a default) and renders `--help`.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Env = Readonly<Record<string, string | undefined>>;

export type ValueKind =
  | { readonly type: 'string' }
  | { readonly type: 'url' }
  | { readonly type: 'int'; readonly min: number; readonly max: number }
  | { readonly type: 'number'; readonly min: number; readonly max: number }
  | { readonly type: 'choice'; readonly choices: readonly string[] };

export interface OptionSpec {
  /** The long name, without the dashes. */
  readonly name: string;
  readonly short?: string;
  /** The value's placeholder in help (`URL`). An option without one is a flag. */
  readonly value?: string;
  /** How the value is checked and converted; a plain string when absent. */
  readonly kind?: ValueKind;
  /** The environment variable the option defaults from. */
  readonly env?: string;
  /** The default when neither the option nor its variable is given. */
  readonly default?: string;
  /** What help says the default is, when it is not a plain value. */
  readonly defaultText?: string;
  /** Neither the option, its variable nor a default may be missing. */
  readonly required?: boolean;
  readonly description: string;
}

export interface PositionalSpec {
  /** The placeholder in usage and help: `FILE`. */
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly description: string;
}

/** What a command accepts and says about itself; commands.ts adds what it does. */
export interface CommandSyntax {
  /** The words naming the command: ['send'], ['deadletters', 'list']. */
  readonly path: readonly string[];
  /** One line, for the command list. */
  readonly summary: string;
  /** Paragraphs separated by blank lines; wrapped when shown. */
  readonly description: string;
  readonly positionals?: PositionalSpec;
  readonly options: readonly OptionSpec[];
  readonly examples?: readonly string[];
}

export const PROGRAM = 'mothership';
const HELP_OPTION: OptionSpec = { name: 'help', short: 'h', description: 'show this help and exit' };
const WIDTH = 80;

/**
 * An error the CLI reports on one line and exits with: 2 for a usage error or invalid
 * configuration (with the command's usage when `showUsage`), 1 when the command ran and failed.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
    readonly showUsage = false,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, 2, true);
}

/** A command's arguments after parsing, with values converted and defaults applied. */
export class ParsedArgs {
  constructor(
    readonly positionals: readonly string[],
    private readonly values: ReadonlyMap<string, string | number | boolean>,
  ) {}

  string(name: string): string | undefined {
    const v = this.values.get(name);
    if (v !== undefined && typeof v !== 'string') throw new Error(`option --${name} is not a string option`);
    return v;
  }

  /** A value that always has one (a default, or required): a missing one is a bug in the table. */
  requiredString(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw new Error(`option --${name} has no value and no default`);
    return v;
  }

  number(name: string): number {
    const v = this.values.get(name);
    if (typeof v !== 'number') throw new Error(`option --${name} has no number value`);
    return v;
  }

  optionalNumber(name: string): number | undefined {
    const v = this.values.get(name);
    if (v !== undefined && typeof v !== 'number') throw new Error(`option --${name} is not a number option`);
    return v;
  }

  flag(name: string): boolean {
    return this.values.get(name) === true;
  }
}

/** Whether `args` ask for help (-h or --help before any `--`), whatever else they hold. */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/**
 * Parses a command's arguments against its syntax. Throws a usage CliError naming the problem
 * (unknown option, missing value, bad value, missing or extra arguments). Help is not handled
 * here: callers check `wantsHelp` first.
 */
export function parseCommandArgs(syntax: CommandSyntax, args: readonly string[], env: Env): ParsedArgs {
  const options = [...syntax.options, HELP_OPTION];
  const config: NonNullable<ParseArgsConfig['options']> = {};
  for (const o of options) config[o.name] = o.short === undefined ? { type: o.value === undefined ? 'boolean' : 'string' } : { type: o.value === undefined ? 'boolean' : 'string', short: o.short };
  // Not strict: unknown options and missing values come back as tokens, and are reported here
  // in one line each rather than with parseArgs' longer messages.
  const { tokens } = parseArgs({ args: [...args], options: config, allowPositionals: true, strict: false, tokens: true });
  const given = new Map<string, string | boolean>();
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') positionals.push(token.value);
    if (token.kind !== 'option') continue;
    const spec = options.find((o) => o.name === token.name);
    if (spec === undefined) throw usageError(`unknown option '${token.rawName}'`);
    const shown = optionLabel(spec, token.rawName);
    if (spec.value === undefined) {
      if (token.value !== undefined) throw usageError(`option ${shown} takes no value`);
      given.set(spec.name, true);
    } else {
      if (token.value === undefined) throw usageError(`option ${shown} needs a value (${spec.value})`);
      if (!token.inlineValue && token.value.startsWith('-') && token.value !== '-') {
        throw usageError(`option ${shown} needs a value (${spec.value}), not '${token.value}' (for a value starting with '-', write --${spec.name}=${token.value})`);
      }
      given.set(spec.name, token.value);
    }
  }
  const values = new Map<string, string | number | boolean>();
  for (const spec of syntax.options) {
    const fromArgs = given.get(spec.name);
    if (typeof fromArgs === 'boolean') {
      values.set(spec.name, fromArgs);
      continue;
    }
    const fromEnv = spec.env === undefined ? undefined : nonEmpty(env[spec.env]);
    let raw: string | undefined;
    let where: string;
    if (fromArgs !== undefined) [raw, where] = [fromArgs, `--${spec.name}`];
    else if (fromEnv !== undefined) [raw, where] = [fromEnv, `${spec.env ?? ''} (environment)`];
    else [raw, where] = [spec.default, `the default of --${spec.name}`];
    if (raw === undefined) {
      if (spec.required === true) throw usageError(`missing --${spec.name}${spec.env === undefined ? '' : ` (or set ${spec.env})`}`);
      continue;
    }
    if (spec.value !== undefined) values.set(spec.name, convert(spec.kind ?? { type: 'string' }, raw, where));
  }
  const p = syntax.positionals;
  const min = p?.min ?? 0;
  const max = p?.max ?? 0;
  if (positionals.length < min) throw usageError(`missing ${p?.name ?? 'argument'}${min > 1 ? ` (at least ${min})` : ''}`);
  if (positionals.length > max) {
    const extra = positionals[max] ?? '';
    throw usageError(max === 0 ? `unexpected argument '${extra}' (${commandName(syntax)} takes none)` : `unexpected argument '${extra}' (${commandName(syntax)} takes at most ${max})`);
  }
  return new ParsedArgs(positionals, values);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function convert(kind: ValueKind, raw: string, where: string): string | number {
  switch (kind.type) {
    case 'string':
      if (raw === '') throw usageError(`${where} must not be empty`);
      return raw;
    case 'url': {
      let url: URL | null = null;
      try {
        url = new URL(raw);
      } catch {
        // reported below
      }
      if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw usageError(`${where} must be an http:// or https:// URL, got '${raw}'`);
      return raw.replace(/\/+$/, '');
    }
    case 'int':
    case 'number': {
      const n = raw.trim() === '' ? Number.NaN : Number(raw);
      const whole = kind.type === 'int';
      if (!Number.isFinite(n) || (whole && !Number.isInteger(n)) || n < kind.min || n > kind.max) {
        throw usageError(`${where} must be a ${whole ? 'whole number' : 'number'} from ${kind.min} to ${kind.max}, got '${raw}'`);
      }
      return n;
    }
    case 'choice':
      if (!kind.choices.includes(raw)) throw usageError(`${where} must be one of ${kind.choices.join(', ')}, got '${raw}'`);
      return raw;
  }
}

function optionLabel(spec: OptionSpec, rawName: string): string {
  return rawName.startsWith('--') || spec.short === undefined ? `'--${spec.name}'` : `'-${spec.short}' (--${spec.name})`;
}

export function commandName(syntax: CommandSyntax): string {
  return `${PROGRAM} ${syntax.path.join(' ')}`;
}

/** `mothership send [options] FILE...` */
export function usageLine(syntax: CommandSyntax): string {
  const parts = [commandName(syntax)];
  if (syntax.options.length > 0) parts.push('[options]');
  const p = syntax.positionals;
  if (p !== undefined) {
    const many = p.max > 1 ? '...' : '';
    parts.push(p.min > 0 ? `${p.name}${many}` : `[${p.name}${many}]`);
  }
  return parts.join(' ');
}

/** The text of `mothership <command> --help`. */
export function renderCommandHelp(syntax: CommandSyntax): string {
  const out: string[] = [`usage: ${usageLine(syntax)}`, '', ...wrapParagraphs(syntax.description, WIDTH)];
  const p = syntax.positionals;
  if (p !== undefined) out.push('', 'arguments:', ...table([[`${p.name}${p.max > 1 ? '...' : ''}`, p.description]]));
  out.push('', 'options:', ...table([...syntax.options, HELP_OPTION].map((o) => [optionSignature(o), optionDescription(o)])));
  if (syntax.examples !== undefined && syntax.examples.length > 0) out.push('', 'examples:', ...syntax.examples.map((e) => `  ${e}`));
  out.push('', ...wrap('exit codes: 0 success, 1 the command ran and failed, 2 usage error or invalid configuration', WIDTH));
  return `${out.join('\n')}\n`;
}

export function optionSignature(o: OptionSpec): string {
  const long = `--${o.name}${o.value === undefined ? '' : ` ${o.value}`}`;
  return o.short === undefined ? long : `-${o.short}, ${long}`;
}

export function optionDescription(o: OptionSpec): string {
  const notes: string[] = [];
  if (o.env !== undefined) notes.push(`[env: ${o.env}]`);
  const def = o.defaultText ?? o.default;
  if (def !== undefined) notes.push(`[default: ${def}]`);
  if (o.required === true) notes.push('[required]');
  return notes.length === 0 ? o.description : `${o.description} ${notes.join(' ')}`;
}

/** Two columns: names, then descriptions wrapped beside them (or below, when a name is long). */
export function table(rows: ReadonlyArray<readonly [string, string]>, width = WIDTH): string[] {
  const nameWidth = Math.min(30, Math.max(...rows.map(([name]) => name.length)));
  const indent = 2 + nameWidth + 2;
  const lines: string[] = [];
  for (const [name, text] of rows) {
    const wrapped = wrap(text, Math.max(20, width - indent));
    if (name.length > nameWidth) {
      lines.push(`  ${name}`);
      for (const l of wrapped) lines.push(`${' '.repeat(indent)}${l}`);
    } else {
      wrapped.forEach((l, i) => lines.push(i === 0 ? `  ${name.padEnd(nameWidth)}  ${l}` : `${' '.repeat(indent)}${l}`));
    }
  }
  return lines;
}

function wrapParagraphs(text: string, width: number): string[] {
  return text.split(/\n\s*\n/).flatMap((para, i) => [...(i > 0 ? [''] : []), ...wrap(para.replace(/\s+/g, ' ').trim(), width)]);
}

export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '' || lines.length === 0) lines.push(line);
  return lines;
}
