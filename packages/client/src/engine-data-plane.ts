// One engine's data-plane calls (save, query, load, release) multiplexed on one DataPlane stream (a PipelinedStream),
// opened lazily, answers matched by id. The stream's first item names the instance; later items leave instance_id
// empty (the node binds the stream). A broken stream rejects its in-flight calls with a KvError (the server's code,
// else TRANSPORT_UNAVAILABLE) and the next call opens a new stream; a node without DataPlane (UNIMPLEMENTED) gets
// these and all later calls as unary calls.
import * as grpc from '@grpc/grpc-js';
import type {
  DataPlaneRequest,
  DataPlaneResponse,
  LoadRequest,
  LoadResponse,
  QueryRequest,
  QueryResponse,
  ReleaseRequest,
  ReleaseResponse,
  SaveRequest,
  SaveResponse,
} from '@kvfabric/proto/node';
import { KvError, isKvErrorCode } from '@kvfabric/common';
import { ERROR_CODE_KEY, fromGrpcError } from '@kvfabric/common/rpc';
import type { EngineConnection } from './engine-connection.js';
import { PipelinedStream } from './pipelined-stream.js';

interface DataOps {
  save: [SaveRequest, SaveResponse];
  query: [QueryRequest, QueryResponse];
  load: [LoadRequest, LoadResponse];
  release: [ReleaseRequest, ReleaseResponse];
}
type DataOp = keyof DataOps;

/** The failure of a stream the node does not implement: its calls never reached a handler. */
class NoDataPlane extends Error {}

export class EngineDataPlane {
  private readonly pipe: PipelinedStream<DataPlaneRequest, DataPlaneResponse>;
  private unary = false;
  private closed = false;

  constructor(
    private readonly conn: EngineConnection,
    private readonly instanceId: string,
  ) {
    this.pipe = new PipelinedStream({
      deadlineMs: conn.deadlineMs,
      open: () => conn.rpc.dataPlane(conn.metadata()),
      failure: (err) => this.failure(err),
      expired: (request) => {
        const why = `${request.op?.$case} got no answer from ${conn.target} within ${conn.deadlineMs} ms`;
        return new KvError('TRANSPORT_TIMEOUT', `engine ${instanceId}: ${why}`);
      },
    });
  }

  /** One operation of this engine (`value.instanceId` is its own; the stream leaves it out after the first item). */
  async call<K extends DataOp>(op: K, value: DataOps[K][0]): Promise<DataOps[K][1]> {
    if (this.unary) return this.conn.call(op, value);
    if (this.closed) throw new KvError('TRANSPORT_UNAVAILABLE', `engine ${this.instanceId}: closed`);
    let res: DataPlaneResponse;
    try {
      res = await this.pipe.call(
        (id, first) =>
          ({ id, op: { $case: op, value: first ? value : { ...value, instanceId: '' } } }) as DataPlaneRequest,
      );
    } catch (err) {
      if (err instanceof NoDataPlane) return this.conn.call(op, value); // the same call, unary
      throw err;
    }
    const result = res.result;
    if (result?.$case === op) return result.value as DataOps[K][1];
    if (result?.$case === 'error')
      throw new KvError(isKvErrorCode(result.value.code) ? result.value.code : 'INTERNAL', result.value.message);
    throw new KvError(
      'INTERNAL',
      `engine ${this.instanceId}: ${op} ${res.id} answered with ${result?.$case ?? 'nothing'}`,
    );
  }

  /** Half-closes the stream (its in-flight calls still get their answers); later calls fail. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pipe.retire();
  }

  private failure(err: unknown): Error {
    const e = err as Partial<grpc.ServiceError> | undefined;
    if (e?.code === grpc.status.UNIMPLEMENTED) {
      this.unary = true;
      return new NoDataPlane();
    }
    if (isKvErrorCode(e?.metadata?.get(ERROR_CODE_KEY)?.[0])) return fromGrpcError(err);
    const why = err === undefined ? 'the node ended the stream' : e?.details || String(err);
    return new KvError(
      'TRANSPORT_UNAVAILABLE',
      `engine ${this.instanceId}: data plane stream to ${this.conn.target} failed: ${why}`,
      { cause: err },
    );
  }
}
