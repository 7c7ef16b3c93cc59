// A typed Promise wrapper around the generated Metaserver stub: per-call deadlines, errors mapped to KvError in one
// place, leader redirects, epoch tracking and address resolution. Used by the CLI and by kvfabric-node's reporter.
// With an `etcd://` address the client follows the leader by itself (HA mode): a LeaderLocator watches the leader
// key and the channel is re-targeted when it changes; a call that finds no serving leader (none elected, the leader
// gone, a follower without a trailer) waits for one until its deadline, then fails METASERVER_UNAVAILABLE; a
// follower's `kvfabric-leader-addr` trailer is followed at once. Every metaserver RPC is idempotent (inserts and
// removes are set operations, heartbeats refresh a session), and a refused or unconnected call was never applied,
// so retrying them on the next leader is safe.
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import {
  MetaserverClient as MetaserverStub,
  MetaserverService,
  type BlockOwners,
  type GetStatsResponse,
  type HashList,
  type HeartbeatResponse,
  type ListNamespacesResponse,
  type ListNodesResponse,
  type NodePrefix,
  type NodeStats,
  type TransportKind,
} from '@kvfabric/proto';
import { KvError, invalid, packHashes, parseHostPort, formatHostPort, unpackHashes, type PackedHashes } from '@kvfabric/common';
import { CHANNEL_OPTIONS, ERROR_CODE_KEY, fromGrpcError } from '@kvfabric/common/rpc';
import { LeaderLocator, parseEtcdAddr, type EtcdTarget, type LeaderRecord } from './leader-locator.js';

/** Default metaserver address (DESIGN §4). */
export const DEFAULT_METASERVER_ADDR = '127.0.0.1:50056';
/** Trailer a follower metaserver sets on UNAVAILABLE answers: the leader's address. */
export const LEADER_ADDR_KEY = 'kvfabric-leader-addr';

/** Where to reach a metaserver: one address, or the leader named in etcd (HA mode). */
export type MetaserverAddress =
  | {
      kind: 'direct';
      /** grpc-js target ("127.0.0.1:50056", "[::1]:50056"). */
      target: string;
    }
  | { kind: 'etcd'; etcd: EtcdTarget };

/** The one place that turns a user-given metaserver address (`host:port` or `etcd://h:p[,h:p][/prefix]`) into something to dial. */
export function resolveMetaserverAddr(addr: string, field = 'metaserver-addr'): MetaserverAddress {
  const text = (addr ?? '').trim();
  const etcd = parseEtcdAddr(text, field);
  if (etcd) return { kind: 'etcd', etcd };
  const hp = parseHostPort(text, field);
  if (hp.port === 0) throw invalid(field, 'expected a port 1..65535', addr);
  return { kind: 'direct', target: formatHostPort(hp) };
}

export interface MetaserverClientOptions {
  /** Deadline of every call unless the call says otherwise (ms). Default 5000. */
  deadlineMs?: number;
  channelOptions?: grpc.ChannelOptions;
  /** Called when an answer carries an epoch different from the last one seen (restart or failover). */
  onEpoch?: (epoch: bigint, previous: bigint | undefined) => void;
  /** etcd:// only: deadline of each etcd read of the leader key (ms). Default 1000. */
  etcdCallTimeoutMs?: number;
}

/** Redirects to a trailer's leader per call: one for a plain address (as before HA), a few while following etcd. */
const MAX_REDIRECTS = { direct: 1, etcd: 3 } as const;
/** While no leader serves, a call retries at least this often even when etcd names the same leader. */
const RETRY_PAUSE_MS = 200;

export interface CallOptions {
  deadlineMs?: number;
  signal?: AbortSignal;
}

/** Hashes as a list of equal-length byte strings, or already packed. */
export type Hashes = readonly Uint8Array[] | PackedHashes;

export interface HeartbeatInput {
  nodeId: string;
  addr: string;
  transports?: TransportKind[];
  stats?: Partial<NodeStats>;
}

export interface InsertResult {
  epoch: bigint;
  inserted: bigint;
  /** Hashes of the request of which the node is now the third or later owner. */
  reclaimable: Buffer[];
}

export interface RemoveResult {
  epoch: bigint;
  removed: bigint;
}

export interface PrefixResult {
  epoch: bigint;
  /** Live nodes with prefix_len >= 1, longest first, ties by least pool usage. */
  nodes: NodePrefix[];
}

export interface Owner {
  nodeId: string;
  addr: string;
}

export interface OwnersResult {
  epoch: bigint;
  /** owners[i] are the live owners of hashes[i]. */
  owners: Owner[][];
}

type Methods = typeof MetaserverService;
type MethodName = keyof Methods;
type RequestOf<M extends MethodName> = Parameters<Methods[M]['requestSerialize']>[0];
type ResponseOf<M extends MethodName> = ReturnType<Methods[M]['responseDeserialize']>;

export class MetaserverClient {
  /** The address as given. */
  readonly addr: string;
  private readonly address: MetaserverAddress;
  /** The target dialled now: the direct address, a trailer's leader, or the leader etcd names ('' before one is known). */
  private current: string;
  private stub: MetaserverStub | undefined;
  /** Calls in flight on `stub`: cancelled (and retried on the new target) when the leader changes. */
  private readonly inflight = new Set<grpc.ClientUnaryCall>();
  private readonly locator: LeaderLocator | undefined;
  private readonly leaderListeners = new Set<(leader: LeaderRecord | undefined, previous: LeaderRecord | undefined) => void>();
  private readonly deadlineMs: number;
  private readonly channelOptions: grpc.ChannelOptions;
  private readonly onEpoch: MetaserverClientOptions['onEpoch'];
  private closed = false;
  /** The epoch of the last answer, if any. */
  lastEpoch: bigint | undefined;

  constructor(addr: string, opts: MetaserverClientOptions = {}) {
    this.addr = addr;
    this.address = resolveMetaserverAddr(addr);
    this.deadlineMs = opts.deadlineMs ?? 5000;
    this.channelOptions = { ...CHANNEL_OPTIONS, ...opts.channelOptions };
    this.onEpoch = opts.onEpoch;
    this.current = this.address.kind === 'direct' ? this.address.target : '';
    if (this.address.kind === 'etcd') {
      this.locator = new LeaderLocator(this.address.etcd, {
        callTimeoutMs: opts.etcdCallTimeoutMs ?? 1000,
        onChange: (leader, previous) => this.leaderChanged(leader, previous),
      });
    }
  }

  /** The target currently dialled (differs from `addr` after a leader redirect; with etcd:// the leader's address). */
  get target(): string {
    return this.current || this.addr;
  }

  /** etcd:// only: the leader as last read from etcd (undefined while none is elected or before the first read). */
  get leader(): LeaderRecord | undefined {
    return this.locator?.leader;
  }

  /** etcd:// only: the locator following the leader key (started by the first call or by `onLeaderChange`). */
  get leaderLocator(): LeaderLocator | undefined {
    return this.locator;
  }

  /**
   * etcd:// only: calls `listener` on every change of the leader named in etcd (undefined: none elected). Starts
   * following the leader key at once. Returns an unsubscribe function; a no-op for a plain address.
   */
  onLeaderChange(listener: (leader: LeaderRecord | undefined, previous: LeaderRecord | undefined) => void): () => void {
    if (!this.locator) return () => undefined;
    this.leaderListeners.add(listener);
    if (!this.closed) this.locator.start();
    return () => this.leaderListeners.delete(listener);
  }

  heartbeat(input: HeartbeatInput, opts?: CallOptions): Promise<HeartbeatResponse> {
    const stats: NodeStats = { poolCapacityBytes: 0n, poolUsedBytes: 0n, blocks: 0n, ...input.stats };
    return this.call('heartbeat', { nodeId: input.nodeId, addr: input.addr, transports: input.transports ?? [], stats }, opts);
  }

  async unregister(nodeId: string, opts?: CallOptions): Promise<RemoveResult> {
    return this.call('unregister', { nodeId }, opts);
  }

  async insertBlocks(nodeId: string, namespace: string, hashes: Hashes, opts?: CallOptions): Promise<InsertResult> {
    const res = await this.call('insertBlocks', { nodeId, namespace, hashes: toHashList(hashes) }, opts);
    return { epoch: res.epoch, inserted: res.inserted, reclaimable: res.reclaimable ? unpackHashes(res.reclaimable) : [] };
  }

  removeBlocks(nodeId: string, namespace: string, hashes: Hashes, opts?: CallOptions): Promise<RemoveResult> {
    return this.call('removeBlocks', { nodeId, namespace, hashes: toHashList(hashes) }, opts);
  }

  queryPrefix(namespace: string, hashes: Hashes, opts?: CallOptions & { excludeNodeId?: string }): Promise<PrefixResult> {
    return this.call('queryPrefix', { namespace, hashes: toHashList(hashes), excludeNodeId: opts?.excludeNodeId ?? '' }, opts);
  }

  async queryOwners(namespace: string, hashes: Hashes, opts?: CallOptions): Promise<OwnersResult> {
    const res = await this.call('queryOwners', { namespace, hashes: toHashList(hashes) }, opts);
    return { epoch: res.epoch, owners: res.blocks.map(ownersOf) };
  }

  listNodes(opts?: CallOptions): Promise<ListNodesResponse> {
    return this.call('listNodes', {}, opts);
  }

  listNamespaces(opts?: CallOptions): Promise<ListNamespacesResponse> {
    return this.call('listNamespaces', {}, opts);
  }

  getStats(opts?: CallOptions): Promise<GetStatsResponse> {
    return this.call('getStats', {}, opts);
  }

  /** Resolves once the channel (to the leader, with etcd://) is connected; METASERVER_UNAVAILABLE when it is not within `timeoutMs`. */
  async waitForReady(timeoutMs = this.deadlineMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const stub = await this.stubFor(deadline);
    return new Promise((resolve, reject) => {
      stub.waitForReady(deadline, (err) => {
        if (err) reject(new KvError('METASERVER_UNAVAILABLE', `cannot connect to metaserver at ${this.target}: ${err.message}`, { cause: err }));
        else resolve();
      });
    });
  }

  /** Closes the channel (and the etcd watch). Idempotent; later calls fail with METASERVER_UNAVAILABLE. */
  close(): void {
    this.closed = true;
    this.stub?.close();
    this.stub = undefined;
    this.locator?.close();
    this.leaderListeners.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private connect(): MetaserverStub {
    if (this.closed) throw new KvError('METASERVER_UNAVAILABLE', `metaserver client for ${this.addr} is closed`);
    this.stub ??= new MetaserverStub(this.current, grpc.credentials.createInsecure(), this.channelOptions);
    return this.stub;
  }

  /** The stub to call now; with etcd:// it waits (until `deadline`) for a leader to be named. */
  private async stubFor(deadline: number): Promise<MetaserverStub> {
    if (this.closed) return this.connect();
    if (this.locator) {
      this.locator.start();
      const leader = this.locator.leader ?? (await this.locator.waitForLeader(Math.max(0, deadline - Date.now())));
      if (!this.current) this.retarget(leader.addr);
    }
    return this.connect();
  }

  /** The one wrapper every RPC goes through: deadline, cancellation, error mapping, leader following, epoch. */
  private async call<M extends MethodName>(method: M, request: RequestOf<M>, opts: CallOptions = {}): Promise<ResponseOf<M>> {
    const deadline = Date.now() + (opts.deadlineMs ?? this.deadlineMs);
    let redirects = 0;
    for (;;) {
      const stub = await this.stubFor(deadline);
      const tried = { target: this.current, leader: this.locator?.leader };
      try {
        const res = await unary(stub, method, request, deadline, opts.signal, this.inflight);
        this.sawEpoch((res as { epoch?: bigint }).epoch);
        return res;
      } catch (err) {
        if (opts.signal?.aborted) throw this.mapError(err, stub);
        const leader = leaderOf(err);
        if (leader && leader !== tried.target && redirects < MAX_REDIRECTS[this.address.kind] && this.validTarget(leader)) {
          redirects++;
          this.retarget(leader);
          continue;
        }
        if (!this.locator || !noLeaderServed(err)) throw this.mapError(err, stub);
        // HA: nobody served (the leader is gone, or steps down, or a follower knows no leader): wait for etcd to name
        // another leader, or a short pause, and try again until the deadline.
        await this.leaderChangeOrPause(tried.leader, deadline);
        if (Date.now() >= deadline || this.closed) throw this.leaderless(err, stub);
      }
    }
  }

  private async leaderChangeOrPause(tried: LeaderRecord | undefined, deadline: number): Promise<void> {
    const until = Math.min(deadline, Date.now() + RETRY_PAUSE_MS);
    while (Date.now() < until && !this.closed && sameLeader(this.locator!.leader, tried)) await sleep(Math.min(20, until - Date.now()));
  }

  private leaderChanged(leader: LeaderRecord | undefined, previous: LeaderRecord | undefined): void {
    if (leader && leader.addr !== this.current && this.validTarget(leader.addr)) this.retarget(leader.addr);
    for (const listener of this.leaderListeners) listener(leader, previous);
  }

  private validTarget(addr: string): boolean {
    try {
      return resolveMetaserverAddr(addr, LEADER_ADDR_KEY).kind === 'direct';
    } catch {
      return false;
    }
  }

  private retarget(addr: string): void {
    if (addr === this.current) return;
    for (const call of this.inflight) call.cancel();
    this.inflight.clear();
    this.stub?.close();
    this.stub = undefined;
    this.current = formatHostPort(parseHostPort(addr, LEADER_ADDR_KEY));
  }

  private sawEpoch(epoch: bigint | undefined): void {
    if (epoch === undefined || epoch === 0n || epoch === this.lastEpoch) return;
    const previous = this.lastEpoch;
    this.lastEpoch = epoch;
    this.onEpoch?.(epoch, previous);
  }

  /** HA: the deadline passed with no leader serving. Always METASERVER_UNAVAILABLE, saying what etcd knows. */
  private leaderless(err: unknown, stub: MetaserverStub): KvError {
    const locator = this.locator!;
    const last = this.mapError(err, stub);
    const where = `etcd ${locator.target.endpoints.join(',')} key ${locator.key}`;
    const leader = locator.leader;
    const known = leader
      ? `leader ${leader.replicaId || '?'} at ${leader.addr} (epoch ${leader.epoch}) per ${where}`
      : `no leader in ${where}`;
    const etcd = locator.lastError ? `; etcd: ${locator.lastError.message}` : '';
    return new KvError('METASERVER_UNAVAILABLE', `no metaserver leader serving: ${known}: ${last.message}${etcd}`, { cause: err });
  }

  /** Connection failures become METASERVER_UNAVAILABLE with a one-line message naming the target. */
  private mapError(err: unknown, stub: MetaserverStub): KvError {
    if (err instanceof KvError) return err;
    const e = err as Partial<grpc.ServiceError>;
    const connected = stub.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
    const cannotConnect =
      e.code === grpc.status.UNAVAILABLE ? !e.metadata?.get(ERROR_CODE_KEY)?.length && !e.metadata?.get(LEADER_ADDR_KEY)?.length
        : e.code === grpc.status.DEADLINE_EXCEEDED && !connected;
    if (cannotConnect) {
      const detail = connectDetail(e.details || e.message || 'unavailable');
      return new KvError('METASERVER_UNAVAILABLE', `cannot connect to metaserver at ${this.target}: ${detail}`, { cause: err });
    }
    return fromGrpcError(err);
  }
}

function unary<M extends MethodName>(
  stub: MetaserverStub,
  method: M,
  request: RequestOf<M>,
  deadline: number,
  signal: AbortSignal | undefined,
  inflight: Set<grpc.ClientUnaryCall>,
): Promise<ResponseOf<M>> {
  const def = MetaserverService[method];
  return new Promise<ResponseOf<M>>((resolve, reject) => {
    const call = stub.makeUnaryRequest(
      def.path,
      def.requestSerialize as (v: RequestOf<M>) => Buffer,
      def.responseDeserialize as (b: Buffer) => ResponseOf<M>,
      request,
      new grpc.Metadata(),
      { deadline },
      (err, value) => {
        inflight.delete(call);
        signal?.removeEventListener('abort', abort);
        if (err) reject(err);
        else resolve(value!);
      },
    );
    inflight.add(call);
    const abort = () => call.cancel();
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/** An answer that means "no leader served this call": not connected, refused as not-leader, or cut by a re-target. */
function noLeaderServed(err: unknown): boolean {
  if (err instanceof KvError) return err.code === 'METASERVER_UNAVAILABLE';
  const e = err as Partial<grpc.ServiceError>;
  if (e?.code === grpc.status.CANCELLED) return true; // cancelled by a leader change (a caller's abort is checked first)
  if (e?.code !== grpc.status.UNAVAILABLE) return false;
  const kv = e.metadata?.get(ERROR_CODE_KEY)?.[0];
  return kv === undefined || kv === 'NOT_LEADER' || kv === 'METASERVER_UNAVAILABLE';
}

function sameLeader(a: LeaderRecord | undefined, b: LeaderRecord | undefined): boolean {
  return a?.epoch === b?.epoch && a?.addr === b?.addr;
}

function toHashList(hashes: Hashes): HashList {
  if ('packed' in hashes && 'hashLen' in hashes) return { packed: hashes.packed, hashLen: hashes.hashLen };
  return packHashes(hashes as readonly Uint8Array[]);
}

function ownersOf(block: BlockOwners): Owner[] {
  return block.nodeIds.map((nodeId, i) => ({ nodeId, addr: block.addrs[i] ?? '' }));
}

function leaderOf(err: unknown): string | undefined {
  const e = err as Partial<grpc.ServiceError>;
  if (e?.code !== grpc.status.UNAVAILABLE) return undefined;
  const value = e.metadata?.get(LEADER_ADDR_KEY)?.[0];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** grpc-js connect failures, reduced to their cause: "connect ECONNREFUSED 127.0.0.1:1". */
function connectDetail(text: string): string {
  const detail = text
    .replace(/\s+/g, ' ')
    .replace(/\s*Resolution note:.*$/, '')
    .replace(/^No connection established\. Last error: /, '')
    .replace(/\bError: /g, '')
    .replace(/[.\s]+$/, '')
    .trim();
  return detail || 'unavailable';
}
