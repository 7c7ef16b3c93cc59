// The metaserver's GC pauses over a measured segment, exact: each pause's duration from its pause log
// (GET /debug/gc-pauses?since=&until=, perf_hooks gc entries, wall time, every kind), for the segment's wall-clock
// window. The bench runs on the same host as the metaserver, so both read the same clock.

import { readFileSync } from 'node:fs';

/** One pause as the metaserver lists it. */
export interface Pause {
  atMs: number;
  ms: number;
  kind: string;
}

/** The pauses that started in [sinceMs, untilMs); an error when the log no longer held them all. */
export async function fetchGcPauses(httpAddr: string, sinceMs: number, untilMs: number): Promise<Pause[]> {
  const url = `http://${httpAddr}/debug/gc-pauses?since=${sinceMs}&until=${untilMs}`;
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { pauses: Pause[]; complete: boolean; capacity: number };
  if (!body.complete) throw new Error(`GET ${url}: more pauses than the log holds (${body.capacity})`);
  return body.pauses;
}

export interface GcSummary {
  pauses: number;
  totalMs: number;
  /** The 99th-percentile pause (nearest rank), ms; 0 without pauses. */
  p99Ms: number;
  /** The longest pause, ms; 0 without pauses. */
  maxMs: number;
  /** Pauses and their total (ms) by kind (minor: scavenges; major, incremental: full collections). */
  byKind: Record<string, { pauses: number; totalMs: number; maxMs: number }>;
}

export function summarizeGcPauses(pauses: readonly Pause[]): GcSummary {
  const sorted = pauses.map((p) => p.ms).sort((a, b) => a - b);
  const n = sorted.length;
  const byKind: GcSummary['byKind'] = {};
  for (const p of pauses) {
    const k = (byKind[p.kind] ??= { pauses: 0, totalMs: 0, maxMs: 0 });
    k.pauses++;
    k.totalMs += p.ms;
    k.maxMs = Math.max(k.maxMs, p.ms);
  }
  return {
    pauses: n,
    totalMs: sorted.reduce((s, v) => s + v, 0),
    p99Ms: n === 0 ? 0 : sorted[Math.ceil(0.99 * n) - 1]!,
    maxMs: n === 0 ? 0 : sorted[n - 1]!,
    byKind,
  };
}

/** "minor 20 / 41.3 ms (max 3.1), major 1 / 12.0 ms (max 12.0)": a note line's account of the kinds. */
export function describeKinds(s: GcSummary): string {
  const kinds = Object.entries(s.byKind).sort((a, b) => b[1].totalMs - a[1].totalMs);
  if (kinds.length === 0) return 'no pauses';
  return kinds
    .map(([kind, k]) => `${kind} ${k.pauses} / ${k.totalMs.toFixed(1)} ms (max ${k.maxMs.toFixed(1)})`)
    .join(', ');
}

/**
 * The node flags a running process was started with (the `--` arguments before its script, from /proc/PID/cmdline):
 * the collector settings the pauses were measured under. "unknown" where /proc cannot be read.
 */
export function nodeFlagsOf(pid: number): string {
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(1);
  } catch {
    return 'unknown';
  }
  const end = args.findIndex((a) => !a.startsWith('--'));
  return args.slice(0, end === -1 ? args.length : end).join(' ') || 'none';
}
