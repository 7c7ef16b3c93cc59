// Capacity accounting shared by the scenarios: CPU seconds of each party over the timed windows, turned into
// "ms of CPU per GiB moved" and "GB/s one core could carry" (bytes / CPU seconds), for kvfabric and for the
// reference alike. A ratio says how close kvfabric comes to a reference on this machine; these figures say what a
// party costs, so that on a host with more cores (or more NICs and GPUs) one can tell which party saturates first.
import { readFileSync, readdirSync } from 'node:fs';

/**
 * Thread groups of a process: `main` (the JavaScript thread of a Node process, or the first thread of a C one),
 * `copy` (the copy engine's `kvf-copy` threads), `transport` (the tcp and verbs transports' `kvf-tcp-*` and
 * `kvf-verbs` threads) and `other`: V8's and libuv's threads and the addon's other threads (V8 and libuv name
 * theirs after the process, so they cannot be told apart by name).
 */
export type ThreadGroup = 'main' | 'copy' | 'transport' | 'other';
export type GroupCpu = Record<ThreadGroup, number>;

/** CPU seconds per thread group of a live process, from /proc/<pid>/task/<tid>/schedstat (Linux); zeros elsewhere. */
export function threadCpu(pid: number): GroupCpu {
  const out: GroupCpu = { main: 0, copy: 0, transport: 0, other: 0 };
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const seconds = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
      const name = tid === String(pid) ? '' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out[groupOf(tid === String(pid), name)] += seconds;
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

function groupOf(main: boolean, name: string): ThreadGroup {
  if (main) return 'main';
  if (name === 'kvf-copy') return 'copy';
  return name.startsWith('kvf-tcp') || name === 'kvf-verbs' ? 'transport' : 'other';
}

/** CPU seconds of this process (user + system, all threads). */
function selfCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Reads the CPU seconds so far of one or more parties (one /proc read per process and snapshot). */
export type Probe = () => Record<string, number>;

/**
 * The thread groups of a process as parties: `names` maps a group to its party's name (groups mapped to the same
 * name are summed; groups left out are not counted, except `transport`, which counts as `other` when only that is
 * named).
 */
export function threadProbe(pid: number, names: Partial<Record<ThreadGroup, string>>): Probe {
  const mapped = { ...names };
  if (mapped.transport === undefined && mapped.other !== undefined) mapped.transport = mapped.other;
  return () => {
    const cpu = threadCpu(pid);
    const out: Record<string, number> = {};
    for (const [group, name] of Object.entries(mapped) as [ThreadGroup, string][])
      out[name] = (out[name] ?? 0) + cpu[group];
    return out;
  };
}

/** Every thread of a process as one party. */
export function processProbe(pid: number, name: string): Probe {
  return threadProbe(pid, { main: name, copy: name, other: name });
}

/** This process as one party (an engine client, a benchmark client). */
export function selfProbe(name: string): Probe {
  return () => ({ [name]: selfCpu() });
}

/**
 * Accumulates CPU seconds per named party over timed windows. Probes are read in order before a window and in
 * reverse order after it, so a `selfProbe` placed last does not count this process reading the others' counters.
 */
export class CpuLedger {
  readonly seconds: Record<string, number> = {};
  readonly #probes: Probe[];

  constructor(probes: Probe[] = []) {
    this.#probes = probes;
    for (const probe of probes) for (const name of Object.keys(probe())) this.seconds[name] = 0;
  }

  /** Runs fn; when `count`, adds every party's CPU over the run. */
  async window<T>(count: boolean, fn: () => Promise<T>): Promise<T> {
    const before = this.#probes.map((probe) => probe());
    const r = await fn();
    const after = [...this.#probes].reverse().map((probe) => probe());
    after.reverse();
    if (count)
      after.forEach((now, i) => {
        for (const [name, seconds] of Object.entries(now)) this.add(name, seconds - (before[i]![name] ?? 0));
      });
    return r;
  }

  /** Adds CPU seconds measured elsewhere (iperf3's own accounting, a worker process's report). */
  add(name: string, seconds: number): void {
    this.seconds[name] = (this.seconds[name] ?? 0) + seconds;
  }
}

/** One party's cost on one path: what a core of it carries. */
export interface CapacityRow {
  /** The path measured, e.g. `save 256KiB, 8 engines`. */
  path: string;
  side: 'kvfabric' | 'reference';
  /** Who spent the CPU, e.g. `node event loop`, `iperf3 (both ends)`. */
  party: string;
  cpuSeconds: number;
  bytes: number;
  /** CPU milliseconds per GiB moved. */
  msPerGiB: number;
  /**
   * GB/s (1e9 bytes) this party could carry with one core to itself: bytes / CPU seconds; null when it spent no
   * CPU that schedstat could see (no bound from this party).
   */
  oneCoreGBps: number | null;
}

export function capacityRow(
  path: string,
  side: CapacityRow['side'],
  party: string,
  cpuSeconds: number,
  bytes: number,
): CapacityRow {
  return {
    path,
    side,
    party,
    cpuSeconds,
    bytes,
    msPerGiB: bytes > 0 ? (cpuSeconds * 1e3) / (bytes / 2 ** 30) : NaN,
    oneCoreGBps: cpuSeconds > 0 ? bytes / cpuSeconds / 1e9 : null,
  };
}

/** One row per party of a ledger, all on `path` and `side`, over `bytes`. */
export function capacityRows(
  path: string,
  side: CapacityRow['side'],
  ledger: Record<string, number>,
  bytes: number,
): CapacityRow[] {
  return Object.entries(ledger).map(([party, seconds]) => capacityRow(path, side, party, seconds, bytes));
}

/**
 * Every side of every path summed into one row (`all parties`): the CPU the path costs per GiB, whichever party
 * spends it. Rows of one path and side must share their bytes.
 */
export function capacityTotals(rows: CapacityRow[]): CapacityRow[] {
  const groups = new Map<string, CapacityRow[]>();
  for (const r of rows) {
    const key = `${r.path}\u0000${r.side}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((g) =>
    capacityRow(
      g[0]!.path,
      g[0]!.side,
      'all parties',
      g.reduce((s, r) => s + r.cpuSeconds, 0),
      g[0]!.bytes,
    ),
  );
}

const round = (n: number | null, digits: number) => (n === null ? 'no CPU seen' : Number(n.toFixed(digits)));

/** The printed table: per path, each party of kvfabric then of the reference, with the totals. */
export function capacityTable(rows: CapacityRow[]): { columns: string[]; rows: (string | number)[][] } {
  const totals = capacityTotals(rows);
  const out: (string | number)[][] = [];
  const paths = [...new Set(rows.map((r) => r.path))];
  for (const path of paths) {
    for (const side of ['kvfabric', 'reference'] as const) {
      const parties = rows.filter((r) => r.path === path && r.side === side);
      const total = totals.find((t) => t.path === path && t.side === side);
      for (const r of total && parties.length > 1 ? [...parties, total] : parties)
        out.push([path, side, r.party, round(r.msPerGiB, 1), round(r.oneCoreGBps, 2)]);
    }
  }
  return { columns: ['path', 'side', 'party', 'CPU ms per GiB', 'GB/s per core'], rows: out };
}
