// A connection to a node's Engine service (unix socket or loopback tcp) with unary calls that answer KvError.
import * as grpc from '@grpc/grpc-js';
import { EngineClient, type StatusResponse } from '@kvfabric/proto/node';
import { ENGINE_MAX_REQUEST_BYTES, ENGINE_MAX_RESPONSE_BYTES } from '@kvfabric/common';
import { CHANNEL_OPTIONS, fromGrpcError, messageSizeOptions } from '@kvfabric/common/rpc';

/** The metadata entry carrying the instance key (node.proto, RegisterInstanceResponse.instance_key). */
const INSTANCE_KEY_METADATA = 'kvfabric-instance-key';

/** A connection to a node's Engine service. `target`: a unix socket path, "unix:/path", or "host:port". */
export class EngineConnection {
  readonly rpc: EngineClient;
  /**
   * The credential RegisterInstance answered (node.proto instance_key): sent with every call on this connection,
   * so the node lets this caller, and only it, use and unregister the instance.
   */
  instanceKey = '';

  constructor(
    readonly target: string,
    readonly deadlineMs = 30_000,
  ) {
    const t = target.startsWith('/') ? `unix:${target}` : target;
    this.rpc = new EngineClient(t, grpc.credentials.createInsecure(), {
      ...CHANNEL_OPTIONS,
      ...messageSizeOptions(ENGINE_MAX_RESPONSE_BYTES, ENGINE_MAX_REQUEST_BYTES),
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
    const fn = (this.rpc as unknown as Record<string, Unary>)[method]!;
    return new Promise((resolve, reject) => {
      fn.call(this.rpc, request, this.metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
        err ? reject(fromGrpcError(err)) : resolve(res),
      );
    });
  }

  /** Call metadata: the instance key once registered. */
  metadata(): grpc.Metadata {
    const m = new grpc.Metadata();
    if (this.instanceKey) m.set(INSTANCE_KEY_METADATA, this.instanceKey);
    return m;
  }

  status(): Promise<StatusResponse> {
    return this.call('status', {});
  }

  close(): void {
    this.rpc.close();
  }
}
