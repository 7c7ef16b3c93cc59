// One wrapper for every RPC (STYLE "One wrapper"): timing, metrics, logging and error mapping live here, not
// in handlers. Handlers are plain async functions `(request, call) => response` that throw KvError.
import * as grpc from '@grpc/grpc-js';
import { KvError, toKvError, isKvErrorCode, type KvErrorCode } from './errors.js';
import type { Logger } from './logger.js';
import { DURATION_BUCKETS_SECONDS, type Metrics, type Counter, type Histogram } from './metrics.js';

/** Metadata key carrying the KvError code across the wire, so clients get typed errors back. */
export const ERROR_CODE_KEY = 'kvfabric-error-code';

export type UnaryHandler<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res;

export interface RpcInstruments {
  calls: Counter;
  errors: Counter;
  duration: Histogram;
}

/** `kvfabric_<subsystem>_rpc_*` instruments, one set per service. */
export function rpcInstruments(metrics: Metrics, subsystem: string): RpcInstruments {
  const m = metrics.meter;
  return {
    calls: m.createCounter(`kvfabric_${subsystem}_rpc_total`, { description: 'RPCs handled, by method and gRPC status' }),
    errors: m.createCounter(`kvfabric_${subsystem}_rpc_errors_total`, { description: 'RPCs answered with an error, by method and code' }),
    duration: m.createHistogram(`kvfabric_${subsystem}_rpc_duration_seconds`, {
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

export function errorToStatus(err: KvError, extra?: grpc.Metadata): Partial<grpc.StatusObject> {
  const metadata = extra ?? new grpc.Metadata();
  metadata.set(ERROR_CODE_KEY, err.code);
  return { code: err.grpcStatus, details: err.message, metadata };
}

/** Wraps one unary handler. */
export function unary<Req, Res>(method: string, handler: UnaryHandler<Req, Res>, ctx: RpcContext): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const finish = (code: grpc.status, kvCode?: KvErrorCode) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      ctx.instruments.duration.record(seconds, { method });
      ctx.instruments.calls.add(1, { method, status: grpc.status[code] });
      if (kvCode) ctx.instruments.errors.add(1, { method, code: kvCode });
    };
    const fail = (thrown: unknown) => {
      const err = toKvError(thrown);
      if (err.code === 'INTERNAL') ctx.logger.error({ err: err.cause ?? err, method }, 'rpc failed');
      else ctx.logger.debug({ method, code: err.code, msg: err.message }, 'rpc refused');
      finish(err.grpcStatus, err.code);
      callback(errorToStatus(err, ctx.errorMetadata?.(err)));
    };
    try {
      ctx.guard?.(method);
      Promise.resolve(handler(call.request, call)).then(
        (response) => {
          finish(grpc.status.OK);
          callback(null, response);
        },
        fail,
      );
    } catch (err) {
      fail(err);
    }
  };
}

/**
 * Builds a grpc-js implementation object for `definition` from plain async handlers, each wrapped by `unary`.
 * Streaming methods are passed through as given (they do their own error handling through `streamError`).
 */
export function implement<D extends grpc.ServiceDefinition>(
  definition: D,
  handlers: { [K in keyof D]: D[K] extends grpc.MethodDefinition<infer Req, infer Res>
    ? D[K]['requestStream'] extends true ? grpc.UntypedHandleCall : UnaryHandler<Req, Res>
    : never },
  ctx: RpcContext,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = handlers[name as keyof D] as unknown;
    if (typeof handler !== 'function') throw new Error(`implement: no handler for ${name}`);
    impl[name] = method.requestStream || method.responseStream
      ? (handler as grpc.UntypedHandleCall)
      : (unary(name, handler as UnaryHandler<unknown, unknown>, ctx) as grpc.UntypedHandleCall);
  }
  return impl;
}

/** Client side: turns a grpc-js error back into a KvError with the server's code when it sent one. */
export function fromGrpcError(err: unknown): KvError {
  if (err instanceof KvError) return err;
  const e = err as grpc.ServiceError;
  if (e && typeof e.code === 'number') {
    const sent = e.metadata?.get(ERROR_CODE_KEY)?.[0];
    const code: KvErrorCode = isKvErrorCode(sent) ? sent : grpcToKvCode(e.code);
    return new KvError(code, e.details || e.message, { cause: err });
  }
  return toKvError(err);
}

function grpcToKvCode(code: grpc.status): KvErrorCode {
  switch (code) {
    case grpc.status.INVALID_ARGUMENT: return 'INVALID_ARGUMENT';
    case grpc.status.UNAVAILABLE: return 'METASERVER_UNAVAILABLE';
    case grpc.status.DEADLINE_EXCEEDED: return 'TRANSPORT_TIMEOUT';
    case grpc.status.RESOURCE_EXHAUSTED: return 'POOL_EXHAUSTED';
    default: return 'INTERNAL';
  }
}

/** Binds a grpc-js server to `addr` ("host:port", port 0 picks one, or "unix:/path"); resolves the bound port. */
export function bindServer(server: grpc.Server, addr: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) reject(new KvError('CONFIG_INVALID', `cannot listen on ${addr}: ${err.message}`, { cause: err }));
      else resolve(port);
    });
  });
}

/** Graceful stop with a deadline, then force. */
export function shutdownServer(server: grpc.Server, graceMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Channel options used by every kvfabric client and server: large messages, keepalive. */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 256 * 1024 * 1024,
  'grpc.max_send_message_length': 256 * 1024 * 1024,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
};
