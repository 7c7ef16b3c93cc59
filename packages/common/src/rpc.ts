// One wrapper for every RPC (STYLE "One wrapper"): timing, metrics, logging and error mapping live here, not
// in handlers. Handlers are plain async functions `(request, call) => response` that throw KvError.
import * as grpc from '@grpc/grpc-js';
import { KvError, toKvError } from './errors.js';
import type { RpcContext } from './rpc-context.js';
import { errorToStatus, grpcStatusOf } from './rpc-errors.js';
import { RpcTally } from './rpc-tally.js';
import { serverCredentials, type TlsMaterial } from './rpc-tls.js';

export * from './rpc-context.js';
export * from './rpc-errors.js';
export * from './rpc-stream.js';
export * from './rpc-limits.js';
export * from './rpc-tls.js';
export * from './etcd-tls.js';

export type UnaryHandler<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res;

/**
 * Wraps one unary handler. A handler that answers synchronously is answered at once (no promise, no extra turn of
 * the microtask queue); metrics go through one RpcTally per method (attributes reused, counters added per loop turn).
 */
export function unary<Req, Res>(
  method: string,
  handler: UnaryHandler<Req, Res>,
  ctx: RpcContext,
): grpc.handleUnaryCall<Req, Res> {
  const tally = new RpcTally(ctx.instruments);
  return (call, callback) => {
    const started = performance.now(); // a double: no BigInt per call
    const ok = (response: Res) => {
      tally.record(method, (performance.now() - started) / 1e3, grpc.status.OK);
      callback(null, response);
    };
    const fail = (thrown: unknown) => {
      const err = toKvError(thrown);
      if (err.code === 'INTERNAL') ctx.logger.error({ err: err.cause ?? err, method }, 'rpc failed');
      else ctx.logger.debug({ method, code: err.code, msg: err.message }, 'rpc refused');
      tally.record(method, (performance.now() - started) / 1e3, grpcStatusOf(err), err.code);
      callback(errorToStatus(err, ctx.errorMetadata?.(err)));
    };
    let out: Res | Promise<Res>;
    try {
      ctx.guard?.(method);
      out = handler(call.request, call);
    } catch (err) {
      fail(err);
      return;
    }
    if (out instanceof Promise) out.then(ok, fail);
    else ok(out);
  };
}

/**
 * Builds a grpc-js implementation object for `definition` from plain async handlers, each wrapped by `unary`.
 * Streaming methods are passed through as given (wrap pipelines of items with `pipelineStream`).
 */
export function implement<D extends grpc.ServiceDefinition>(
  definition: D,
  handlers: {
    [K in keyof D]: D[K] extends grpc.MethodDefinition<infer Req, infer Res>
      ? D[K]['requestStream'] extends true
        ? grpc.UntypedHandleCall
        : UnaryHandler<Req, Res>
      : never;
  },
  ctx: RpcContext,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = handlers[name as keyof D] as unknown;
    if (typeof handler !== 'function') throw new Error(`implement: no handler for ${name}`);
    impl[name] =
      method.requestStream || method.responseStream
        ? (handler as grpc.UntypedHandleCall)
        : (unary(name, handler as UnaryHandler<unknown, unknown>, ctx) as grpc.UntypedHandleCall);
  }
  return impl;
}

/**
 * Binds a grpc-js server to `addr` ("host:port", port 0 picks one, or "unix:/path"); resolves the bound port.
 * With TLS material the server speaks mutual TLS (see rpc-tls.ts), else plaintext.
 */
export function bindServer(server: grpc.Server, addr: string, tls?: TlsMaterial): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(addr, serverCredentials(tls), (err, port) => {
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

/**
 * Channel options used by every kvfabric client and server: keepalive and reconnects. Message sizes are per service
 * (messageSizeOptions with the service's own limits); without them gRPC's defaults apply (4 MiB received).
 */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Reconnect fast after a peer restarts (grpc-js starts at 1 s and backs off to 120 s): a node must find a
  // restarted metaserver within a heartbeat period or two so the index heals quickly.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2000,
  // No channelz: no process serves the channelz service, and its per-call bookkeeping (call counters, timestamps,
  // trace events) is a measurable share of a small unary call on client and server.
  'grpc.enable_channelz': 0,
};
