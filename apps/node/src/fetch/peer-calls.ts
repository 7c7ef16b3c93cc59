// How the reading side calls one serving peer: unary calls with a deadline (Handshake), and PrepareRead and
// ReleaseGrant pipelined on the peer's GrantStream, one HTTP/2 stream for all of them instead of one per call (the
// per-call headers, trailers and call objects cost the holder's event loop more than granting itself). A peer that
// does not serve the stream (an older version: UNIMPLEMENTED) gets unary calls, the failed one included, until
// `streamAgain` (the link handshook again: the peer may have been upgraded). Errors are KvErrors either way, the
// same for the same refusal: unreachable peers TRANSPORT_UNAVAILABLE, no answer in time TRANSPORT_TIMEOUT.
import * as grpc from '@grpc/grpc-js';
import type {
  GrantStreamRequest,
  GrantStreamResponse,
  PeerClient,
  PrepareReadRequest,
  PrepareReadResponse,
  ReleaseGrantRequest,
  ReleaseGrantResponse,
} from '@kvfabric/proto';
import { KvError, itemError } from '@kvfabric/common';
import { ERROR_CODE_KEY, fromGrpcError } from '@kvfabric/common/rpc';
import { PipelinedStream, onConnectionLoss } from '@kvfabric/client/pipelined-stream';

type UnaryMethod = 'handshake' | 'prepareRead' | 'releaseGrant';

/** A failed call's error as a KvError naming `what` (unreachable peers: TRANSPORT_UNAVAILABLE). */
function callError(err: unknown, what: string, deadlineMs: number): KvError {
  const e = err as grpc.ServiceError;
  const sent = e?.metadata?.get(ERROR_CODE_KEY)?.[0];
  if (sent === undefined && e?.code === grpc.status.UNAVAILABLE) {
    return new KvError('TRANSPORT_UNAVAILABLE', `${what}: peer unreachable: ${e.details || e.message}`, { cause: err });
  }
  if (sent === undefined && e?.code === grpc.status.DEADLINE_EXCEEDED) {
    return new KvError('TRANSPORT_TIMEOUT', `${what}: peer did not answer in ${deadlineMs} ms`, { cause: err });
  }
  const k = fromGrpcError(err);
  return new KvError(k.code, `${what}: ${k.message}`, { cause: err });
}

/** Calls one unary method with a deadline; errors become KvErrors. */
export function unaryCall<Req, Res>(
  rpc: PeerClient,
  method: UnaryMethod,
  req: Req,
  deadlineMs: number,
  what: string,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = rpc[method] as unknown as (
      r: Req,
      m: grpc.Metadata,
      o: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res: Res) => void,
    ) => void;
    fn.call(rpc, req, new grpc.Metadata(), { deadline: Date.now() + Math.max(1, deadlineMs) }, (err, res) =>
      err ? reject(callError(err, what, deadlineMs)) : resolve(res),
    );
  });
}

/** The failure of a GrantStream the peer does not serve: its calls never reached a handler. */
class StreamUnimplemented extends Error {}

/** The grant calls, their requests and answers, and the stream answer's case for each. */
interface GrantCalls {
  prepareRead: { req: PrepareReadRequest; res: PrepareReadResponse };
  releaseGrant: { req: ReleaseGrantRequest; res: ReleaseGrantResponse };
}
const ANSWERS = { prepareRead: 'prepared', releaseGrant: 'released' } as const;

/** A stream with no call in flight for this long is half-closed (the peer's idle-connection limit can apply). */
export const GRANT_STREAM_IDLE_MS = 30_000;

export class PeerCalls {
  private readonly grants: PipelinedStream<GrantStreamRequest, GrantStreamResponse>;
  private unaryOnly = false;
  private lastCallMs = Date.now();

  constructor(
    private readonly rpc: PeerClient,
    peerId: string,
  ) {
    this.grants = new PipelinedStream({
      open: () => this.rpc.grantStream(),
      deadlineMs: 5000,
      failure: (err) => {
        if ((err as grpc.ServiceError | undefined)?.code === grpc.status.UNIMPLEMENTED)
          return new StreamUnimplemented();
        if (err === undefined) return new KvError('TRANSPORT_UNAVAILABLE', `peer ${peerId} ended its grant stream`);
        return callError(err, 'grant stream', 0);
      },
      expired: () => new KvError('TRANSPORT_TIMEOUT', 'peer did not answer in time'),
    });
    onConnectionLoss(rpc, () => this.grants.retire());
  }

  /** PrepareRead or ReleaseGrant: on the GrantStream, or a unary call to a peer that does not serve it. */
  async grant<M extends keyof GrantCalls>(
    method: M,
    req: GrantCalls[M]['req'],
    deadlineMs: number,
    what: string,
  ): Promise<GrantCalls[M]['res']> {
    this.lastCallMs = Date.now();
    if (this.unaryOnly) return unaryCall(this.rpc, method, req, deadlineMs, what);
    let res: GrantStreamResponse;
    try {
      const call = { $case: method, value: req } as GrantStreamRequest['call'];
      res = await this.grants.call((id) => ({ id, call }), { deadlineMs: Math.max(1, deadlineMs) });
    } catch (err) {
      if (!(err instanceof StreamUnimplemented)) throw rename(err, what);
      this.unaryOnly = true;
      return unaryCall(this.rpc, method, req, deadlineMs, what);
    }
    const a = res.answer;
    if (a?.$case === ANSWERS[method]) return a.value as GrantCalls[M]['res'];
    if (a?.$case === 'error') throw itemError(a.value, `${what}: `);
    throw new KvError('TRANSPORT_FAILED', `${what}: the peer answered with ${a?.$case ?? 'nothing'}`);
  }

  /** The peer may serve the stream now (the link handshook again): the next grant call tries it. */
  streamAgain(): void {
    this.unaryOnly = false;
  }

  /** Half-closes the stream when no call was made for `idleMs` and none is in flight. */
  retireIdle(idleMs: number): void {
    if (this.grants.inFlight === 0 && Date.now() - this.lastCallMs >= idleMs) this.grants.retire();
  }

  close(err: unknown): void {
    this.grants.abandon(err);
  }
}

/** A stream call's error as a KvError naming `what`. */
function rename(err: unknown, what: string): KvError {
  const k = err instanceof KvError ? err : fromGrpcError(err);
  return new KvError(k.code, `${what}: ${k.message}`, { cause: err });
}
