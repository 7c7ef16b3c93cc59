// One typed config object per app: defaults in code, kebab-case flags, an env fallback derived from the flag
// name (--pool-size ⇄ KVFABRIC_POOL_SIZE), validated once with every problem reported together.
import { echo } from './echo.js';
import { KvError } from './errors.js';
import { parseSize } from './sizes.js';

export type FlagKind = 'string' | 'int' | 'number' | 'bool' | 'size' | 'list' | 'enum';

export interface FlagSpec<K extends FlagKind = FlagKind> {
  readonly kind: K;
  description: string;
  default?: FlagValue<K>;
  required?: boolean;
  choices?: readonly string[]; // enum only
  min?: number; // int, number, size
  max?: number;
  /** string only: an empty value given as a flag is a value, not a problem (`--hash-seed ""`). */
  allowEmpty?: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  validate?: (value: any) => string | undefined; // returns a problem, or undefined
}

export type FlagValue<K extends FlagKind> = K extends 'string' | 'enum'
  ? string
  : K extends 'int' | 'number' | 'size'
    ? number
    : K extends 'bool'
      ? boolean
      : string[];

export type FlagSpecs = Record<string, FlagSpec>;

/** camelCase keys of the resulting config object, from kebab flag names. */
type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
export type ConfigOf<S extends FlagSpecs> = {
  [F in keyof S & string as Camel<F>]: S[F] extends { kind: infer K extends FlagKind }
    ? S[F] extends { default: unknown } | { required: true }
      ? FlagValue<K>
      : FlagValue<K> | undefined
    : never;
};

export function envName(flag: string): string {
  return `KVFABRIC_${flag.replace(/-/g, '_').toUpperCase()}`;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export interface ParseResult<S extends FlagSpecs> {
  config: ConfigOf<S>;
  positionals: string[];
  help: boolean;
}

/**
 * Binds argv and env to `specs`. Precedence: flag, then env, then default. Throws one CONFIG_INVALID listing
 * every problem (unknown flags, bad values, missing required flags).
 */
export function parseConfig<S extends FlagSpecs>(
  specs: S,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ParseResult<S> {
  const problems: string[] = [];
  const raw = new Map<string, string>();
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    let spec = specs[name];
    if (!spec && name.startsWith('no-') && specs[name.slice(3)]?.kind === 'bool' && value === undefined) {
      name = name.slice(3);
      spec = specs[name];
      value = 'false';
    }
    if (!spec) {
      problems.push(`--${name}: unknown flag`);
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      if (
        spec.kind === 'bool' &&
        (next === undefined || next.startsWith('--') || !/^(true|false|1|0|yes|no)$/i.test(next))
      )
        value = 'true';
      else if (next === undefined) {
        problems.push(`--${name}: expects a value`);
        continue;
      } else {
        value = next;
        i++;
      }
    }
    raw.set(name, value);
  }

  const config: Record<string, unknown> = {};
  for (const [flag, spec] of Object.entries(specs)) {
    const fromFlag = raw.get(flag);
    const fromEnv = env[envName(flag)];
    const text = fromFlag ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined);
    const source = fromFlag !== undefined ? `--${flag}` : envName(flag);
    if (text === undefined) {
      if (spec.required && spec.default === undefined) problems.push(`--${flag}: required (or set ${envName(flag)})`);
      config[camel(flag)] = spec.default;
      continue;
    }
    const { value, problem } = convert(spec, text);
    if (problem) {
      problems.push(`${source}: ${problem}, got ${echo(text)}`);
      continue;
    }
    const extra = spec.validate?.(value as never);
    if (extra) {
      problems.push(`${source}: ${extra}, got ${echo(text)}`);
      continue;
    }
    config[camel(flag)] = value;
  }
  if (problems.length > 0) throw new KvError('CONFIG_INVALID', problems.join('; '));
  return { config: config as ConfigOf<S>, positionals, help };
}

function convert(spec: FlagSpec, text: string): { value?: unknown; problem?: string } {
  const range = (n: number) =>
    spec.min !== undefined && n < spec.min
      ? `expected at least ${spec.min}`
      : spec.max !== undefined && n > spec.max
        ? `expected at most ${spec.max}`
        : undefined;
  switch (spec.kind) {
    case 'string':
      return text.length === 0 && !spec.allowEmpty ? { problem: 'expected a non-empty value' } : { value: text };
    case 'int': {
      const n = Number(text);
      if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) return { problem: 'expected an integer' };
      const p = range(n);
      return p ? { problem: p } : { value: n };
    }
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) return { problem: 'expected a number' };
      const p = range(n);
      return p ? { problem: p } : { value: n };
    }
    case 'size': {
      try {
        const n = parseSize(text);
        const p = range(n);
        return p ? { problem: p } : { value: n };
      } catch {
        return { problem: 'expected a size like 16gb or 512mib' };
      }
    }
    case 'bool':
      if (/^(true|1|yes)$/i.test(text)) return { value: true };
      if (/^(false|0|no)$/i.test(text)) return { value: false };
      return { problem: 'expected true or false' };
    case 'list': {
      const items = text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
      return items.length === 0 ? { problem: 'expected a comma-separated list' } : { value: items };
    }
    case 'enum':
      return spec.choices?.includes(text) ? { value: text } : { problem: `expected one of ${spec.choices?.join('|')}` };
  }
}

/** Usage text for --help, one line per flag with its env var and default. */
export function usage(command: string, summary: string, specs: FlagSpecs): string {
  const lines = [`Usage: ${command} [flags]`, '', summary, '', 'Flags:'];
  for (const [flag, spec] of Object.entries(specs)) {
    const def = spec.default === undefined ? '' : ` (default ${JSON.stringify(spec.default)})`;
    const kind = spec.kind === 'enum' ? spec.choices?.join('|') : spec.kind;
    lines.push(`  --${flag} <${kind}>  ${spec.description}${def}  [env ${envName(flag)}]`);
  }
  return lines.join('\n');
}
