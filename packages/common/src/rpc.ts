// One wrapper for every RPC (STYLE "One wrapper"): timing, metrics, logging and error mapping live here, not
// in handlers. Handlers are plain async functions `(request, call) => response` that throw KvError.
import * as grpc from '@grpc/grpc-js';
import { KvError, toKvError, isKvErrorCode, type KvErrorCode } from './errors.js';
import type { Logger } from './logger.js';
import { DURATION_BUCKETS_SECONDS } from './duration-buckets.js';
import type { Attributes, Metrics, Counter, Histogram } from './metrics.js';

/** The one table from error codes to gRPC status, used at every service boundary. */
export const GRPC_STATUS_OF: Readonly<Record<KvErrorCode, grpc.status>> = {
  // config and input
  CONFIG_INVALID: grpc.status.INVALID_ARGUMENT,
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  // namespaces and geometry
  NAMESPACE_INVALID: grpc.status.INVALID_ARGUMENT,
  GEOMETRY_CONFLICT: grpc.status.FAILED_PRECONDITION,
  // engine instances and sessions
  INSTANCE_UNKNOWN: grpc.status.NOT_FOUND,
  INSTANCE_EXISTS: grpc.status.FAILED_PRECONDITION,
  SESSION_UNKNOWN: grpc.status.NOT_FOUND,
  SESSION_CONFLICT: grpc.status.FAILED_PRECONDITION,
  REGION_INVALID: grpc.status.INVALID_ARGUMENT,
  // pool
  POOL_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  POOL_INVALID_HANDLE: grpc.status.INTERNAL,
  // leases and grants
  LEASE_UNKNOWN: grpc.status.NOT_FOUND,
  LEASE_EXPIRED: grpc.status.FAILED_PRECONDITION,
  LEASE_FOREIGN: grpc.status.FAILED_PRECONDITION,
  LEASE_CONSUMED: grpc.status.FAILED_PRECONDITION,
  GRANT_UNKNOWN: grpc.status.NOT_FOUND,
  GRANT_REFUSED: grpc.status.PERMISSION_DENIED,
  // transport
  TRANSPORT_UNAVAILABLE: grpc.status.UNAVAILABLE,
  TRANSPORT_FAILED: grpc.status.UNAVAILABLE,
  TRANSPORT_TIMEOUT: grpc.status.DEADLINE_EXCEEDED,
  // metaserver
  METASERVER_UNAVAILABLE: grpc.status.UNAVAILABLE,
  NOT_LEADER: grpc.status.UNAVAILABLE,
  // ssd
  SSD_FAILED: grpc.status.INTERNAL,
  // anything else
  INTERNAL: grpc.status.INTERNAL,
};

/** The gRPC status a KvError is answered with. */
export function grpcStatusOf(err: KvError): grpc.status {
  return GRPC_STATUS_OF[err.code];
}


/** Metadata key carrying the KvError code across the wire, so clients get typed errors back. */
export const ERROR_CODE_KEY = 'kvfabric-error-code';

/** Trailer of a follower metaserver's NOT_LEADER answers: the leader's address (metaserver.proto). */
export const LEADER_ADDR_KEY = 'kvfabric-leader-addr';

export type UnaryHandler<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res;

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
    errors: m.createCounter(`${prefix}_errors_total`, { description: 'RPCs answered with an error, by method and code' }),
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

export function errorToStatus(err: KvError, extra?: grpc.Metadata): Partial<grpc.StatusObject> {
  const metadata = extra ?? new grpc.Metadata();
  metadata.set(ERROR_CODE_KEY, err.code);
  return { code: grpcStatusOf(err), details: err.message, metadata };
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
      finish(grpcStatusOf(err), err.code);
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

/** The items of a pipelined bidi stream: every request message gets exactly one answer message. */
export interface StreamItems<Req, Res> {
  /** Answers one request (may be async). A throw is answered with `itemError` and the stream goes on. */
  answer(request: Req): Res | Promise<Res>;
  /** The answer for a request that failed with err (carrying the request's id). */
  itemError(request: Req, err: KvError): Res;
  /**
   * Checked after `ctx.guard` at the start and before every request; a throw ends the whole stream with that error
   * (e.g. the index the stream was opened on was replaced).
   */
  check?(): void;
  /**
   * The `method` label of a request's metrics (default: the stream's method), e.g. "dataPlane.save" for the items of
   * a stream that carries several kinds. Return one of a few constant strings: attributes are built once per label.
   */
  label?(request: Req): string;
}

/**
 * Metric attribute objects built once per (method, status) and (method, code) and then reused, so that recording a
 * stream item's metrics allocates no attribute objects (streams carry many small items).
 */
class StreamAttributes {
  private readonly byMethod = new Map<string, { method: Attributes; status: Attributes[]; code: Map<string, Attributes> }>();

  private of(method: string) {
    let a = this.byMethod.get(method);
    if (!a) {
      a = { method: { method }, status: [], code: new Map() };
      this.byMethod.set(method, a);
    }
    return a;
  }

  method(method: string): Attributes {
    return this.of(method).method;
  }

  status(method: string, status: grpc.status): Attributes {
    const a = this.of(method);
    return (a.status[status] ??= { method, status: grpc.status[status] });
  }

  code(method: string, code: KvErrorCode): Attributes {
    const a = this.of(method);
    let attrs = a.code.get(code);
    if (!attrs) {
      attrs = { method, code };
      a.code.set(code, attrs);
    }
    return attrs;
  }
}

/**
 * Wraps a bidi stream of independent items (a pipeline of unary-like requests) the way `unary` wraps a call:
 * `ctx.guard` (and `items.check`) at the start and before every message, where a throw ends the stream with the
 * mapped status and `ctx.errorMetadata` (a follower refuses streams as it refuses calls); per message the same
 * metrics as a unary call (`rpc_total` by status, `rpc_errors_total` by code, `rpc_duration_seconds`); per-item
 * errors mapped by `toKvError` and logged like refused calls; attribute objects are reused, not built per message
 * (`items.label` names an item's method), and the two counters are tallied per stream and added once per event-loop
 * turn (OpenTelemetry hashes the attributes of every call, which costs more than a small item's work). Answers may
 * go out in any order (async answers finish when they finish). Reading pauses while written answers are not drained.
 * The stream ends (OK) after the client half-closes and every answer is written.
 */
export function pipelineStream<Req, Res>(method: string, items: StreamItems<Req, Res>, ctx: RpcContext): grpc.handleBidiStreamingCall<Req, Res> {
  const { instruments, logger } = ctx;
  const attrs = new StreamAttributes();
  return (call) => {
    let pending = 0; // async answers not yet written
    let halfClosed = false;
    let done = false; // status sent (or the client went away): nothing more is written
    let paused = false;
    // counts not yet added to rpc_total / rpc_errors_total, by (reused) attribute object
    const tally = new Map<Attributes, number>();
    const errorTally = new Map<Attributes, number>();
    let flushing = false;
    const flush = () => {
      flushing = false;
      for (const [a, n] of tally) instruments.calls.add(n, a);
      for (const [a, n] of errorTally) instruments.errors.add(n, a);
      tally.clear();
      errorTally.clear();
    };
    const count = (calls: Attributes, errors?: Attributes) => {
      tally.set(calls, (tally.get(calls) ?? 0) + 1);
      if (errors) errorTally.set(errors, (errorTally.get(errors) ?? 0) + 1);
      if (!flushing) {
        flushing = true;
        setImmediate(flush);
      }
    };
    const admit = () => {
      ctx.guard?.(method);
      items.check?.();
    };
    const refuse = (thrown: unknown) => {
      if (done) return;
      done = true;
      const err = toKvError(thrown);
      if (err.code === 'INTERNAL') logger.error({ err: err.cause ?? err, method }, 'stream failed');
      else logger.debug({ method, code: err.code, msg: err.message }, 'stream refused');
      instruments.calls.add(1, attrs.status(method, grpcStatusOf(err)));
      instruments.errors.add(1, attrs.code(method, err.code));
      call.emit('error', errorToStatus(err, ctx.errorMetadata?.(err)));
    };
    const finishIfDone = () => {
      if (halfClosed && pending === 0 && !done) {
        done = true;
        call.end();
      }
    };
    const reply = (request: Req, started: number, failed: boolean, outcome: unknown) => {
      const label = items.label ? items.label(request) : method;
      let status = grpc.status.OK;
      let response = outcome as Res;
      if (failed) {
        const err = toKvError(outcome);
        if (err.code === 'INTERNAL') logger.error({ err: err.cause ?? err, method: label }, 'stream item failed');
        else logger.debug({ method: label, code: err.code, msg: err.message }, 'stream item refused');
        count(attrs.status(label, grpcStatusOf(err)), attrs.code(label, err.code));
        status = grpcStatusOf(err);
        response = items.itemError(request, err);
      }
      instruments.duration.record((performance.now() - started) / 1e3, attrs.method(label));
      if (status === grpc.status.OK) count(attrs.status(label, status));
      if (done) return;
      if (!call.write(response) && !paused) {
        paused = true;
        call.pause();
        call.once('drain', () => {
          paused = false;
          call.resume();
        });
      }
    };
    try {
      admit();
    } catch (err) {
      refuse(err);
      return;
    }
    call.on('data', (request: Req) => {
      if (done) return;
      const started = performance.now(); // a double: no BigInt per item
      try {
        admit();
      } catch (err) {
        refuse(err);
        return;
      }
      let out: Res | Promise<Res>;
      try {
        out = items.answer(request);
      } catch (err) {
        reply(request, started, true, err);
        return;
      }
      if (!(out instanceof Promise)) {
        reply(request, started, false, out);
        return;
      }
      pending++;
      out.then(
        (response) => {
          pending--;
          reply(request, started, false, response);
          finishIfDone();
        },
        (err: unknown) => {
          pending--;
          reply(request, started, true, err);
          finishIfDone();
        },
      );
    });
    call.on('end', () => {
      halfClosed = true;
      finishIfDone();
    });
    call.on('cancelled', () => {
      done = true;
    });
    call.on('error', () => {
      done = true; // refused above, or the transport failed: grpc-js ends the call
    });
  };
}

/**
 * Builds a grpc-js implementation object for `definition` from plain async handlers, each wrapped by `unary`.
 * Streaming methods are passed through as given (wrap pipelines of items with `pipelineStream`).
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
  // Reconnect fast after a peer restarts (grpc-js starts at 1 s and backs off to 120 s): a node must find a
  // restarted metaserver within a heartbeat period or two so the index heals quickly.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2000,
};
