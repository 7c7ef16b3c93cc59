// What every RPC wrapper (unary and pipelined streams) is given: the logger, the per-service instruments, an
// optional guard run before each handler, and optional extra error metadata.
import type * as grpc from '@grpc/grpc-js';
import type { KvError } from './errors.js';
import type { Logger } from './logger.js';
import { DURATION_BUCKETS_SECONDS } from './duration-buckets.js';
import type { Metrics, Counter, Histogram } from './metrics.js';

export interface RpcInstruments {
  calls: Counter;
  errors: Counter;
  duration: Histogram;
}

/**
 * `kvfabric_<subsystem>_rpc_*` instruments, one set per service; an empty subsystem gives `kvfabric_rpc_*` (the
 * node's engine API, whose metric names DESIGN and the node's dashboards use).
 */
export function rpcInstruments(metrics: Metrics, subsystem: string): RpcInstruments {
  const m = metrics.meter;
  const prefix = subsystem ? `kvfabric_${subsystem}_rpc` : 'kvfabric_rpc';
  return {
    calls: m.createCounter(`${prefix}_total`, { description: 'RPCs handled, by method and gRPC status' }),
    errors: m.createCounter(`${prefix}_errors_total`, {
      description: 'RPCs answered with an error, by method and code',
    }),
    duration: m.createHistogram(`${prefix}_duration_seconds`, {
      description: 'RPC handling time',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
    }),
  };
}

export interface RpcContext {
  logger: Logger;
  instruments: RpcInstruments;
  /** Runs before every handler; throwing rejects the call (e.g. a follower metaserver refusing). */
  guard?: (method: string) => void;
  /** Extra trailing metadata for errors (e.g. the leader's address). */
  errorMetadata?: (err: KvError) => grpc.Metadata | undefined;
}
