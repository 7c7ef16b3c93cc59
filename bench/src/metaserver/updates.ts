// Index updates as a node's reporter sends them (insert a batch of 64 fresh hashes, then remove it), measured on a
// load group: how many the server takes per second, its CPU per update and, for kvfabric, its collector's pauses.
// kvfabric sends them on UpdateBlocksStreams (what nodes do) or as unary calls; Redis as pipelined SADD / SREM.
import type { BenchContext } from '../harness.js';
import { summarizeGcPauses, type GcSummary, type Pause } from './gc-pauses.js';
import { cpuSeconds, type LoadGroup } from './load.js';
import type { QueryMode } from './worker.js';

/** One measured way of updating, accumulated over its rounds. */
export interface UpdateSubject {
  label: string;
  group: LoadGroup;
  mode: QueryMode;
  updates: number;
  seconds: number;
  serverCpu: number;
  /** The server's GC pauses while it was measured (kvfabric only). */
  gc: Pause[] | undefined;
}

export interface UpdateResult {
  updatesPerSec: number;
  updates: number;
  /** Server process CPU (user + system) per update (one insert or one remove of 64 hashes), in µs. */
  serverCpuUsPerUpdate: number;
  gc: GcSummary | undefined;
  /** Collector pause time per 1,000 updates (kvfabric only). */
  gcMsPer1kUpdates: number | undefined;
}

export function newUpdateSubject(label: string, group: LoadGroup, mode: QueryMode): UpdateSubject {
  return { label, group, mode, updates: 0, seconds: 0, serverCpu: 0, gc: group.gcPauses ? [] : undefined };
}

/** One round of `subject`: `perWorker` updates from each of its load processes, at once (a warm-up: not counted). */
export async function measureUpdates(
  ctx: BenchContext,
  subject: UpdateSubject,
  perWorker: number,
  timed = true,
): Promise<void> {
  const { group, mode, label } = subject;
  const bar = ctx.progress(`${label} ${timed ? 'updates' : 'warm-up'}`, perWorker * group.procs.length);
  for (const w of group.procs) w.onTick = (n) => bar.tick(n);
  const wall1 = Date.now();
  const cpu1 = cpuSeconds(group.serverPid);
  const done = await Promise.all(group.procs.map((w) => w.request({ kind: 'update', perWorker, mode }, 'updated')));
  const serverCpu = cpuSeconds(group.serverPid) - cpu1;
  const wall2 = Date.now();
  bar.done();
  if (!timed) return;
  subject.serverCpu += serverCpu;
  subject.updates += done.reduce((s, r) => s + r.updates, 0);
  subject.seconds += Math.max(...done.map((r) => r.seconds));
  if (group.gcPauses && subject.gc) subject.gc.push(...(await group.gcPauses(wall1, wall2)));
}

export function updateSummary(subject: UpdateSubject): UpdateResult {
  const gc = subject.gc && summarizeGcPauses(subject.gc);
  return {
    updatesPerSec: subject.updates / subject.seconds,
    updates: subject.updates,
    serverCpuUsPerUpdate: (subject.serverCpu * 1e6) / subject.updates,
    gc,
    gcMsPer1kUpdates: gc && (gc.totalMs * 1000) / subject.updates,
  };
}
