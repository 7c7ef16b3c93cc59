// Pipelined prefix queries: many QueryPrefix requests in flight on one QueryPrefixStream (the gRPC analogue of a
// Redis pipeline), answers matched by id. One HTTP/2 stream per PrefixQueryStream instead of one per query saves
// the per-call headers, trailers and call objects on both sides. A broken stream rejects its in-flight queries
// with METASERVER_UNAVAILABLE; the next query opens a new one (following the leader trailer of a refusing follower).
// When the connection goes away (a draining server's GOAWAY) the stream is half-closed: its queries still get their
// answers, the server can finish it and stop, and new queries go to a new stream.
import * as grpc from '@grpc/grpc-js';
import {
  MetaserverClient as MetaserverStub,
  type QueryPrefixStreamRequest,
  type QueryPrefixStreamResponse,
} from '@kvfabric/proto';
import { KvError, formatHostPort, isKvErrorCode, packHashes, parseHostPort } from '@kvfabric/common';
import { CHANNEL_OPTIONS, fromGrpcError } from '@kvfabric/common/rpc';
import { LEADER_ADDR_KEY, type Hashes, type PrefixResult } from './metaserver-client.js';

export interface PrefixQueryStreamOptions {
  /** Deadline of each query unless the query says otherwise (ms). Default 5000. */
  deadlineMs?: number;
  channelOptions?: grpc.ChannelOptions;
  /** Called when an answer carries an epoch different from the last one seen (restart or failover). */
  onEpoch?: (epoch: bigint, previous: bigint | undefined) => void;
}

export interface PrefixQueryOptions {
  /** The asking node, left out of the answer. */
  excludeNodeId?: string;
  deadlineMs?: number;
  signal?: AbortSignal;
}

interface Pending {
  resolve(result: PrefixResult): void;
  reject(err: unknown): void;
  /** Date.now() after which the query fails with TRANSPORT_TIMEOUT. */
  deadline: number;
  /** The stream the query was written to. */
  stream: Duplex;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

type Duplex = grpc.ClientDuplexStream<QueryPrefixStreamRequest, QueryPrefixStreamResponse>;

/** Deadlines are checked by one timer while queries are in flight, at this period at most. */
const MAX_DEADLINE_TICK_MS = 100;

export class PrefixQueryStream {
  /** The address as given. */
  readonly addr: string;
  /** The epoch of the last answer, if any. */
  lastEpoch: bigint | undefined;
  private target: string;
  private stub: MetaserverStub | undefined;
  private stream: Duplex | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly deadlineMs: number;
  private readonly tickMs: number;
  private readonly channelOptions: grpc.ChannelOptions;
  private readonly onEpoch: PrefixQueryStreamOptions['onEpoch'];

  constructor(addr: string, opts: PrefixQueryStreamOptions = {}) {
    this.addr = addr;
    this.target = directTarget(addr, 'metaserver-addr');
    this.deadlineMs = opts.deadlineMs ?? 5000;
    this.tickMs = Math.max(1, Math.min(MAX_DEADLINE_TICK_MS, Math.ceil(this.deadlineMs / 10)));
    this.channelOptions = { ...CHANNEL_OPTIONS, ...opts.channelOptions };
    this.onEpoch = opts.onEpoch;
  }

  /** Queries in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** For every live node holding hashes[0], the number of leading hashes it holds (QueryPrefix, pipelined). */
  query(namespace: string, hashes: Hashes, opts: PrefixQueryOptions = {}): Promise<PrefixResult> {
    if (this.closed) return Promise.reject(new KvError('METASERVER_UNAVAILABLE', `prefix query stream to ${this.addr} is closed`));
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let request: QueryPrefixStreamRequest;
    try {
      const list = 'packed' in hashes && 'hashLen' in hashes
        ? { packed: hashes.packed, hashLen: hashes.hashLen }
        : packHashes(hashes as readonly Uint8Array[]);
      request = { id: this.allocId(), namespace, hashes: list, excludeNodeId: opts.excludeNodeId ?? '' };
    } catch (err) {
      return Promise.reject(err);
    }
    const stream = this.open();
    return new Promise<PrefixResult>((resolve, reject) => {
      const id = request.id;
      const p: Pending = { resolve, reject, deadline: Date.now() + (opts.deadlineMs ?? this.deadlineMs), stream, signal, onAbort: undefined };
      if (signal) {
        p.onAbort = () => {
          if (this.pending.get(id) !== p) return;
          this.pending.delete(id);
          reject(signal.reason);
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.set(id, p);
      this.timer ??= setInterval(() => this.expire(), this.tickMs).unref();
      stream.write(request);
    });
  }

  /** Ends the stream and the channel; in-flight and later queries fail with METASERVER_UNAVAILABLE. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.drop(new KvError('METASERVER_UNAVAILABLE', `prefix query stream to ${this.addr} was closed`));
    const stub = this.stub;
    this.stub = undefined; // first: closing the channel calls the state watcher at once
    stub?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** The current stream, opening one (and the channel) when there is none. */
  private open(): Duplex {
    if (this.stream) return this.stream;
    if (!this.stub) {
      this.stub = new MetaserverStub(this.target, grpc.credentials.createInsecure(), this.channelOptions);
      this.watch(this.stub);
    }
    const stream = this.stub.queryPrefixStream();
    this.stream = stream;
    stream.on('data', (res: QueryPrefixStreamResponse) => this.answer(res));
    stream.on('error', (err: unknown) => this.broken(stream, err));
    // the server ended the stream without an error status (e.g. it shuts down): same as a failure
    stream.on('end', () => this.broken(stream, undefined));
    return stream;
  }

  private answer(res: QueryPrefixStreamResponse): void {
    const p = this.pending.get(res.id);
    if (!p) return; // timed out or aborted already
    this.pending.delete(res.id);
    if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
    if (res.error) {
      const { code, message } = res.error;
      p.reject(new KvError(isKvErrorCode(code) ? code : 'INTERNAL', message));
      return;
    }
    if (res.epoch !== 0n && res.epoch !== this.lastEpoch) {
      const previous = this.lastEpoch;
      this.lastEpoch = res.epoch;
      this.onEpoch?.(res.epoch, previous);
    }
    p.resolve({ epoch: res.epoch, nodes: res.nodes });
  }

  /**
   * Follows the channel's state: when a ready connection goes away (GOAWAY from a draining server, or a lost
   * connection) the current stream takes no new queries and is half-closed.
   */
  private watch(stub: MetaserverStub): void {
    const channel = stub.getChannel();
    const state = channel.getConnectivityState(false);
    channel.watchConnectivityState(state, Infinity, () => {
      if (this.stub !== stub || channel.getConnectivityState(false) === grpc.connectivityState.SHUTDOWN) return; // closed or re-targeted
      if (state === grpc.connectivityState.READY && this.stream) {
        const retired = this.stream;
        this.stream = undefined;
        retired.end();
      }
      this.watch(stub);
    });
  }

  /** A stream failed or ended: reject its queries; the next query opens a new stream (at the leader, if named). */
  private broken(stream: Duplex, err: unknown): void {
    if (this.stream === stream) this.stream = undefined;
    const cause = err === undefined ? undefined : fromGrpcError(err);
    const leader = leaderOf(err);
    if (leader && leader !== this.target) {
      const stub = this.stub;
      this.stub = undefined;
      this.stream = undefined;
      this.target = leader;
      stub?.close();
    }
    const why = cause ? `${cause.code}: ${cause.message}` : 'the server ended the stream';
    this.drop(new KvError('METASERVER_UNAVAILABLE', `prefix query stream to ${this.addr} failed: ${why}`, { cause: err }), stream);
  }

  /** Rejects the in-flight queries of `stream` (every stream: undefined) with err; cancels the stream. */
  private drop(err: KvError, stream?: Duplex): void {
    const streams = stream ? [stream] : [...new Set([...this.pending.values()].map((p) => p.stream))];
    if (!stream && this.stream) streams.push(this.stream);
    for (const s of streams) {
      if (s === this.stream) this.stream = undefined;
      s.removeAllListeners('data');
      s.on('error', () => {}); // a late error of a stream given up on
      s.cancel();
    }
    for (const [id, p] of this.pending) {
      if (stream && p.stream !== stream) continue;
      this.pending.delete(id);
      if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
      p.reject(err);
    }
    if (this.pending.size === 0) this.stopTimer();
  }

  /** Fails queries past their deadline (the stream stays: a late answer is dropped). */
  private expire(): void {
    if (this.pending.size === 0) return this.stopTimer();
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (now < p.deadline) continue;
      this.pending.delete(id);
      if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
      const connected = this.stub?.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
      p.reject(connected
        ? new KvError('TRANSPORT_TIMEOUT', `prefix query ${id} to metaserver at ${this.target}: no answer within its deadline`)
        : new KvError('METASERVER_UNAVAILABLE', `cannot connect to metaserver at ${this.target}: no answer within the deadline`));
    }
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A uint32 id not in flight (wraps around; 0 is never used). */
  private allocId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id === 0xffff_ffff ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }
}

function directTarget(addr: string, field: string): string {
  const hp = parseHostPort((addr ?? '').trim(), field);
  if (hp.port === 0) throw new KvError('INVALID_ARGUMENT', `${field}: expected a port 1..65535, got ${JSON.stringify(addr)}`);
  return formatHostPort(hp);
}

/** The leader's address from a follower's refusal (UNAVAILABLE with the kvfabric-leader-addr trailer). */
function leaderOf(err: unknown): string | undefined {
  const e = err as Partial<grpc.ServiceError> | undefined;
  if (e?.code !== grpc.status.UNAVAILABLE) return undefined;
  const value = e.metadata?.get(LEADER_ADDR_KEY)?.[0];
  if (typeof value !== 'string' || value === '') return undefined;
  try {
    return directTarget(value, LEADER_ADDR_KEY);
  } catch {
    return undefined;
  }
}
