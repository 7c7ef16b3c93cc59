// The per-call RPC metrics, recorded cheaply: every wrapper (unary calls and pipelined stream items) reports a
// finished call here. Attribute objects are built once per (method, status) and (method, code) and reused, and the
// two counters are tallied and added once per event-loop turn: OpenTelemetry hashes the attributes of every
// `add`/`record`, which costs more than a small call's own work. The duration histogram is recorded per call.
import * as grpc from '@grpc/grpc-js';
import type { KvErrorCode } from './errors.js';
import type { Attributes } from './metrics.js';
import type { RpcInstruments } from './rpc-context.js';

interface MethodAttributes {
  method: Attributes;
  status: Attributes[];
  code: Map<string, Attributes>;
}

export class RpcTally {
  private readonly byMethod = new Map<string, MethodAttributes>();
  /** Counts not yet added to rpc_total / rpc_errors_total, by (reused) attribute object. */
  private readonly calls = new Map<Attributes, number>();
  private readonly errors = new Map<Attributes, number>();
  private flushing = false;

  constructor(private readonly instruments: RpcInstruments) {}

  /** One finished call (or stream item) of `method`: its handling time, status and, for an error, its code. */
  record(method: string, seconds: number, status: grpc.status, code?: KvErrorCode): void {
    const a = this.of(method);
    this.instruments.duration.record(seconds, a.method);
    this.count(a, status, code);
  }

  /** A call refused before it was handled (no duration): counted only. */
  refused(method: string, status: grpc.status, code: KvErrorCode): void {
    this.count(this.of(method), status, code);
  }

  private count(a: MethodAttributes, status: grpc.status, code: KvErrorCode | undefined): void {
    const calls = (a.status[status] ??= { method: a.method.method!, status: grpc.status[status] });
    this.calls.set(calls, (this.calls.get(calls) ?? 0) + 1);
    if (code !== undefined) {
      let errors = a.code.get(code);
      if (!errors) a.code.set(code, (errors = { method: a.method.method!, code }));
      this.errors.set(errors, (this.errors.get(errors) ?? 0) + 1);
    }
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushing = false;
    for (const [a, n] of this.calls) this.instruments.calls.add(n, a);
    for (const [a, n] of this.errors) this.instruments.errors.add(n, a);
    this.calls.clear();
    this.errors.clear();
  };

  private of(method: string): MethodAttributes {
    let a = this.byMethod.get(method);
    if (!a) {
      a = { method: { method }, status: [], code: new Map() };
      this.byMethod.set(method, a);
    }
    return a;
  }
}
