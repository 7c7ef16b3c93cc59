// The README's performance table, written from the result files: every number in it is read from a file
// (bench/results/<scenario>.json), a number a file lacks prints as "–", and a number that misses its target is bold.
// The rows themselves (which numbers, in which words) are in perf-rows.ts.
import type { CapacityRow } from '../capacity.js';
import type { ResultFile } from '../harness.js';

export type PerfFile = Pick<ResultFile, 'scenario' | 'date' | 'machine' | 'metrics' | 'reference' | 'ratios'> &
  Pick<ResultFile, 'capacity' | 'run'>;

/** A DESIGN target: a number on the wrong side of `value` misses it. */
export interface Goal {
  op: '≥' | '≤';
  value: number;
  /** As the target column shows it. */
  text: string;
}

export const atLeast = (value: number, unit = '', what = ''): Goal => ({
  op: '≥',
  value,
  text: `${what}≥ ${value}${unit}`,
});
export const atMost = (value: number, unit = '', what = ''): Goal => ({
  op: '≤',
  value,
  text: `${what}≤ ${value}${unit}`,
});

export const misses = (goal: Goal, n: number) => (goal.op === '≥' ? n < goal.value : n > goal.value);

/** One number of a cell: where in the file it is, how it prints, and the target it is held to. */
export interface Num {
  get(file: PerfFile): number | undefined;
  /** Decimals; by default 0 from 100 up, 1 from 10 up, 2 below. */
  digits?: number;
  goal?: Goal;
}

/** Several numbers printed as one range, `min–max` (one number when both print alike). */
export interface Span {
  span: Num[];
}

export interface NumOptions {
  digits?: number;
  goal?: Goal;
  /** Multiplies the stored number (units: µs to ms is 1e-3). */
  scale?: number;
}

const fromMap =
  (field: 'metrics' | 'reference' | 'ratios') =>
  (key: string, o: NumOptions = {}): Num => ({
    get: (f) => {
      const v = f[field][key];
      return typeof v === 'number' && Number.isFinite(v) ? v * (o.scale ?? 1) : undefined;
    },
    ...(o.digits !== undefined ? { digits: o.digits } : {}),
    ...(o.goal ? { goal: o.goal } : {}),
  });

/** `metrics[key]`: the kvfabric side. */
export const m = fromMap('metrics');
/** `reference[key]`: the reference measured in the same run. */
export const ref = fromMap('reference');
/** `ratios[key]`, two decimals unless told. */
export const ratio = (key: string, o: NumOptions = {}): Num => fromMap('ratios')(key, { digits: 2, ...o });

/** CPU ms per GiB of the first party on `path` and `side` whose name starts with `party` (capacity figures). */
export function cpu(path: string, side: CapacityRow['side'], party: string, o: NumOptions = {}): Num {
  return {
    get: (f) =>
      f.capacity?.find((r) => r.path === path && r.side === side && r.party.startsWith(party))?.msPerGiB ?? undefined,
    ...(o.digits !== undefined ? { digits: o.digits } : {}),
    ...(o.goal ? { goal: o.goal } : {}),
  };
}

/** `a / b` of two numbers of the same file (a ratio the file does not store), two decimals unless told. */
export function quotient(a: Num, b: Num, o: NumOptions = {}): Num {
  return {
    get: (f) => {
      const x = a.get(f);
      const y = b.get(f);
      return x === undefined || y === undefined || y === 0 ? undefined : x / y;
    },
    digits: o.digits ?? 2,
    ...(o.goal ? { goal: o.goal } : {}),
  };
}

export const span = (...nums: Num[]): Span => ({ span: nums });

export const MISSING = '–';

export function formatNum(n: number, digits?: number): string {
  const d = digits ?? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2);
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

const bold = (s: string, miss: boolean) => (miss ? `**${s}**` : s);

/** A cell as text, and whether every number in it was missing. */
type Printed = { text: string; missing: boolean };

function printNum(n: Num, f: PerfFile | undefined): Printed {
  const v = f ? n.get(f) : undefined;
  if (v === undefined) return { text: MISSING, missing: true };
  return { text: bold(formatNum(v, n.digits), n.goal !== undefined && misses(n.goal, v)), missing: false };
}

function printSpan(s: Span, f: PerfFile | undefined): Printed {
  const found = s.span.flatMap((n) => {
    const v = f ? n.get(f) : undefined;
    return v === undefined ? [] : [{ n, v }];
  });
  if (found.length === 0) return { text: MISSING, missing: true };
  const lo = found.reduce((a, b) => (b.v < a.v ? b : a));
  const hi = found.reduce((a, b) => (b.v > a.v ? b : a));
  const miss = found.some(({ n, v }) => n.goal !== undefined && misses(n.goal, v));
  const [a, b] = [formatNum(lo.v, lo.n.digits), formatNum(hi.v, hi.n.digits)];
  return { text: bold(a === b ? a : `${a}–${b}`, miss), missing: false };
}

/** A table cell: text with numbers read from a scenario's file. */
export type Cell = (file: PerfFile | undefined) => string;

/**
 * A cell from a template, e.g. cell`${m('save_256KiB_gbps')} GB/s`: each number prints from the file ("–" where
 * the file lacks it); a cell whose numbers are all missing prints as one "–". Strings are words, not numbers.
 */
export function cell(text: TemplateStringsArray, ...parts: (Num | Span | string)[]): Cell {
  return (file) => {
    const printed = parts.map((p) =>
      typeof p === 'string' ? p : 'span' in p ? printSpan(p, file) : printNum(p, file),
    );
    const numbers = printed.filter((p) => typeof p !== 'string');
    if (numbers.length > 0 && numbers.every((p) => p.missing)) return MISSING;
    return text.reduce((out, t, i) => {
      const p = printed[i];
      return out + t + (p === undefined ? '' : typeof p === 'string' ? p : p.text);
    }, '');
  };
}

export interface PerfRow {
  /** What is measured; the scenario's name follows it in the table. */
  path: string;
  scenario: string;
  kvfabric: Cell;
  reference: Cell;
  ratio: Cell;
  /** DESIGN targets (Goal), or words for a target that is not one number. */
  target: (Goal | string)[];
}

const HEADER = ['| path (DESIGN §8) | kvfabric | reference | ratio | target |', '|---|---|---|---|---|'];

/** The table rows in GitHub markdown, one per row, from `files` (by scenario name). */
export function perfTable(rows: PerfRow[], files: ReadonlyMap<string, PerfFile>): string[] {
  return [
    ...HEADER,
    ...rows.map((r) => {
      const f = files.get(r.scenario);
      const target = r.target.map((t) => (typeof t === 'string' ? t : t.text)).join('; ');
      return `| ${r.path} (\`${r.scenario}\`) | ${r.kvfabric(f)} | ${r.reference(f)} | ${r.ratio(f)} | ${target} |`;
    }),
  ];
}
