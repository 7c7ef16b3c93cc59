// Histogram buckets shared by every duration metric. A plain constant of its own, so the RPC wrapper (rpc.ts), which
// gRPC clients load, does not load OpenTelemetry (metrics.ts) to read it.

/** Histogram buckets for RPC and transfer durations in seconds (50 µs .. 30 s). */
export const DURATION_BUCKETS_SECONDS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
