// The capacity figures of the result files as the README's capacity table and chart rows: per path, the CPU all
// parties spend per GiB, and each party's share, busiest first (the one whose core saturates first when each
// party has a core of its own).
import { capacityTotals, type CapacityRow } from '../capacity.js';
import type { BarRow } from './svg-bars.js';

export interface CapacityFile {
  scenario: string;
  date: string;
  capacity?: CapacityRow[];
}

export interface PathCost {
  scenario: string;
  path: string;
  side: CapacityRow['side'];
  total: CapacityRow;
  /** The parties, most CPU first. */
  parties: CapacityRow[];
}

/** One entry per path and side of every file, in file order. */
export function pathCosts(files: CapacityFile[]): PathCost[] {
  return files.flatMap((f) => {
    const rows = f.capacity ?? [];
    return capacityTotals(rows).map((total) => {
      const parties = rows
        .filter((r) => r.path === total.path && r.side === total.side)
        .sort((a, b) => b.cpuSeconds - a.cpuSeconds);
      return { scenario: f.scenario, path: total.path, side: total.side, total, parties };
    });
  });
}

const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
const gb = (n: number | null) => (n === null ? 'no CPU seen' : n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2));

/** The README table (GitHub markdown), or a sentence saying how to produce it when no file has capacity figures. */
export function capacityMarkdown(files: CapacityFile[]): string {
  const costs = pathCosts(files);
  if (costs.length === 0)
    return (
      'No result file has capacity figures yet: `npm run bench -- native-copy tcp-read node-local pull` on a quiet ' +
      'machine, then `npm run bench:charts`.\n'
    );
  const lines = [
    '| path (scenario) | kvfabric: CPU ms per GiB, all parties | kvfabric per party, busiest first: ms per GiB (GB/s one core carries) | reference: CPU ms per GiB, all parties | reference per party: ms per GiB (GB/s one core carries) |',
    '|---|---|---|---|---|',
  ];
  const paths = [...new Set(costs.map((c) => `${c.scenario}\u0000${c.path}`))];
  for (const key of paths) {
    const [scenario, path] = key.split('\u0000') as [string, string];
    const side = (s: CapacityRow['side']) =>
      costs.find((c) => c.scenario === scenario && c.path === path && c.side === s);
    const cells = (c: PathCost | undefined) =>
      c
        ? [
            ms(c.total.msPerGiB),
            c.parties.map((p) => `${p.party}: ${ms(p.msPerGiB)} (${gb(p.oneCoreGBps)})`).join('; '),
          ]
        : ['', ''];
    lines.push(
      `| ${path} (\`${scenario}\`) | ${[...cells(side('kvfabric')), ...cells(side('reference'))].join(' | ')} |`,
    );
  }
  const dates = [...new Set(files.filter((f) => f.capacity?.length).map((f) => f.date.slice(0, 10)))];
  lines.push('', `From the result files of ${dates.join(', ')} (\`bench/results/*.json\`, field \`capacity\`).`);
  return lines.join('\n') + '\n';
}

/** Chart rows: all parties' CPU per GiB of kvfabric vs the reference, for paths that have both. */
export function capacityBars(files: CapacityFile[]): BarRow[] {
  const costs = pathCosts(files);
  return costs
    .filter((c) => c.side === 'kvfabric')
    .flatMap((k) => {
      const r = costs.find((c) => c.scenario === k.scenario && c.path === k.path && c.side === 'reference');
      return r ? [{ label: k.path, kvfabric: k.total.msPerGiB, reference: r.total.msPerGiB }] : [];
    });
}
