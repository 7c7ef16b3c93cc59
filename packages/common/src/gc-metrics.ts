// Garbage-collection pauses of this process: every pause V8 takes on the JavaScript thread (perf_hooks 'gc'
// entries, wall time) lands in `kvfabric_<subsystem>_gc_pause_seconds` by kind, so a scrape shows how much of a
// server's latency tail is the collector (count, total, and the distribution down to 50 µs), and in a log of the
// most recent pauses with their exact start and duration: `kvfabric_<subsystem>_gc_pause_max_seconds` is the longest
// of the last minute, and `GET /debug/gc-pauses` (gcPausesRoute) lists them for a time window (what a bench reads).
import { PerformanceObserver, constants, performance } from 'node:perf_hooks';
import { invalid } from './errors.js';
import type { Attributes, Histogram, Metrics } from './metrics.js';

/** Fine buckets (50 µs .. 1 s): a "multi-millisecond pause" must be visible as such. */
export const GC_PAUSE_BUCKETS_SECONDS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

/** The window of kvfabric_<subsystem>_gc_pause_max_seconds. */
export const GC_PAUSE_MAX_WINDOW_MS = 60_000;

/** perf_hooks gc kinds → the `kind` attribute. */
const KIND_NAMES = ['minor', 'major', 'incremental', 'weakcb', 'other'] as const;
type KindName = (typeof KIND_NAMES)[number];
const KIND_INDEX = new Map<number, number>([
  [constants.NODE_PERFORMANCE_GC_MINOR, 0],
  [constants.NODE_PERFORMANCE_GC_MAJOR, 1],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 2],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, 3],
]);
const OTHER = 4;
/** Attribute objects built once, not per pause. */
const KIND_ATTRIBUTES: Attributes[] = KIND_NAMES.map((kind) => ({ kind }));

export interface GcPause {
  /** Start, Unix time in ms (fractional). */
  atMs: number;
  /** Duration in ms (fractional). */
  ms: number;
  kind: KindName;
}

/** The most recent pauses in typed arrays (recording allocates nothing); the oldest are overwritten first. */
export class GcPauseLog {
  private readonly at: Float64Array;
  private readonly ms: Float64Array;
  private readonly kind: Uint8Array;
  /** Pauses recorded since the start (the ring holds the last `capacity` of them). */
  recorded = 0;
  /** Start of the latest pause overwritten (-Infinity while none was). */
  private droppedAtMs = -Infinity;

  constructor(readonly capacity = 16_384) {
    this.at = new Float64Array(capacity);
    this.ms = new Float64Array(capacity);
    this.kind = new Uint8Array(capacity);
  }

  record(atMs: number, ms: number, kind: number): void {
    const i = this.recorded % this.capacity;
    if (this.recorded >= this.capacity) this.droppedAtMs = this.at[i]!;
    this.at[i] = atMs;
    this.ms[i] = ms;
    this.kind[i] = kind;
    this.recorded++;
  }

  /**
   * Pauses that started in [fromMs, toMs), oldest first. `complete` is false when the ring no longer holds every
   * pause of the window (older ones in it were overwritten).
   */
  between(fromMs: number, toMs: number): { pauses: GcPause[]; complete: boolean } {
    const held = Math.min(this.recorded, this.capacity);
    const first = this.recorded - held;
    const pauses: GcPause[] = [];
    for (let n = first; n < this.recorded; n++) {
      const i = n % this.capacity;
      const at = this.at[i]!;
      if (at >= fromMs && at < toMs) pauses.push({ atMs: at, ms: this.ms[i]!, kind: KIND_NAMES[this.kind[i]!]! });
    }
    return { pauses, complete: this.droppedAtMs < fromMs };
  }

  /** The longest pause (ms) that started at or after `fromMs`; 0 without one. */
  maxSince(fromMs: number): number {
    let max = 0;
    for (let n = this.recorded - 1; n >= 0 && n >= this.recorded - this.capacity; n--) {
      const i = n % this.capacity;
      if (this.at[i]! < fromMs) break;
      if (this.ms[i]! > max) max = this.ms[i]!;
    }
    return max;
  }
}

export interface GcPauseMetrics {
  /** The recent pauses, exact. */
  readonly log: GcPauseLog;
  /** Stops observing (idempotent). */
  close(): void;
}

/** Records every GC pause of this process into `kvfabric_<subsystem>_gc_pause_seconds{kind}` and the pause log. */
export function observeGcPauses(metrics: Metrics, subsystem: string, log = new GcPauseLog()): GcPauseMetrics {
  const pauses: Histogram = metrics.meter.createHistogram(`kvfabric_${subsystem}_gc_pause_seconds`, {
    description: 'Garbage-collection pauses of the JavaScript thread (wall time), by kind',
    unit: 's',
    advice: { explicitBucketBoundaries: GC_PAUSE_BUCKETS_SECONDS },
  });
  metrics.meter
    .createObservableGauge(`kvfabric_${subsystem}_gc_pause_max_seconds`, {
      description: `Longest garbage-collection pause of the JavaScript thread in the last ${GC_PAUSE_MAX_WINDOW_MS / 1000} s`,
      unit: 's',
    })
    .addCallback((r) => r.observe(log.maxSince(Date.now() - GC_PAUSE_MAX_WINDOW_MS) / 1000));
  const origin = performance.timeOrigin;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // a gc entry's detail is { kind, flags } (the typings in use do not declare it)
      const kind = KIND_INDEX.get((entry as { detail?: { kind?: number } }).detail?.kind ?? -1) ?? OTHER;
      log.record(origin + entry.startTime, entry.duration, kind);
      pauses.record(entry.duration / 1000, KIND_ATTRIBUTES[kind]);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return { log, close: () => observer.disconnect() };
}

/**
 * `GET /debug/gc-pauses?since=MS&until=MS` (Unix ms; defaults: the whole log, until now): the pauses that started
 * in the window, exact, and whether the log still held all of them.
 */
export function gcPausesRoute(log: GcPauseLog): (params: URLSearchParams) => unknown {
  return (params) => {
    const time = (name: string, fallback: number) => {
      const raw = params.get(name);
      if (raw === null) return fallback;
      const v = Number(raw);
      if (raw === '' || !Number.isFinite(v)) throw invalid(name, 'expected a Unix time in milliseconds', raw);
      return v;
    };
    const since = time('since', 0);
    const until = time('until', Date.now());
    return { since, until, recorded: log.recorded, capacity: log.capacity, ...log.between(since, until) };
  };
}
