// The metaserver's GC pauses over a measured segment, exact: each pause's duration from its pause log
// (GET /debug/gc-pauses?since=&until=, perf_hooks gc entries, wall time, every kind), for the segment's wall-clock
// window. The bench runs on the same host as the metaserver, so both read the same clock.

/** One pause as the metaserver lists it. */
interface Pause {
  atMs: number;
  ms: number;
  kind: string;
}

/** Durations (ms) of the pauses that started in [sinceMs, untilMs); an error when the log no longer held them all. */
export async function fetchGcPauses(httpAddr: string, sinceMs: number, untilMs: number): Promise<number[]> {
  const url = `http://${httpAddr}/debug/gc-pauses?since=${sinceMs}&until=${untilMs}`;
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { pauses: Pause[]; complete: boolean; capacity: number };
  if (!body.complete) throw new Error(`GET ${url}: more pauses than the log holds (${body.capacity})`);
  return body.pauses.map((p) => p.ms);
}

export interface GcSummary {
  pauses: number;
  totalMs: number;
  /** The 99th-percentile pause (nearest rank), ms; 0 without pauses. */
  p99Ms: number;
  /** The longest pause, ms; 0 without pauses. */
  maxMs: number;
}

export function summarizeGcPauses(durationsMs: readonly number[]): GcSummary {
  const sorted = [...durationsMs].sort((a, b) => a - b);
  const n = sorted.length;
  return {
    pauses: n,
    totalMs: sorted.reduce((s, v) => s + v, 0),
    p99Ms: n === 0 ? 0 : sorted[Math.ceil(0.99 * n) - 1]!,
    maxMs: n === 0 ? 0 : sorted[n - 1]!,
  };
}
