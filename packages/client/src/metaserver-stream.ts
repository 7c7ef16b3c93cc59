// A pipelined stream to the metaserver (QueryPrefixStream, UpdateBlocksStream): many calls in flight on one stream
// (a PipelinedStream), answers matched by id. One HTTP/2 stream for many calls instead of one per call saves the
// per-call headers, trailers and call objects on both sides. The address is a plain host:port or etcd:// (the
// stream goes to the leader, through a LeaderChannel). A broken stream rejects its in-flight calls with
// METASERVER_UNAVAILABLE; the next call opens a new one (following the leader trailer of a refusing follower, or
// the leader etcd names now). When the connection goes away (a draining server's GOAWAY) the stream is half-closed:
// its calls still get their answers, the server can finish it and stop, and new calls go to a new stream.
import * as grpc from '@grpc/grpc-js';
import { KvError } from '@kvfabric/common';
import { fromGrpcError } from '@kvfabric/common/rpc';
import { LeaderChannel } from './leader-channel.js';
import type { MetaserverClientOptions } from './metaserver-client.js';
import { PipelinedStream, onConnectionLoss, type Duplex, type PipelinedCallOptions } from './pipelined-stream.js';

/** Deadlines, TLS, epoch changes and etcd:// options, as for a MetaserverClient. */
export type MetaserverStreamOptions = MetaserverClientOptions;

/** Which stream: its method, and its name and its calls' in error messages ("prefix query stream", "prefix query"). */
export interface MetaserverStreamKind<Req, Res> {
  method: grpc.MethodDefinition<Req, Res>;
  name: string;
  call: string;
}

/**
 * The failure of a stream the metaserver does not implement (an older version): its calls never reached a handler.
 * Its owner may send them another way (BlockUpdateStream: unary calls).
 */
export class StreamUnimplemented extends KvError {
  constructor(what: string, addr: string, options: { cause: unknown }) {
    super('METASERVER_UNAVAILABLE', `${what} to ${addr}: the metaserver does not serve it (an older version)`, options);
  }
}

export class MetaserverStream<Req extends { id: number }, Res extends { id: number }> {
  /** The address as given. */
  readonly addr: string;
  /** The epoch of the last answer, if any. */
  lastEpoch: bigint | undefined;
  private readonly channel: LeaderChannel;
  private readonly pipe: PipelinedStream<Req, Res>;
  /** The client whose connection losses retire the stream. */
  private watched: grpc.Client | undefined;
  private closed = false;
  private readonly deadlineMs: number;
  private readonly onEpoch: MetaserverStreamOptions['onEpoch'];

  constructor(
    addr: string,
    private readonly kind: MetaserverStreamKind<Req, Res>,
    opts: MetaserverStreamOptions = {},
  ) {
    this.addr = addr;
    this.deadlineMs = opts.deadlineMs ?? 5000;
    this.onEpoch = opts.onEpoch;
    this.channel = new LeaderChannel(addr, {
      channelOptions: opts.channelOptions,
      tls: opts.tls,
      etcdCallTimeoutMs: opts.etcdCallTimeoutMs,
      etcdTls: opts.etcdTls,
      // the old stream's calls still get their answers (or its error); new ones go to the new target
      onRetarget: () => this.pipe.retire(),
    });
    this.pipe = new PipelinedStream<Req, Res>({
      deadlineMs: this.deadlineMs,
      open: () => this.open(),
      failure: (err) =>
        (err as Partial<grpc.ServiceError> | undefined)?.code === grpc.status.UNIMPLEMENTED
          ? new StreamUnimplemented(this.kind.name, this.addr, { cause: err })
          : this.broken(err),
      expired: (request) => this.expired(request.id),
    });
  }

  /** Calls in flight. */
  get inFlight(): number {
    return this.pipe.inFlight;
  }

  /** Ends the stream and the channel; in-flight and later calls fail with METASERVER_UNAVAILABLE. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pipe.abandon(new KvError('METASERVER_UNAVAILABLE', `${this.kind.name} to ${this.addr} was closed`));
    this.watched = undefined; // first: closing the channel calls the state watcher at once
    this.channel.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** One call: the request `build` makes for its id, answered (an answer carrying an ItemError is the caller's). */
  protected async call(build: (id: number) => Req, opts: PipelinedCallOptions = {}): Promise<Res> {
    if (this.closed) throw new KvError('METASERVER_UNAVAILABLE', `${this.kind.name} to ${this.addr} is closed`);
    if (this.channel.connected()) return this.pipe.call(build, opts);
    // etcd:// before a leader is known: wait for one within the call's deadline
    const deadline = Date.now() + (opts.deadlineMs ?? this.deadlineMs);
    await this.channel.ready(deadline);
    return this.pipe.call(build, { ...opts, deadlineMs: Math.max(0, deadline - Date.now()) });
  }

  /** An answer's epoch (0: none). */
  protected sawEpoch(epoch: bigint): void {
    if (epoch === 0n || epoch === this.lastEpoch) return;
    const previous = this.lastEpoch;
    this.lastEpoch = epoch;
    this.onEpoch?.(epoch, previous);
  }

  /** A new stream on the channel's client; a lost connection of that client retires it. */
  private open(): Duplex<Req, Res> {
    const client = this.channel.connected();
    if (!client) throw this.unavailable('no metaserver leader known');
    if (this.watched !== client) {
      this.watched = client;
      onConnectionLoss(client, () => {
        if (this.watched === client) this.pipe.retire();
      });
    }
    const def = this.kind.method;
    return client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize);
  }

  /** A stream failed or ended: its calls fail; the next call goes to the leader a refusing follower names. */
  private broken(err: unknown): KvError {
    this.channel.followTrailer(err);
    const cause = err === undefined ? undefined : fromGrpcError(err);
    const why = cause ? `${cause.code}: ${cause.message}` : 'the server ended the stream';
    return new KvError('METASERVER_UNAVAILABLE', `${this.kind.name} to ${this.addr} failed: ${why}`, { cause: err });
  }

  private expired(id: number): KvError {
    const target = this.channel.target;
    const connected = this.watched?.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
    if (!connected)
      return new KvError(
        'METASERVER_UNAVAILABLE',
        `cannot connect to metaserver at ${target}: no answer within the deadline`,
      );
    return new KvError(
      'TRANSPORT_TIMEOUT',
      `${this.kind.call} ${id} to metaserver at ${target}: no answer within its deadline`,
    );
  }

  private unavailable(why: string): KvError {
    return new KvError('METASERVER_UNAVAILABLE', `${this.kind.name} to ${this.addr}: ${why}`);
  }
}
