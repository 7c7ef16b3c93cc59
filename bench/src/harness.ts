// The bench harness: a scenario measures kvfabric and a reference in the same run and reports ratios.
// `npm run bench -- <scenario> [--quick]` writes bench/results/<scenario>.json and prints a table.
import { SingleBar, Presets } from 'cli-progress';
import { cpus, loadavg, totalmem } from 'node:os';
import type { CapacityRow } from './capacity.js';

export interface Table {
  columns: string[];
  rows: (string | number)[][];
}

export interface ScenarioResult {
  metrics: Record<string, number>;
  reference: Record<string, number>;
  ratios: Record<string, number>;
  /** The human table printed for this scenario (extra detail beyond metrics/reference/ratios). */
  table?: Table;
  /** CPU per GiB and GB/s one core could carry, per party, for kvfabric and the reference (bench/src/capacity.ts). */
  capacity?: CapacityRow[];
  notes?: string[];
}

export interface Progress {
  tick(n?: number): void;
  done(): void;
}

export interface BenchContext {
  /** Smaller sizes for a CI smoke run. */
  quick: boolean;
  progress(label: string, total: number): Progress;
  log(message: string): void;
}

export interface Scenario {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<ScenarioResult>;
}

export interface ResultFile extends ScenarioResult {
  scenario: string;
  date: string;
  machine: { cpus: number; cpuModel: string; memoryBytes: number; node: string; platform: string; quick: boolean };
  /** The `npm run bench` invocation that wrote this file: the files of one run share it (absent in older files). */
  run?: BenchRun;
}

export interface BenchRun {
  /** When the invocation started (ISO time). */
  started: string;
  /** The scenarios it was asked for, in order. */
  scenarios: string[];
  /** The host's 1-minute load average when it started. */
  loadAverage: number;
}

export function machineInfo(quick: boolean): ResultFile['machine'] {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    quick,
  };
}

export function benchRun(scenarios: string[]): BenchRun {
  return { started: new Date().toISOString(), scenarios, loadAverage: Number(loadavg()[0]!.toFixed(2)) };
}

export function createContext(quick: boolean): BenchContext {
  const interactive = process.stderr.isTTY === true;
  return {
    quick,
    log: (message) => process.stderr.write(`  ${message}\n`),
    progress(label, total) {
      if (!interactive) {
        // Non-interactive (CI, pipes): a line at every 10%.
        let done = 0;
        let lastDecile = -1;
        return {
          tick(n = 1) {
            done += n;
            const decile = Math.floor((done / Math.max(total, 1)) * 10);
            if (decile !== lastDecile) {
              lastDecile = decile;
              process.stderr.write(`  ${label}: ${Math.min(100, decile * 10)}%\n`);
            }
          },
          done() {
            if (lastDecile < 10) process.stderr.write(`  ${label}: 100%\n`);
          },
        };
      }
      const bar = new SingleBar(
        {
          format: `  ${label.padEnd(28)} [{bar}] {percentage}% {value}/{total} {eta_formatted}`,
          hideCursor: true,
          stream: process.stderr,
        },
        Presets.shades_classic,
      );
      bar.start(total, 0);
      return { tick: (n = 1) => bar.increment(n), done: () => bar.stop() };
    },
  };
}

/** A plain text table with right-aligned numbers. */
export function formatTable(table: Table): string {
  const cells = [table.columns, ...table.rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)))];
  const widths = table.columns.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: (string | number)[]) =>
    r
      .map((c, i) =>
        typeof table.rows[0]?.[i] === 'number' ? String(c).padStart(widths[i]!) : String(c).padEnd(widths[i]!),
      )
      .join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return n.toLocaleString('en-US');
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

/** The summary table every scenario gets: metric, kvfabric, reference, ratio. */
export function summaryTable(result: ScenarioResult): Table {
  const rows: (string | number)[][] = Object.entries(result.ratios).map(([name, ratio]) => [
    name,
    result.metrics[name] ?? NaN,
    result.reference[name] ?? NaN,
    Number(ratio.toFixed(3)),
  ]);
  return { columns: ['metric', 'kvfabric', 'reference', 'ratio'], rows };
}

/** Timing helpers shared by scenarios. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

/**
 * Runs kvfabric's and the reference's rep of round `rep`, the reference first on odd rounds, so that neither side
 * always runs right after the other (machine noise and caches hit both alike).
 */
export async function inTurn<A, B>(rep: number, ours: () => Promise<A>, reference: () => Promise<B>): Promise<[A, B]> {
  if ((rep & 1) === 0) return [await ours(), await reference()];
  const r = await reference();
  return [await ours(), r];
}

export function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

export function nowSeconds(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}
