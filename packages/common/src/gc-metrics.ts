// Garbage-collection pauses of this process as metrics: every pause V8 takes on the JavaScript thread (perf_hooks
// 'gc' entries, wall time) lands in `kvfabric_<subsystem>_gc_pause_seconds` by kind, so a scrape shows how much of
// a server's latency tail is the collector (count, total, and the distribution down to 100 µs).
import { PerformanceObserver, constants } from 'node:perf_hooks';
import type { Attributes, Histogram, Metrics } from './metrics.js';

/** Fine buckets (100 µs .. 1 s): a "multi-millisecond pause" must be visible as such. */
export const GC_PAUSE_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

/** perf_hooks gc kinds → the `kind` attribute; attribute objects built once, not per pause. */
const KINDS = new Map<number, Attributes>([
  [constants.NODE_PERFORMANCE_GC_MINOR, { kind: 'minor' }],
  [constants.NODE_PERFORMANCE_GC_MAJOR, { kind: 'major' }],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, { kind: 'incremental' }],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, { kind: 'weakcb' }],
]);
const OTHER: Attributes = { kind: 'other' };

export interface GcPauseMetrics {
  /** Stops observing (idempotent). */
  close(): void;
}

/** Records every GC pause of this process into `kvfabric_<subsystem>_gc_pause_seconds{kind}`. */
export function observeGcPauses(metrics: Metrics, subsystem: string): GcPauseMetrics {
  const pauses: Histogram = metrics.meter.createHistogram(`kvfabric_${subsystem}_gc_pause_seconds`, {
    description: 'Garbage-collection pauses of the JavaScript thread (wall time), by kind',
    unit: 's',
    advice: { explicitBucketBoundaries: GC_PAUSE_BUCKETS_SECONDS },
  });
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // a gc entry's detail is { kind, flags } (the typings in use do not declare it)
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind ?? -1;
      pauses.record(entry.duration / 1000, KINDS.get(kind) ?? OTHER);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return { close: () => observer.disconnect() };
}
