// Shapes of the store's inputs and answers (plain data; the service maps them to protobuf messages).
import type { BlockTier } from '@kvfabric/common';

/** What a node reports about its memory pool with each heartbeat. */
export interface NodeStatsInput {
  poolCapacityBytes: bigint;
  poolUsedBytes: bigint;
  blocks: bigint;
  /** The SSD tier's drives in service, and what its blocks take there (0 without an SSD tier). */
  ssdCapacityBytes: bigint;
  ssdUsedBytes: bigint;
}

/** What nodes may put in the index (index-limits.ts). */
export interface IndexLimits {
  /** Ownerships one node may hold, over every namespace. */
  maxBlocksPerNode: number;
  /** Bytes the index's typed arrays may take (OwnerIndex.bytes()). */
  maxIndexBytes: number;
}

export interface MetaStoreOptions {
  nodeStaleMs: number;
  /** How long the ownerships of a node that stopped heartbeating are kept (a live node's never expire). */
  ttlMs: number;
  /** Sessions unseen this long are forgotten with their ownerships, sooner than ttlMs. Default 10 × nodeStaleMs. */
  sessionDropMs?: number;
  /** Insert quotas (default: none). */
  limits?: Partial<IndexLimits>;
  /** Milliseconds since the Unix epoch; injectable for tests. */
  clock?: () => number;
  epoch?: bigint;
}

/** A packed hash list: hash i is packed[i*hashLen, (i+1)*hashLen). Validated by the caller. */
export interface Hashes {
  packed: Uint8Array;
  hashLen: number;
}

export interface HeartbeatInput {
  nodeId: string;
  addr: string;
  transports: readonly number[];
  stats?: NodeStatsInput;
}

export interface HeartbeatResult {
  /** True when this heartbeat created the session: the node should re-advertise its blocks. */
  registered: boolean;
  /** The stale session whose address this one took over, if any. */
  replaced?: string;
}

export interface InsertResult {
  /** New (hash, owner) pairs. */
  inserted: number;
  /** Indices into the request of hashes of which the node is the third or later live owner. */
  reclaimable: number[];
}

export interface NodeRef {
  nodeId: string;
  addr: string;
}

/** One owner of a block, and where it holds it. */
export interface BlockOwner extends NodeRef {
  tier: BlockTier;
}

export interface NodePrefixResult extends NodeRef {
  prefixLen: number;
  /** The session's own array (replaced, never changed, by a heartbeat): read it, do not change it. */
  transports: readonly number[];
  poolUsedBytes: bigint;
  poolCapacityBytes: bigint;
  /** Of the prefixLen blocks, how many the node holds on SSD only. */
  ssdBlocks: number;
}

export interface NodeView extends NodeRef {
  state: 'live' | 'stale';
  transports: number[];
  stats: NodeStatsInput;
  indexedBlocks: number;
  registeredAtMs: number;
  lastHeartbeatMs: number;
}

export interface NamespaceView {
  name: string;
  blocks: number;
  owners: number;
}

export interface StoreStats {
  epoch: bigint;
  startedAtMs: number;
  blocks: number;
  owners: number;
  namespaces: number;
  liveNodes: number;
  staleNodes: number;
  indexBytes: number;
}

export interface SweepResult {
  /** Sessions forgotten because their nodes were silent for the retention window. */
  droppedSessions: number;
  /** Ownerships dropped with those sessions. */
  droppedOwners: number;
}
