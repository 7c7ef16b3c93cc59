// The metaserver's pure core: which live node holds which (namespace, block hash). No gRPC here: the service
// decodes and validates requests, calls these methods, and maps the KvErrors they throw.
// MetaStore ties the parts together under one clock: node sessions (sessions.ts) intern node ids to slots, the owner
// index (owner-index.ts) maps hashes to owner slots, the prefix query (prefix-query.ts) is the hot read path, and
// the limits (index-limits.ts) bound what nodes may insert.
// Ownership is bound to the node's session: while a node heartbeats its blocks stay indexed, with no per-block
// refresh. The sweep forgets a session (with every ownership it holds) once its node has been silent for the
// retention window: min(ttl, sessionDrop), never shorter than the stale window. A node that comes back after that
// is registered anew and re-advertises its blocks.
import { randomBytes } from 'node:crypto';
import { KvError, TIER_DRAM, echo, type BlockTier } from '@kvfabric/common';
import { NO_INDEX_LIMITS, checkInsertLimits } from './index-limits.js';
import { OwnerIndex } from './owner-index.js';
import { PrefixQuery } from './prefix-query.js';
import { NodeSessions, type NodeSession } from './sessions.js';
import type {
  BlockOwner,
  Hashes,
  HeartbeatResult,
  HeartbeatInput,
  IndexLimits,
  InsertResult,
  MetaStoreOptions,
  NamespaceView,
  NodePrefixResult,
  NodeView,
  StoreStats,
  SweepResult,
} from './types.js';

export type * from './types.js';

export function randomEpoch(): bigint {
  for (;;) {
    const e = randomBytes(8).readBigUInt64LE(0);
    if (e !== 0n) return e;
  }
}

export class MetaStore {
  readonly epoch: bigint;
  readonly startedAtMs: number;
  readonly nodeStaleMs: number;
  readonly ttlMs: number;
  readonly sessionDropMs: number;
  /** A node silent this long is forgotten with its ownerships. */
  readonly retentionMs: number;
  readonly limits: IndexLimits;
  private readonly clock: () => number;
  private readonly sessions: NodeSessions;
  private readonly index = new OwnerIndex();
  private readonly prefixQuery: PrefixQuery;

  constructor(opts: MetaStoreOptions) {
    this.clock = opts.clock ?? Date.now;
    this.epoch = opts.epoch ?? randomEpoch();
    this.startedAtMs = this.clock();
    this.nodeStaleMs = opts.nodeStaleMs;
    this.ttlMs = opts.ttlMs;
    this.sessionDropMs = opts.sessionDropMs ?? 10 * opts.nodeStaleMs;
    this.retentionMs = Math.max(this.nodeStaleMs, Math.min(this.ttlMs, this.sessionDropMs));
    this.limits = { ...NO_INDEX_LIMITS, ...opts.limits };
    this.sessions = new NodeSessions(opts.nodeStaleMs);
    this.prefixQuery = new PrefixQuery(this.index, this.sessions);
  }

  get blocks(): number {
    return this.index.blocks;
  }

  get owners(): number {
    return this.index.owners;
  }

  get namespaceCount(): number {
    return this.index.namespaceCount;
  }

  // ---- sessions ----

  heartbeat(input: HeartbeatInput): HeartbeatResult {
    const now = this.clock();
    const stale = this.sessions.staleHolderOf(input.nodeId, input.addr, now);
    if (stale) this.dropSession(stale);
    const registered = this.sessions.beat(input, now);
    return stale ? { registered, replaced: stale.nodeId } : { registered };
  }

  /** Ends a session and drops its ownerships; returns how many. */
  unregister(nodeId: string): number {
    return this.dropSession(this.requireSession(nodeId));
  }

  // ---- index updates ----

  /**
   * Makes nodeId an owner of each hash, holding it in `tier` (also the new tier of the hashes it owns already);
   * QUOTA_EXCEEDED (nothing inserted) when that would pass a limit.
   */
  insert(nodeId: string, ns: string, hashes: Hashes, tier: BlockTier = TIER_DRAM): InsertResult {
    const { slot } = this.requireSession(nodeId);
    checkInsertLimits(this.index, this.limits, slot, nodeId, ns, hashes);
    return this.index.insert(slot, ns, hashes, this.sessions.liveSlots(this.clock()), tier);
  }

  /** Removes nodeId's ownership of each hash; other owners are untouched. Returns pairs removed. */
  remove(nodeId: string, ns: string, hashes: Hashes): number {
    const { slot } = this.requireSession(nodeId);
    return this.index.remove(slot, ns, hashes);
  }

  // ---- queries (live nodes only) ----

  /** For every live node holding hashes[0], how many leading hashes it holds contiguously; best node first. */
  queryPrefix(ns: string, hashes: Hashes, excludeNodeId = ''): NodePrefixResult[] {
    return this.prefixQuery.run(ns, hashes, excludeNodeId, this.clock());
  }

  /** The live owners of each hash and where each holds it, in the order they became owners. */
  queryOwners(ns: string, hashes: Hashes): BlockOwner[][] {
    const owners = this.index.liveOwners(ns, hashes, this.sessions.liveSlots(this.clock()));
    return owners.map((list) =>
      list.map(({ slot, tier }) => {
        const s = this.sessions.atSlot(slot)!;
        return { nodeId: s.nodeId, addr: s.addr, tier };
      }),
    );
  }

  /** Every known session, stale ones included (state 'stale'), ordered by address. */
  listNodes(): NodeView[] {
    const now = this.clock();
    return this.sessions
      .all()
      .map((s): NodeView => ({
        nodeId: s.nodeId,
        addr: s.addr,
        state: this.sessions.isLive(s, now) ? 'live' : 'stale',
        transports: [...s.transports],
        stats: { ...s.stats },
        indexedBlocks: this.index.ownedBy(s.slot),
        registeredAtMs: s.registeredAtMs,
        lastHeartbeatMs: s.lastHeartbeatMs,
      }))
      .sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : a.nodeId < b.nodeId ? -1 : 1));
  }

  listNamespaces(): NamespaceView[] {
    return this.index.listNamespaces();
  }

  nodeCounts(): { live: number; stale: number } {
    return this.sessions.counts(this.clock());
  }

  stats(): StoreStats {
    const { live, stale } = this.nodeCounts();
    return {
      epoch: this.epoch,
      startedAtMs: this.startedAtMs,
      blocks: this.index.blocks,
      owners: this.index.owners,
      namespaces: this.index.namespaceCount,
      liveNodes: live,
      staleNodes: stale,
      indexBytes: this.memoryBytes(),
    };
  }

  /** Bytes held by the index's typed arrays (tables, hash arenas, owner records). */
  memoryBytes(): number {
    return this.index.bytes();
  }

  // ---- sweep ----

  /** Forgets the sessions of nodes silent for retentionMs, with their ownerships. Live nodes' ownerships stay. */
  sweep(): SweepResult {
    const now = this.clock();
    const result: SweepResult = { droppedSessions: 0, droppedOwners: 0 };
    for (const s of this.sessions.all()) {
      if (now - s.lastHeartbeatMs < this.retentionMs) continue;
      result.droppedOwners += this.dropSession(s);
      result.droppedSessions++;
    }
    return result;
  }

  // ---- internals ----

  private requireSession(nodeId: string): NodeSession {
    const s = this.sessions.get(nodeId);
    if (!s) throw new KvError('SESSION_UNKNOWN', `node_id: no session for ${echo(nodeId)} (send a heartbeat first)`);
    return s;
  }

  /** Drops every ownership of s, then forgets the session (its slot is reused). */
  private dropSession(s: NodeSession): number {
    const removed = this.index.dropNode(s.slot);
    this.sessions.remove(s);
    return removed;
  }
}
