// A typed Promise wrapper around the generated Metaserver stub: per-call deadlines, errors mapped to KvError in one
// place, leader redirects, epoch tracking and address resolution. Used by the CLI and by kvfabric-node's reporter.
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
import {
  CHANNEL_OPTIONS,
  ERROR_CODE_KEY,
  KvError,
  fromGrpcError,
  invalid,
  packHashes,
  parseHostPort,
  formatHostPort,
  unpackHashes,
  type PackedHashes,
} from '@kvfabric/common';

/** Default metaserver address (DESIGN §4). */
export const DEFAULT_METASERVER_ADDR = '127.0.0.1:50056';
/** Trailer a follower metaserver sets on UNAVAILABLE answers: the leader's address. */
export const LEADER_ADDR_KEY = 'kvfabric-leader-addr';

/** Where to reach a metaserver. Only `direct` today; `etcd://` leader discovery slots in here. */
export interface MetaserverAddress {
  kind: 'direct';
  /** grpc-js target ("127.0.0.1:50056", "[::1]:50056"). */
  target: string;
}

/** The one place that turns a user-given metaserver address into something to dial. */
export function resolveMetaserverAddr(addr: string, field = 'metaserver-addr'): MetaserverAddress {
  const text = (addr ?? '').trim();
  if (/^etcd:\/\//i.test(text)) throw invalid(field, 'etcd:// leader discovery is not supported yet; expected host:port', addr);
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
}

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
  private address: MetaserverAddress;
  private stub: MetaserverStub | undefined;
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
  }

  /** The target currently dialled (differs from `addr` after a leader redirect). */
  get target(): string {
    return this.address.target;
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

  /** Resolves once the channel is connected; METASERVER_UNAVAILABLE when it is not within `timeoutMs`. */
  waitForReady(timeoutMs = this.deadlineMs): Promise<void> {
    const stub = this.connect();
    return new Promise((resolve, reject) => {
      stub.waitForReady(Date.now() + timeoutMs, (err) => {
        if (err) reject(new KvError('METASERVER_UNAVAILABLE', `cannot connect to metaserver at ${this.target}: ${err.message}`, { cause: err }));
        else resolve();
      });
    });
  }

  /** Closes the channel. Idempotent; later calls fail with METASERVER_UNAVAILABLE. */
  close(): void {
    this.closed = true;
    this.stub?.close();
    this.stub = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private connect(): MetaserverStub {
    if (this.closed) throw new KvError('METASERVER_UNAVAILABLE', `metaserver client for ${this.addr} is closed`);
    this.stub ??= new MetaserverStub(this.address.target, grpc.credentials.createInsecure(), this.channelOptions);
    return this.stub;
  }

  /** The one wrapper every RPC goes through: deadline, cancellation, error mapping, leader redirect, epoch. */
  private async call<M extends MethodName>(method: M, request: RequestOf<M>, opts: CallOptions = {}, redirected = false): Promise<ResponseOf<M>> {
    const stub = this.connect();
    const def = MetaserverService[method];
    try {
      const res = await new Promise<ResponseOf<M>>((resolve, reject) => {
        const deadline = Date.now() + (opts.deadlineMs ?? this.deadlineMs);
        const call = stub.makeUnaryRequest(
          def.path,
          def.requestSerialize as (v: RequestOf<M>) => Buffer,
          def.responseDeserialize as (b: Buffer) => ResponseOf<M>,
          request,
          new grpc.Metadata(),
          { deadline },
          (err, value) => {
            opts.signal?.removeEventListener('abort', abort);
            if (err) reject(err);
            else resolve(value!);
          },
        );
        const abort = () => call.cancel();
        opts.signal?.addEventListener('abort', abort, { once: true });
      });
      this.sawEpoch((res as { epoch?: bigint }).epoch);
      return res;
    } catch (err) {
      const leader = leaderOf(err);
      if (!redirected && leader && leader !== this.address.target) {
        this.redirect(leader);
        return this.call(method, request, opts, true);
      }
      throw this.mapError(err, stub);
    }
  }

  private redirect(leader: string): void {
    const address = resolveMetaserverAddr(leader, LEADER_ADDR_KEY);
    this.stub?.close();
    this.stub = undefined;
    this.address = address;
  }

  private sawEpoch(epoch: bigint | undefined): void {
    if (epoch === undefined || epoch === 0n || epoch === this.lastEpoch) return;
    const previous = this.lastEpoch;
    this.lastEpoch = epoch;
    this.onEpoch?.(epoch, previous);
  }

  /** Connection failures become METASERVER_UNAVAILABLE with a one-line message naming the target. */
  private mapError(err: unknown, stub: MetaserverStub): KvError {
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
