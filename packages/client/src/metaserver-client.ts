// A typed Promise API over the Metaserver service: per-call deadlines, errors as KvError, epoch tracking. Used by the
// CLI and by kvfabric-node's reporter. Where to send each call (a plain address, a follower's redirect, or the leader
// named in etcd with waits for a leader until the deadline) is the LeaderChannel's job (leader-channel.ts).
import * as grpc from '@grpc/grpc-js';
import type { TransportKind } from '@kvfabric/proto/common';
import {
  type MetaserverService,
  type BlockOwners,
  type GetStatsResponse,
  type HeartbeatResponse,
  type ListNamespacesResponse,
  type ListNodesResponse,
  type NodePrefix,
  type NodeStats,
} from '@kvfabric/proto/metaserver';
import { MetaserverWire } from '@kvfabric/proto/prefix-wire';
import {
  KvError,
  TIER_DRAM,
  tierFromWire,
  tierToWire,
  toHashList,
  unpackHashes,
  type BlockTier,
  type HashInput,
} from '@kvfabric/common';
import type { LeaderRecord } from '@kvfabric/common/etcd';
import type { EtcdTls, TlsMaterial } from '@kvfabric/common/rpc';
import { LeaderChannel, type LeaderListener } from './leader-channel.js';
import type { LeaderLocator } from './leader-locator.js';

export interface MetaserverClientOptions {
  /** Deadline of every call unless the call says otherwise (ms). Default 5000. */
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

export interface CallOptions {
  deadlineMs?: number;
  signal?: AbortSignal;
}

/** Hashes as a list of equal-length byte strings, or already packed. */
export type Hashes = HashInput;

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
  /** Where the node holds the block (DRAM for an answer from an older metaserver). */
  tier: BlockTier;
}

export interface OwnersResult {
  epoch: bigint;
  /** owners[i] are the live owners of hashes[i]. */
  owners: Owner[][];
}

type Methods = typeof MetaserverService;
type UnaryName = { [M in keyof Methods]: Methods[M]['requestStream'] extends false ? M : never }[keyof Methods];
type RequestOf<M extends UnaryName> = Parameters<Methods[M]['requestSerialize']>[0];
type ResponseOf<M extends UnaryName> = ReturnType<Methods[M]['responseDeserialize']>;

export class MetaserverClient {
  /** The address as given. */
  readonly addr: string;
  /** The epoch of the last answer, if any. */
  lastEpoch: bigint | undefined;
  private readonly channel: LeaderChannel;
  /** Calls in flight on the channel's target: cancelled (and retried on the new target) when the leader changes. */
  private readonly inflight = new Set<grpc.ClientUnaryCall>();
  private readonly deadlineMs: number;
  private readonly onEpoch: MetaserverClientOptions['onEpoch'];

  constructor(addr: string, opts: MetaserverClientOptions = {}) {
    this.addr = addr;
    this.deadlineMs = opts.deadlineMs ?? 5000;
    this.onEpoch = opts.onEpoch;
    this.channel = new LeaderChannel(addr, {
      channelOptions: opts.channelOptions,
      tls: opts.tls,
      etcdCallTimeoutMs: opts.etcdCallTimeoutMs,
      etcdTls: opts.etcdTls,
      onRetarget: () => this.cancelInflight(),
    });
  }

  /** The target currently dialled (differs from `addr` after a leader redirect; with etcd:// the leader's address). */
  get target(): string {
    return this.channel.target;
  }

  /** etcd:// only: the leader as last read from etcd (undefined while none is elected or before the first read). */
  get leader(): LeaderRecord | undefined {
    return this.channel.leader;
  }

  /** etcd:// only: the locator following the leader key (loads etcd3 on first use; started by calls or listeners). */
  leaderLocator(): Promise<LeaderLocator | undefined> {
    return this.channel.leaderLocator();
  }

  /**
   * etcd:// only: calls `listener` on every change of the leader named in etcd (undefined: none elected). Starts
   * following the leader key at once. Returns an unsubscribe function; a no-op for a plain address.
   */
  onLeaderChange(listener: LeaderListener): () => void {
    return this.channel.onLeaderChange(listener);
  }

  heartbeat(input: HeartbeatInput, opts?: CallOptions): Promise<HeartbeatResponse> {
    const stats: NodeStats = {
      poolCapacityBytes: 0n,
      poolUsedBytes: 0n,
      blocks: 0n,
      ssdCapacityBytes: 0n,
      ssdUsedBytes: 0n,
      ...input.stats,
    };
    const request = { nodeId: input.nodeId, addr: input.addr, transports: input.transports ?? [], stats };
    return this.call('heartbeat', request, opts);
  }

  unregister(nodeId: string, opts?: CallOptions): Promise<RemoveResult> {
    return this.call('unregister', { nodeId }, opts);
  }

  /** Makes nodeId an owner of each hash, held in `tier` (default DRAM; re-inserting an owned hash sets its tier). */
  async insertBlocks(
    nodeId: string,
    namespace: string,
    hashes: Hashes,
    opts?: CallOptions & { tier?: BlockTier },
  ): Promise<InsertResult> {
    const tier = tierToWire(opts?.tier ?? TIER_DRAM);
    const res = await this.call('insertBlocks', { nodeId, namespace, hashes: toHashList(hashes), tier }, opts);
    return {
      epoch: res.epoch,
      inserted: res.inserted,
      reclaimable: res.reclaimable ? unpackHashes(res.reclaimable) : [],
    };
  }

  async removeBlocks(nodeId: string, namespace: string, hashes: Hashes, opts?: CallOptions): Promise<RemoveResult> {
    return this.call('removeBlocks', { nodeId, namespace, hashes: toHashList(hashes) }, opts);
  }

  async queryPrefix(
    namespace: string,
    hashes: Hashes,
    opts?: CallOptions & { excludeNodeId?: string },
  ): Promise<PrefixResult> {
    const request = { namespace, hashes: toHashList(hashes), excludeNodeId: opts?.excludeNodeId ?? '' };
    return this.call('queryPrefix', request, opts);
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
    const client = await this.channel.ready(deadline);
    return new Promise((resolve, reject) => {
      client.waitForReady(deadline, (err) => {
        if (!err) return resolve();
        const why = `cannot connect to metaserver at ${this.target}: ${err.message}`;
        reject(new KvError('METASERVER_UNAVAILABLE', why, { cause: err }));
      });
    });
  }

  /** Closes the channel (and the etcd watch). Idempotent; later calls fail with METASERVER_UNAVAILABLE. */
  close(): void {
    this.channel.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** The one wrapper every RPC goes through: deadline, cancellation, errors and leader following (the channel), epoch. */
  private async call<M extends UnaryName>(
    method: M,
    request: RequestOf<M>,
    opts: CallOptions = {},
  ): Promise<ResponseOf<M>> {
    const deadline = Date.now() + (opts.deadlineMs ?? this.deadlineMs);
    const res = await this.channel.call(deadline, opts.signal, (client) =>
      this.unary(client, method, request, deadline, opts.signal),
    );
    this.sawEpoch((res as { epoch?: bigint }).epoch);
    return res;
  }

  private unary<M extends UnaryName>(
    client: grpc.Client,
    method: M,
    request: RequestOf<M>,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<ResponseOf<M>> {
    const def = MetaserverWire[method];
    return new Promise<ResponseOf<M>>((resolve, reject) => {
      // grpc-js captures the caller's stack (`new Error()`) on every call, for the message of a failed call's error.
      // Failed calls become KvErrors made from the status and trailers (toKvError), so that stack is never shown:
      // with no frames to capture it is free (capturing it was about 5 % of a client's CPU on unary QueryPrefix).
      const stackTraceLimit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      let call: grpc.ClientUnaryCall;
      try {
        call = client.makeUnaryRequest(
          def.path,
          def.requestSerialize as (v: RequestOf<M>) => Buffer,
          def.responseDeserialize as (b: Buffer) => ResponseOf<M>,
          request,
          new grpc.Metadata(),
          { deadline },
          (err, value) => {
            this.inflight.delete(call);
            signal?.removeEventListener('abort', abort);
            if (err) reject(err);
            else resolve(value!);
          },
        );
      } finally {
        Error.stackTraceLimit = stackTraceLimit;
      }
      this.inflight.add(call);
      const abort = () => call.cancel();
      signal?.addEventListener('abort', abort, { once: true });
    });
  }

  private cancelInflight(): void {
    for (const call of this.inflight) call.cancel();
    this.inflight.clear();
  }

  private sawEpoch(epoch: bigint | undefined): void {
    if (epoch === undefined || epoch === 0n || epoch === this.lastEpoch) return;
    const previous = this.lastEpoch;
    this.lastEpoch = epoch;
    this.onEpoch?.(epoch, previous);
  }
}

function ownersOf(block: BlockOwners): Owner[] {
  return block.nodeIds.map((nodeId, i) => ({
    nodeId,
    addr: block.addrs[i] ?? '',
    tier: tierFromWire(block.tiers[i] ?? 0) ?? TIER_DRAM,
  }));
}
