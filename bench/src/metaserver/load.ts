// The load side of the metaserver benches (scenarios/metaserver.ts, scenarios/metaserver-scale.ts): forked load
// processes (worker.ts) that insert a layout into one target and query it, and the measured subjects (a target and
// how its queries travel) with their CPU accounting (server and clients, from /proc), latencies and, for kvfabric,
// the server's GC pauses (each one, from its pause log).
import { readFileSync } from 'node:fs';
import { IpcChild, benchScript } from '../ipc-child.js';
import { pin } from '../pin.js';
import { percentile, type BenchContext, type Progress } from '../harness.js';
import { unitCount, type Layout } from './data.js';
import { summarizeGcPauses, type GcSummary, type Pause } from './gc-pauses.js';
import type { FromWorker, QueryMode, Target, ToWorker } from './worker.js';

/** How many load processes, connections per process and queries in flight per connection. */
export interface LoadShape {
  workers: number;
  connections: number;
  depth: number;
  /** Cores the load processes are pinned to (a taskset list, pin.ts); undefined: not pinned. */
  cpus?: string | undefined;
}

/** A forked load process (worker.ts). */
export type LoadProcess = IpcChild<ToWorker, FromWorker>;

export function startLoadProcess(opts: { exposeGc?: boolean } = {}): LoadProcess {
  return IpcChild.fork('bench worker', benchScript(import.meta.url, './worker'), {
    nodeFlags: opts.exposeGc ? ['--expose-gc'] : [],
    serialization: 'advanced',
  });
}

/** `p.workers` load processes, each connected to `addr` with its share of the connections. */
export async function startLoadProcesses(p: LoadShape, target: Target, addr: string): Promise<LoadProcess[]> {
  const procs = Array.from({ length: p.workers }, () => startLoadProcess());
  try {
    if (p.cpus !== undefined) for (const w of procs) pin(w.pid, p.cpus);
    await Promise.all(
      procs.map((w, i) =>
        w.request(
          { kind: 'init', target, addr, connections: p.connections, depth: p.depth, worker: i, workers: p.workers },
          'ready',
        ),
      ),
    );
    return procs;
  } catch (err) {
    await closeAll(procs);
    throw err;
  }
}

/** Closes load processes, all at once. */
export async function closeAll(procs: LoadProcess[]): Promise<void> {
  await Promise.all(procs.map((w) => w.close()));
}

export interface InsertResult {
  insertsPerSec: number;
  /** Server process CPU (user + system) per inserted pair, in µs. */
  serverCpuUsPerInsert: number;
}

export interface QueryResult {
  queriesPerSec: number;
  p50Us: number;
  p99Us: number;
  queries: number;
  /** Server process CPU (user + system) per query, in µs. */
  serverCpuUsPerQuery: number;
  /** CPU of all client processes per query, in µs. */
  clientCpuUsPerQuery: number;
  /** The server's GC pauses while measuring (kvfabric only: read from its pause log). */
  gc: GcSummary | undefined;
}

/** CPU seconds (user + system) a process has used so far, from /proc; NaN where there is no /proc. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return NaN;
  }
}

/** Where a server's GC pauses of a time window (Unix ms) are read: its pause log. */
export type PauseSource = (sinceMs: number, untilMs: number) => Promise<Pause[]>;

/** The load processes of one target, with the layout inserted. */
export interface LoadGroup {
  target: Target;
  serverPid: number;
  /** The server's GC pauses (a kvfabric server), else undefined. */
  gcPauses: PauseSource | undefined;
  procs: LoadProcess[];
  /** Undefined for a group that inserted nothing. */
  insert: InsertResult | undefined;
}

/**
 * Starts `p.workers` processes against one target and inserts the layout with them (nothing when the layout is
 * undefined: a server that answers without an index).
 */
export async function loadGroup(
  ctx: BenchContext,
  p: LoadShape,
  target: Target,
  addr: string,
  serverPid: number,
  gcPauses: PauseSource | undefined,
  layout: Layout | undefined,
  afterInsert?: () => Promise<void>,
): Promise<LoadGroup> {
  const procs = await startLoadProcesses(p, target, addr);
  try {
    if (layout === undefined) return { target, serverPid, gcPauses, procs, insert: undefined };
    const bar = ctx.progress(`${target} insert`, unitCount(layout));
    for (const w of procs) w.onTick = (n) => bar.tick(n);
    const cpu0 = cpuSeconds(serverPid);
    const t0 = performance.now();
    const inserted = await Promise.all(procs.map((w) => w.request({ kind: 'insert', layout }, 'inserted')));
    const insertSeconds = (performance.now() - t0) / 1000;
    const insertCpu = cpuSeconds(serverPid) - cpu0;
    bar.done();
    const pairs = inserted.reduce((s, r) => s + r.pairs, 0);
    if (pairs !== layout.entries) throw new Error(`${target}: inserted ${pairs} pairs, expected ${layout.entries}`);
    await afterInsert?.();
    return {
      target,
      serverPid,
      gcPauses,
      procs,
      insert: { insertsPerSec: pairs / insertSeconds, serverCpuUsPerInsert: (insertCpu * 1e6) / pairs },
    };
  } catch (err) {
    await closeAll(procs);
    throw err;
  }
}

/** What a group's insert measured; an error for a group that inserted nothing. */
export function insertOf(group: LoadGroup): InsertResult {
  if (!group.insert) throw new Error(`${group.target}: this load group inserted nothing`);
  return group.insert;
}

/** One measured way of querying: a load group and how its queries travel. */
export interface Subject {
  label: string;
  group: LoadGroup;
  mode: QueryMode;
  /** Whether each answer is checked against the expected one (not for a server that answers without an index). */
  check: boolean;
  /** Sums over the measured segments. */
  queries: number;
  seconds: number;
  serverCpu: number;
  clientCpu: number;
  latencies: number[];
  segments: number;
  /** The server's GC pauses in the measured segments (kvfabric only). */
  gc: Pause[] | undefined;
}

/** One segment of `subject`: warm-up, then `durationMs` measured, accumulated into the subject. */
export async function measure(
  ctx: BenchContext,
  subject: Subject,
  layout: Layout,
  warmupMs: number,
  durationMs: number,
): Promise<void> {
  const { group, mode, label, check } = subject;
  await query(ctx, group.procs, layout, mode, warmupMs, `${label} warm-up`, check);
  const clientCpu = () => group.procs.reduce((sum, w) => sum + cpuSeconds(w.pid), 0);
  const wall1 = Date.now();
  const cpu1 = cpuSeconds(group.serverPid);
  const client1 = clientCpu();
  const t1 = performance.now();
  const results = await query(ctx, group.procs, layout, mode, durationMs, `${label} queries`, check);
  subject.seconds += (performance.now() - t1) / 1000;
  subject.serverCpu += cpuSeconds(group.serverPid) - cpu1;
  subject.clientCpu += clientCpu() - client1;
  const wall2 = Date.now();
  if (group.gcPauses && subject.gc) subject.gc.push(...(await group.gcPauses(wall1, wall2)));
  const mismatches = results.reduce((s, r) => s + r.mismatches, 0);
  if (mismatches > 0)
    throw new Error(
      `${label}: ${mismatches} wrong prefix answers, e.g. ${results.find((r) => r.firstMismatch)?.firstMismatch}`,
    );
  for (const r of results) for (const l of r.latenciesUs) subject.latencies.push(l);
  subject.queries = subject.latencies.length;
  subject.segments++;
}

export function summary(subject: Subject): QueryResult {
  const latencies = subject.latencies.sort((a, b) => a - b);
  return {
    queriesPerSec: subject.queries / subject.seconds,
    p50Us: percentile(latencies, 50),
    p99Us: percentile(latencies, 99),
    queries: subject.queries,
    serverCpuUsPerQuery: (subject.serverCpu * 1e6) / subject.queries,
    clientCpuUsPerQuery: (subject.clientCpu * 1e6) / subject.queries,
    gc: subject.gc && summarizeGcPauses(subject.gc),
  };
}

export async function query(
  ctx: BenchContext,
  procs: LoadProcess[],
  layout: Layout,
  mode: QueryMode,
  durationMs: number,
  label: string,
  check = true,
) {
  const bar = timeProgress(ctx, label, durationMs);
  try {
    return await Promise.all(
      procs.map((w) => w.request({ kind: 'query', layout, durationMs, mode, check }, 'queried')),
    );
  } finally {
    bar.done();
  }
}

export function timeProgress(ctx: BenchContext, label: string, ms: number): Progress {
  const steps = Math.max(1, Math.round(ms / 250));
  const bar = ctx.progress(label, steps);
  let done = 0;
  const timer = setInterval(() => {
    if (done < steps) {
      done++;
      bar.tick();
    }
  }, ms / steps);
  return {
    tick: () => {},
    done: () => {
      clearInterval(timer);
      if (done < steps) bar.tick(steps - done);
      bar.done();
    },
  };
}

/** A subject with nothing measured yet; GC pauses are collected where the group has a pause log. */
export function newSubject(label: string, group: LoadGroup, mode: QueryMode, check = true): Subject {
  return {
    label,
    group,
    mode,
    check,
    queries: 0,
    seconds: 0,
    serverCpu: 0,
    clientCpu: 0,
    latencies: [],
    segments: 0,
    gc: group.gcPauses ? [] : undefined,
  };
}
