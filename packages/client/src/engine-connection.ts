// A connection to a node's Engine service (unix socket or loopback tcp) with unary calls that answer KvError.
import * as grpc from '@grpc/grpc-js';
import { EngineClient, type StatusResponse } from '@kvfabric/proto/node';
import { CHANNEL_OPTIONS, fromGrpcError } from '@kvfabric/common/rpc';

/** A connection to a node's Engine service. `target`: a unix socket path, "unix:/path", or "host:port". */
export class EngineConnection {
  readonly stub: EngineClient;

  constructor(
    readonly target: string,
    readonly deadlineMs = 30_000,
  ) {
    const t = target.startsWith('/') ? `unix:${target}` : target;
    this.stub = new EngineClient(t, grpc.credentials.createInsecure(), {
      ...CHANNEL_OPTIONS,
      'grpc.keepalive_time_ms': 5_000,
    });
  }

  /** One unary call with a deadline; errors come back as KvError. */
  call<Req, Res>(method: string, request: Req, deadlineMs = this.deadlineMs): Promise<Res> {
    type Unary = (
      r: Req,
      m: grpc.Metadata,
      o: grpc.CallOptions,
      cb: (e: grpc.ServiceError | null, r: Res) => void,
    ) => void;
    const fn = (this.stub as unknown as Record<string, Unary>)[method]!;
    return new Promise((resolve, reject) => {
      fn.call(this.stub, request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
        err ? reject(fromGrpcError(err)) : resolve(res),
      );
    });
  }

  status(): Promise<StatusResponse> {
    return this.call('status', {});
  }

  close(): void {
    this.stub.close();
  }
}
