// The metaserver's pure core: which live node holds which (namespace, block hash). No gRPC here: the service
// decodes and validates requests, calls these methods, and maps the KvErrors they throw.
//
// Layout: namespace -> hash length -> BlockTable (open addressing over typed arrays); each entry heads a short
// list of OwnerPool records (node slot, last touch). Node ids are interned to slots by NodeSessions. Counters for
// blocks/owners/nodes are kept incrementally so metrics never walk the index.
import { randomBytes } from 'node:crypto';
import { KvError, invalid } from '@kvfabric/common';
import { BlockTable } from './block-table.js';
import { OwnerPool } from './owner-pool.js';
import { NodeSessions, type NodeSession } from './sessions.js';
import { PrefixScratch } from './prefix-scratch.js';
import type {
  Hashes, HeartbeatResult, HeartbeatInput, InsertResult, MetaStoreOptions, NamespaceView, NodePrefixResult, NodeRef,
  NodeView, StoreStats, SweepResult,
} from './types.js';

export type * from './types.js';

type Namespace = Map<number, BlockTable>;

interface SweepCursor {
  tables: { ns: string; table: BlockTable }[];
  table: number;
  entry: number;
}

/** Longest prefix first, then least pool usage, then node id (a total order: answers are deterministic). */
function byPrefixThenLoad(a: NodePrefixResult, b: NodePrefixResult): number {
  return b.prefixLen - a.prefixLen ||
    (a.poolUsedBytes < b.poolUsedBytes ? -1 : a.poolUsedBytes > b.poolUsedBytes ? 1 : 0) ||
    (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0);
}

/** `checked` without the result object, for the query path: the number of hashes. */
function checkedCount(h: Hashes): number {
  if (!Number.isInteger(h.hashLen) || h.hashLen < 1 || h.hashLen > 64) throw invalid('hashes.hash_len', 'expected 1..64 bytes', h.hashLen);
  if (h.packed.length % h.hashLen !== 0) throw invalid('hashes.packed', `expected a multiple of hash_len ${h.hashLen} bytes`, h.packed.length);
  return h.packed.length / h.hashLen;
}

/** The store trusts its caller (the service validates with field names) but refuses malformed lists. */
function checked(h: Hashes): Hashes & { count: number } {
  if (!Number.isInteger(h.hashLen) || h.hashLen < 1 || h.hashLen > 64) throw invalid('hashes.hash_len', 'expected 1..64 bytes', h.hashLen);
  if (h.packed.length % h.hashLen !== 0) throw invalid('hashes.packed', `expected a multiple of hash_len ${h.hashLen} bytes`, h.packed.length);
  return { packed: h.packed, hashLen: h.hashLen, count: h.packed.length / h.hashLen };
}

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
  private readonly clock: () => number;
  private readonly sessions: NodeSessions;
  private readonly pool = new OwnerPool();
  private readonly namespaces = new Map<string, Namespace>();
  private blockCount = 0;
  /** Scratch for prefix queries (grown on demand, never shrunk). */
  private readonly scratch = new PrefixScratch();
  private cursor: SweepCursor | undefined;

  constructor(opts: MetaStoreOptions) {
    this.clock = opts.clock ?? Date.now;
    this.epoch = opts.epoch ?? randomEpoch();
    this.startedAtMs = this.clock();
    this.nodeStaleMs = opts.nodeStaleMs;
    this.ttlMs = opts.ttlMs;
    this.sessionDropMs = opts.sessionDropMs ?? 10 * opts.nodeStaleMs;
    this.sessions = new NodeSessions(opts.nodeStaleMs);
  }

  get blocks(): number {
    return this.blockCount;
  }

  get owners(): number {
    return this.pool.used;
  }

  // ---- sessions ----

  heartbeat(input: HeartbeatInput): HeartbeatResult {
    const now = this.clock();
    let s = this.sessions.get(input.nodeId);
    const holder = this.sessions.holderOf(input.addr);
    let replaced: string | undefined;
    if (holder && holder !== s) {
      if (this.sessions.isLive(holder, now)) {
        throw new KvError(
          'SESSION_CONFLICT',
          `addr: ${input.addr} belongs to live node ${holder.nodeId}; another session may take it over after ` +
            `${this.nodeStaleMs / 1000}s without heartbeats from it`,
        );
      }
      this.dropSession(holder);
      replaced = holder.nodeId;
    }
    let registered = false;
    if (!s) {
      s = this.sessions.add(input.nodeId, input.addr, now);
      registered = true;
    } else if (s.addr !== input.addr) {
      this.sessions.moveAddr(s, input.addr);
    }
    s.lastHeartbeatMs = now;
    s.transports = [...input.transports];
    if (input.stats) s.stats = { ...input.stats };
    return replaced === undefined ? { registered } : { registered, replaced };
  }

  /** Ends a session and drops its ownerships; returns how many. */
  unregister(nodeId: string): number {
    const s = this.requireSession(nodeId);
    return this.dropSession(s);
  }

  // ---- index updates ----

  insert(nodeId: string, ns: string, hashes: Hashes): InsertResult {
    const s = this.requireSession(nodeId);
    const { packed, hashLen, count } = checked(hashes);
    const result: InsertResult = { inserted: 0, reclaimable: [] };
    if (count === 0) return result;
    const table = this.table(ns, hashLen, true)!;
    const { pool } = this;
    const nowSec = this.nowSec();
    const live = this.sessions.liveSlots(this.clock());
    const slot = s.slot;
    s.namespaces.add(ns);
    for (let i = 0; i < count; i++) {
      const e = table.findOrAdd(packed, i * hashLen);
      const head = table.heads.get(e);
      if (head === 0) {
        table.heads.set(e, pool.alloc(slot, nowSec));
        this.blockCount++;
        table.owners++;
        s.indexed++;
        result.inserted++;
        continue;
      }
      let ahead = 0; // live owners before this node in arrival order
      let last = 0;
      let found = false;
      for (let r = head; r !== 0; r = pool.next.get(r)) {
        const n = pool.node.get(r);
        if (n === slot) {
          pool.touched.set(r, nowSec);
          found = true;
          break;
        }
        if (live[n] === 1) ahead++;
        last = r;
      }
      if (!found) {
        pool.next.set(last, pool.alloc(slot, nowSec));
        table.owners++;
        s.indexed++;
        result.inserted++;
      }
      if (ahead >= 2) result.reclaimable.push(i);
    }
    return result;
  }

  /** Removes nodeId's ownership of each hash; other owners are untouched. Returns pairs removed. */
  remove(nodeId: string, ns: string, hashes: Hashes): number {
    const s = this.requireSession(nodeId);
    const { packed, hashLen, count } = checked(hashes);
    const table = this.table(ns, hashLen, false);
    if (!table || count === 0) return 0;
    const { pool } = this;
    let removed = 0;
    for (let i = 0; i < count; i++) {
      const e = table.find(packed, i * hashLen);
      if (e < 0) continue;
      let prev = 0;
      for (let r = table.heads.get(e); r !== 0; prev = r, r = pool.next.get(r)) {
        if (pool.node.get(r) !== s.slot) continue;
        this.unlink(table, e, prev, r);
        removed++;
        break;
      }
    }
    this.dropIfEmpty(ns, table);
    return removed;
  }

  // ---- queries (live nodes only) ----

  /**
   * For every live node holding hashes[0], how many leading hashes it holds contiguously.
   * Hot path (one call per engine query): no allocation but the answer; hash i is first looked for at the entry
   * after hash i - 1's (`findNear`: chains are usually inserted in order), so a query walks the key arena and the
   * owner records mostly sequentially instead of probing the slot array 64 times; stops as soon as no candidate
   * is still counting.
   */
  queryPrefix(ns: string, hashes: Hashes, excludeNodeId = ''): NodePrefixResult[] {
    const count = checkedCount(hashes);
    const { packed, hashLen } = hashes;
    if (count === 0) return [];
    const table = this.namespaces.get(ns)?.get(hashLen);
    if (!table) return [];
    const e0 = table.find(packed, 0);
    if (e0 < 0) return []; // nobody holds hashes[0]: nothing to count
    const { pool, sessions } = this;
    const now = this.clock();
    const exclude = excludeNodeId ? (sessions.get(excludeNodeId)?.slot ?? -1) : -1;

    // Candidates: the live owners of hashes[0] (a handful), each counting from `count` until a hole.
    const q = this.scratch;
    const stamp = q.begin(sessions.slotBound);
    for (let r = table.heads.get(e0); r !== 0; r = pool.next.get(r)) {
      const n = pool.node.get(r);
      if (n === exclude || !sessions.liveAt(n, now)) continue;
      q.add(n, stamp, count);
    }
    const nc = q.count;
    if (nc === 0) return [];
    const { mark, candOf } = q;

    let active = nc;
    const { heads } = table;
    const words = hashLen % 4 === 0 ? q.wordsOf(packed) : undefined;
    for (let i = 1, e = e0; i < count && active > 0; i++) {
      // chains are usually inserted in order: try the entry after hash i - 1's before probing the table
      e = table.findNear(packed, i * hashLen, e + 1, words);
      if (e >= 0) {
        for (let r = heads.get(e); r !== 0; r = pool.next.get(r)) {
          const slot = pool.node.get(r);
          if (mark[slot] === stamp) q.seen[candOf[slot]!] = i;
        }
      }
      for (let a = 0; a < active;) {
        const c = q.active[a]!;
        if (q.seen[c] === i) {
          a++;
        } else {
          q.prefix[c] = i; // a hole (or the end of what this node holds) stops its count
          q.active[a] = q.active[--active]!;
        }
      }
    }
    const out: NodePrefixResult[] = new Array(nc);
    for (let c = 0; c < nc; c++) {
      const s = sessions.atSlot(q.slot[c]!)!;
      out[c] = {
        nodeId: s.nodeId,
        addr: s.addr,
        prefixLen: q.prefix[c]!,
        transports: [...s.transports],
        poolUsedBytes: s.stats.poolUsedBytes,
        poolCapacityBytes: s.stats.poolCapacityBytes,
      };
    }
    // insertion sort: answers hold a handful of nodes, and Array.prototype.sort allocates a work array per call
    for (let i = 1; i < nc; i++) {
      const x = out[i]!;
      let j = i - 1;
      for (; j >= 0 && byPrefixThenLoad(out[j]!, x) > 0; j--) out[j + 1] = out[j]!;
      out[j + 1] = x;
    }
    return out;
  }

  /** The live owners of each hash, in the order they became owners. */
  queryOwners(ns: string, hashes: Hashes): NodeRef[][] {
    const { packed, hashLen, count } = checked(hashes);
    const table = this.table(ns, hashLen, false);
    const out: NodeRef[][] = [];
    const live = this.sessions.liveSlots(this.clock());
    const { pool } = this;
    for (let i = 0; i < count; i++) {
      const owners: NodeRef[] = [];
      const e = table ? table.find(packed, i * hashLen) : -1;
      if (e >= 0) {
        for (let r = table!.heads.get(e); r !== 0; r = pool.next.get(r)) {
          const n = pool.node.get(r);
          if (live[n] !== 1) continue;
          const s = this.sessions.atSlot(n)!;
          owners.push({ nodeId: s.nodeId, addr: s.addr });
        }
      }
      out.push(owners);
    }
    return out;
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
        indexedBlocks: s.indexed,
        registeredAtMs: s.registeredAtMs,
        lastHeartbeatMs: s.lastHeartbeatMs,
      }))
      .sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : a.nodeId < b.nodeId ? -1 : 1));
  }

  listNamespaces(): NamespaceView[] {
    const out: NamespaceView[] = [];
    for (const [name, tables] of this.namespaces) {
      let blocks = 0;
      let owners = 0;
      for (const t of tables.values()) {
        blocks += t.size;
        owners += t.owners;
      }
      out.push({ name, blocks, owners });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  get namespaceCount(): number {
    return this.namespaces.size;
  }

  nodeCounts(): { live: number; stale: number } {
    return this.sessions.counts(this.clock());
  }

  stats(): StoreStats {
    const { live, stale } = this.nodeCounts();
    return {
      epoch: this.epoch,
      startedAtMs: this.startedAtMs,
      blocks: this.blockCount,
      owners: this.pool.used,
      namespaces: this.namespaces.size,
      liveNodes: live,
      staleNodes: stale,
      indexBytes: this.memoryBytes(),
    };
  }

  /** Bytes held by the index's typed arrays (tables, hash arenas, owner records). */
  memoryBytes(): number {
    let bytes = this.pool.bytes();
    for (const tables of this.namespaces.values()) for (const t of tables.values()) bytes += t.bytes();
    return bytes;
  }

  // ---- sweep ----

  /**
   * Advances the sweep by about `budget` entries: at the start of a pass, forgets sessions unseen for
   * sessionDropMs (with their ownerships); then drops ownerships not touched for ttlMs. Call until `done`.
   */
  sweep(budget = Number.POSITIVE_INFINITY): SweepResult {
    const result: SweepResult = { done: false, expired: 0, droppedSessions: 0, droppedOwners: 0 };
    const now = this.clock();
    if (!this.cursor) {
      for (const s of this.sessions.all()) {
        if (now - s.lastHeartbeatMs < this.sessionDropMs) continue;
        result.droppedOwners += this.dropSession(s);
        result.droppedSessions++;
      }
      const tables: SweepCursor['tables'] = [];
      for (const [ns, map] of this.namespaces) for (const table of map.values()) tables.push({ ns, table });
      this.cursor = { tables, table: 0, entry: 0 };
    }
    const cur = this.cursor;
    const ttlSec = Math.ceil(this.ttlMs / 1000);
    const nowSec = this.nowSec();
    const { pool } = this;
    let left = budget;
    while (cur.table < cur.tables.length && left > 0) {
      const { ns, table } = cur.tables[cur.table]!;
      if (this.namespaces.get(ns)?.get(table.hashLen) !== table) {
        cur.table++;
        cur.entry = 0;
        continue;
      }
      const end = Math.min(table.idBound, cur.entry + left);
      for (let e = cur.entry; e < end; e++) {
        let prev = 0;
        for (let r = table.heads.get(e); r !== 0;) {
          const next = pool.next.get(r);
          if (nowSec - pool.touched.get(r) >= ttlSec) {
            this.unlink(table, e, prev, r);
            result.expired++;
          } else {
            prev = r;
          }
          r = next;
        }
      }
      left -= end - cur.entry;
      cur.entry = end;
      if (cur.entry >= table.idBound) {
        this.dropIfEmpty(ns, table);
        cur.table++;
        cur.entry = 0;
      }
    }
    if (cur.table >= cur.tables.length) {
      this.cursor = undefined;
      result.done = true;
    }
    return result;
  }

  // ---- internals ----

  private requireSession(nodeId: string): NodeSession {
    const s = this.sessions.get(nodeId);
    if (!s) throw new KvError('SESSION_UNKNOWN', `node_id: no session for ${JSON.stringify(nodeId)} (send a heartbeat first)`);
    return s;
  }

  private nowSec(): number {
    return Math.max(0, Math.floor((this.clock() - this.startedAtMs) / 1000));
  }

  private table(ns: string, hashLen: number, create: boolean): BlockTable | undefined {
    let tables = this.namespaces.get(ns);
    if (!tables) {
      if (!create) return undefined;
      tables = new Map();
      this.namespaces.set(ns, tables);
    }
    let t = tables.get(hashLen);
    if (!t && create) {
      t = new BlockTable(hashLen);
      tables.set(hashLen, t);
    }
    return t;
  }

  /** Unlinks owner record r (preceded by prev, 0 when r is the head) from entry e; drops the entry when empty. */
  private unlink(table: BlockTable, e: number, prev: number, r: number): void {
    const { pool } = this;
    const next = pool.next.get(r);
    if (prev === 0) table.heads.set(e, next);
    else pool.next.set(prev, next);
    const owner = this.sessions.atSlot(pool.node.get(r));
    if (owner) owner.indexed--;
    pool.release(r);
    table.owners--;
    if (prev === 0 && next === 0) {
      table.delete(e);
      this.blockCount--;
    }
  }

  private dropIfEmpty(ns: string, table: BlockTable): void {
    if (table.size > 0) return;
    const tables = this.namespaces.get(ns);
    if (tables?.get(table.hashLen) !== table) return;
    tables.delete(table.hashLen);
    if (tables.size === 0) this.namespaces.delete(ns);
  }

  /** Removes every ownership of s (scanning only its namespaces), then forgets the session. */
  private dropSession(s: NodeSession): number {
    let removed = 0;
    const { pool } = this;
    for (const ns of s.namespaces) {
      const tables = this.namespaces.get(ns);
      if (!tables) continue;
      for (const table of [...tables.values()]) {
        for (let e = 0; e < table.idBound && s.indexed > 0; e++) {
          let prev = 0;
          for (let r = table.heads.get(e); r !== 0; prev = r, r = pool.next.get(r)) {
            if (pool.node.get(r) !== s.slot) continue;
            this.unlink(table, e, prev, r);
            removed++;
            break;
          }
        }
        this.dropIfEmpty(ns, table);
      }
    }
    this.sessions.remove(s);
    return removed;
  }
}
