// Pipelined prefix queries: many QueryPrefix requests in flight on one QueryPrefixStream (a PipelinedStream), answers
// matched by id. One HTTP/2 stream per PrefixQueryStream instead of one per query saves the per-call headers,
// trailers and call objects on both sides. The address is a plain host:port or etcd:// (the stream goes to the leader,
// through a LeaderChannel). A broken stream rejects its in-flight queries with METASERVER_UNAVAILABLE; the next query
// opens a new one (following the leader trailer of a refusing follower, or the leader etcd names now). When the
// connection goes away (a draining server's GOAWAY) the stream is half-closed: its queries still get their answers,
// the server can finish it and stop, and new queries go to a new stream.
import * as grpc from '@grpc/grpc-js';
import type { QueryPrefixStreamRequest, QueryPrefixStreamResponse } from '@kvfabric/proto/metaserver';
import { MetaserverWire } from '@kvfabric/proto/prefix-wire';
import { KvError, isKvErrorCode, toHashList } from '@kvfabric/common';
import { fromGrpcError, type EtcdTls, type TlsMaterial } from '@kvfabric/common/rpc';
import { LeaderChannel } from './leader-channel.js';
import { PipelinedStream, onConnectionLoss, type Duplex } from './pipelined-stream.js';
import type { Hashes, PrefixResult } from './metaserver-client.js';

export interface PrefixQueryStreamOptions {
  /** Deadline of each query unless the query says otherwise (ms). Default 5000. */
  deadlineMs?: number;
  channelOptions?: grpc.ChannelOptions;
  /** Mutual TLS: this process's certificate (readTls); the server must present a metaserver certificate. */
  tls?: TlsMaterial | undefined;
  /** Called when an answer carries an epoch different from the last one seen (restart or failover). */
  onEpoch?: (epoch: bigint, previous: bigint | undefined) => void;
  /** etcd:// only: deadline of each etcd read of the leader key (ms). Default 1000. */
  etcdCallTimeoutMs?: number;
  /** etcd:// only: TLS to etcd (readEtcdTls from --etcd-ca/--etcd-cert/--etcd-key); absent: plaintext. */
  etcdTls?: EtcdTls | undefined;
}

export interface PrefixQueryOptions {
  /** The asking node, left out of the answer. */
  excludeNodeId?: string;
  deadlineMs?: number;
  signal?: AbortSignal;
}

type Request = QueryPrefixStreamRequest;
type Response = QueryPrefixStreamResponse;

export class PrefixQueryStream {
  /** The address as given. */
  readonly addr: string;
  /** The epoch of the last answer, if any. */
  lastEpoch: bigint | undefined;
  private readonly channel: LeaderChannel;
  private readonly pipe: PipelinedStream<Request, Response>;
  /** The client whose connection losses retire the stream. */
  private watched: grpc.Client | undefined;
  private closed = false;
  private readonly deadlineMs: number;
  private readonly onEpoch: PrefixQueryStreamOptions['onEpoch'];

  constructor(addr: string, opts: PrefixQueryStreamOptions = {}) {
    this.addr = addr;
    this.deadlineMs = opts.deadlineMs ?? 5000;
    this.onEpoch = opts.onEpoch;
    this.channel = new LeaderChannel(addr, {
      channelOptions: opts.channelOptions,
      tls: opts.tls,
      etcdCallTimeoutMs: opts.etcdCallTimeoutMs,
      etcdTls: opts.etcdTls,
      // the old stream's queries still get their answers (or its error); new ones go to the new target
      onRetarget: () => this.pipe.retire(),
    });
    this.pipe = new PipelinedStream<Request, Response>({
      deadlineMs: this.deadlineMs,
      open: () => this.open(),
      failure: (err) => this.broken(err),
      expired: (request) => this.expired(request.id),
    });
  }

  /** Queries in flight. */
  get inFlight(): number {
    return this.pipe.inFlight;
  }

  /** For every live node holding hashes[0], the number of leading hashes it holds (QueryPrefix, pipelined). */
  async query(namespace: string, hashes: Hashes, opts: PrefixQueryOptions = {}): Promise<PrefixResult> {
    if (this.closed) throw new KvError('METASERVER_UNAVAILABLE', `prefix query stream to ${this.addr} is closed`);
    const list = toHashList(hashes);
    const excludeNodeId = opts.excludeNodeId ?? '';
    const build = (id: number): Request => ({ id, namespace, hashes: list, excludeNodeId });
    let res: Response;
    if (this.channel.connected()) {
      res = await this.pipe.call(build, opts);
    } else {
      // etcd:// before a leader is known: wait for one within the query's deadline
      const deadline = Date.now() + (opts.deadlineMs ?? this.deadlineMs);
      await this.channel.ready(deadline);
      res = await this.pipe.call(build, { ...opts, deadlineMs: Math.max(0, deadline - Date.now()) });
    }
    if (res.error) {
      const { code, message } = res.error;
      throw new KvError(isKvErrorCode(code) ? code : 'INTERNAL', message);
    }
    this.sawEpoch(res.epoch);
    return { epoch: res.epoch, nodes: res.nodes };
  }

  /** Ends the stream and the channel; in-flight and later queries fail with METASERVER_UNAVAILABLE. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pipe.abandon(new KvError('METASERVER_UNAVAILABLE', `prefix query stream to ${this.addr} was closed`));
    this.watched = undefined; // first: closing the channel calls the state watcher at once
    this.channel.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** A new stream on the channel's client; a lost connection of that client retires it. */
  private open(): Duplex<Request, Response> {
    const client = this.channel.connected();
    if (!client) throw this.unavailable('no metaserver leader known');
    if (this.watched !== client) {
      this.watched = client;
      onConnectionLoss(client, () => {
        if (this.watched === client) this.pipe.retire();
      });
    }
    const def = MetaserverWire.queryPrefixStream;
    return client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize);
  }

  /** A stream failed or ended: its queries fail; the next query goes to the leader a refusing follower names. */
  private broken(err: unknown): KvError {
    this.channel.followTrailer(err);
    const cause = err === undefined ? undefined : fromGrpcError(err);
    const why = cause ? `${cause.code}: ${cause.message}` : 'the server ended the stream';
    return new KvError('METASERVER_UNAVAILABLE', `prefix query stream to ${this.addr} failed: ${why}`, { cause: err });
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
      `prefix query ${id} to metaserver at ${target}: no answer within its deadline`,
    );
  }

  private unavailable(why: string): KvError {
    return new KvError('METASERVER_UNAVAILABLE', `prefix query stream to ${this.addr}: ${why}`);
  }

  private sawEpoch(epoch: bigint): void {
    if (epoch === 0n || epoch === this.lastEpoch) return;
    const previous = this.lastEpoch;
    this.lastEpoch = epoch;
    this.onEpoch?.(epoch, previous);
  }
}
