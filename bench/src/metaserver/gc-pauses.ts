// The metaserver's GC pauses over a measured segment, from its /metrics (kvfabric_metaserver_gc_pause_seconds, a
// histogram by kind): scraped before and after, the difference summed over kinds.
const METRIC = 'kvfabric_metaserver_gc_pause_seconds';

/** Cumulative bucket counts (by upper bound in seconds), sum and count, over every kind. */
export interface GcPauses {
  buckets: Map<number, number>;
  sumSeconds: number;
  count: number;
}

export function emptyGcPauses(): GcPauses {
  return { buckets: new Map(), sumSeconds: 0, count: 0 };
}

/** Parses the Prometheus text of a /metrics scrape. */
export function parseGcPauses(text: string): GcPauses {
  const out = emptyGcPauses();
  for (const line of text.split('\n')) {
    if (!line.startsWith(METRIC)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith(`${METRIC}_bucket{`)) {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Infinity : Number(le);
      out.buckets.set(bound, (out.buckets.get(bound) ?? 0) + value);
    } else if (line.startsWith(`${METRIC}_sum{`)) out.sumSeconds += value;
    else if (line.startsWith(`${METRIC}_count{`)) out.count += value;
  }
  return out;
}

export async function scrapeGcPauses(httpAddr: string): Promise<GcPauses> {
  const res = await fetch(`http://${httpAddr}/metrics`);
  if (!res.ok) throw new Error(`GET http://${httpAddr}/metrics: ${res.status}`);
  return parseGcPauses(await res.text());
}

/** total += after - before. */
export function addGcDelta(total: GcPauses, before: GcPauses, after: GcPauses): void {
  for (const [bound, n] of after.buckets)
    total.buckets.set(bound, (total.buckets.get(bound) ?? 0) + n - (before.buckets.get(bound) ?? 0));
  total.sumSeconds += after.sumSeconds - before.sumSeconds;
  total.count += after.count - before.count;
}

export interface GcSummary {
  pauses: number;
  totalMs: number;
  /** Upper bound of the bucket holding the 99th-percentile pause (ms); 0 without pauses. */
  p99Ms: number;
  /** Upper bound of the highest non-empty bucket (ms): the longest pause was at most this. */
  maxMs: number;
}

export function summarizeGcPauses(p: GcPauses): GcSummary {
  const bounds = [...p.buckets.keys()].sort((a, b) => a - b);
  const at = (rank: number) => {
    const bound = bounds.find((b) => p.buckets.get(b)! >= rank);
    return bound === undefined || p.count === 0 ? 0 : bound * 1000;
  };
  return {
    pauses: p.count,
    totalMs: p.sumSeconds * 1000,
    p99Ms: at(Math.ceil(0.99 * p.count)),
    maxMs: at(p.count),
  };
}
