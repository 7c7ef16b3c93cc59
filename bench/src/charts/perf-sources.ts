// The sentence above the performance table: which result files its rows come from, grouped by the run that wrote
// them (the `run` field; older files without it are grouped by when they were written), and on what machine.
import type { PerfFile } from './perf-table.js';

/** Files without a `run` field written this close to each other are listed together. */
const NEARBY_MS = 15 * 60_000;

interface Group {
  files: PerfFile[];
  latest: number;
}

function groups(files: PerfFile[]): Group[] {
  const byRun = new Map<string, PerfFile[]>();
  const loose = files.filter((f) => f.run === undefined).sort((a, b) => Date.parse(a.date) - Date.parse(b.date));
  for (const f of files) if (f.run !== undefined) byRun.set(f.run.started, [...(byRun.get(f.run.started) ?? []), f]);
  const out: PerfFile[][] = [...byRun.values()];
  let current: PerfFile[] = [];
  for (const f of loose) {
    const last = current.at(-1);
    if (last && Date.parse(f.date) - Date.parse(last.date) > NEARBY_MS) {
      out.push(current);
      current = [];
    }
    current.push(f);
  }
  if (current.length > 0) out.push(current);
  return out
    .map((g) => ({ files: g, latest: Math.max(...g.map((f) => Date.parse(f.date))) }))
    .sort((a, b) => b.latest - a.latest);
}

const day = (iso: string) => iso.slice(0, 10);
const minute = (iso: string) => iso.slice(11, 16);

/** `2026-12-06 06:31 UTC`, or a range of such times. */
export function timeRange(dates: string[]): string {
  const sorted = [...dates].sort();
  const [a, b] = [sorted[0]!, sorted.at(-1)!];
  if (day(a) !== day(b)) return `${day(a)} ${minute(a)} – ${day(b)} ${minute(b)} UTC`;
  if (minute(a) === minute(b)) return `${day(a)} ${minute(a)} UTC`;
  return `${day(a)} ${minute(a)}–${minute(b)} UTC`;
}

export function machineText(m: PerfFile['machine']): string {
  return (
    `${m.cpus} vCPUs (${m.cpuModel}), ${Math.round(m.memoryBytes / 2 ** 30)} GiB, Node.js ${m.node}` +
    (m.quick ? ', quick sizes' : '')
  );
}

const names = (files: PerfFile[]) => files.map((f) => `\`${f.scenario}\``).join(', ');

function groupText(g: Group, withMachine: boolean): string {
  const run = g.files[0]!.run;
  const files = run
    ? [...g.files].sort((a, b) => run.scenarios.indexOf(a.scenario) - run.scenarios.indexOf(b.scenario))
    : g.files;
  const when = run
    ? `one run (\`npm run bench -- ${run.scenarios.join(' ')}\`) started ${timeRange([run.started])}, ` +
      `load average ${run.loadAverage} at its start`
    : `written ${timeRange(g.files.map((f) => f.date))}`;
  return `${names(files)}: ${when}${withMachine ? ` on ${machineText(g.files[0]!.machine)}` : ''}`;
}

/** Where the rows of `scenarios` come from, from the files' `run`, `date` and `machine` fields. */
export function sourcesSentence(scenarios: string[], files: ReadonlyMap<string, PerfFile>): string {
  const present = [...new Set(scenarios)].flatMap((s) => {
    const f = files.get(s);
    return f ? [f] : [];
  });
  const absent = [...new Set(scenarios)].filter((s) => !files.has(s));
  const machines = [...new Set(present.map((f) => machineText(f.machine)))];
  const parts = groups(present).map((g) => groupText(g, machines.length > 1));
  if (absent.length > 0) parts.push(`${absent.map((s) => `\`${s}\``).join(', ')}: no result file`);
  const machine = machines.length === 1 ? ` Machine: ${machines[0]}.` : '';
  return `Result files (\`bench/results/<scenario>.json\`): ${parts.join('; ')}.${machine}`;
}
