// The owner index: which node slots hold which (namespace, block hash), and where each holds it (its tier). Layout:
// namespace -> hash length -> BlockTable (open addressing over typed arrays); each entry heads a short list in
// OwnerLists (node slot and tier). Block,
// ownership and per-node counts are kept incrementally so metrics never walk the index.
// Knows node slots only: liveness comes in as a flag per slot, ids and addresses stay with the sessions.
import { TIER_DRAM, invalid, type BlockTier } from '@kvfabric/common';
import { BlockTable } from './block-table.js';
import { CHUNK_SIZE } from './chunked.js';
import { OWNER_RECORD_BYTES, OwnerLists } from './owner-lists.js';
import type { Hashes, InsertResult, NamespaceView } from './types.js';

/** The number of hashes in a packed list; refuses malformed lists (the service validates them first). */
export function hashCount(h: Hashes): number {
  if (!Number.isInteger(h.hashLen) || h.hashLen < 1 || h.hashLen > 64)
    throw invalid('hashes.hash_len', 'expected 1..64 bytes', h.hashLen);
  if (h.packed.length % h.hashLen !== 0)
    throw invalid('hashes.packed', `expected a multiple of hash_len ${h.hashLen} bytes`, h.packed.length);
  return h.packed.length / h.hashLen;
}

export class OwnerIndex {
  readonly lists = new OwnerLists();
  private readonly namespaces = new Map<string, Map<number, BlockTable>>();
  private blockCount = 0;
  /** Per node slot: the entries it owns, and the namespaces it owns them in (dropping a node scans only those). */
  private readonly ownedBySlot: number[] = [];
  private readonly namespacesBySlot: (Set<string> | undefined)[] = [];

  /** Distinct (namespace, hash) entries. */
  get blocks(): number {
    return this.blockCount;
  }

  /** (namespace, hash, node) ownerships. */
  get owners(): number {
    return this.lists.used;
  }

  get namespaceCount(): number {
    return this.namespaces.size;
  }

  /** Entries node slot owns. */
  ownedBy(slot: number): number {
    return this.ownedBySlot[slot] ?? 0;
  }

  table(ns: string, hashLen: number): BlockTable | undefined {
    return this.namespaces.get(ns)?.get(hashLen);
  }

  /**
   * Makes slot an owner of each hash it does not own yet, holding it in `tier` (the tier of the hashes it owns
   * already is set to `tier`). Reclaimable: the hashes of which slot is the third or later owner among the live ones
   * (`live[slot] === 1`).
   */
  insert(slot: number, ns: string, hashes: Hashes, live: Uint8Array, tier: BlockTier = TIER_DRAM): InsertResult {
    const count = hashCount(hashes);
    const { packed, hashLen } = hashes;
    const result: InsertResult = { inserted: 0, reclaimable: [] };
    if (count === 0) return result;
    const table = this.tableFor(ns, hashLen);
    const { lists } = this;
    let namespaces = this.namespacesBySlot[slot];
    if (!namespaces) this.namespacesBySlot[slot] = namespaces = new Set();
    namespaces.add(ns);
    let owned = this.ownedBySlot[slot] ?? 0;
    for (let i = 0; i < count; i++) {
      const e = table.findOrAdd(packed, i * hashLen);
      const head = table.heads.get(e);
      if (head === 0) {
        table.heads.set(e, lists.alloc(slot, tier));
        this.blockCount++;
        table.owners++;
        owned++;
        result.inserted++;
        continue;
      }
      let ahead = 0; // live owners before this node in arrival order
      let last = 0;
      let found = false;
      for (let r = head; r !== 0; r = lists.nextOf(r)) {
        const n = lists.node.get(r);
        if (n === slot) {
          found = true;
          lists.setTier(r, tier);
          break;
        }
        if (live[n] === 1) ahead++;
        last = r;
      }
      if (!found) {
        lists.setNext(last, lists.alloc(slot, tier));
        table.owners++;
        owned++;
        result.inserted++;
      }
      if (ahead >= 2) result.reclaimable.push(i);
    }
    this.ownedBySlot[slot] = owned;
    return result;
  }

  /** Removes slot's ownership of each hash; other owners are untouched. Returns pairs removed. */
  remove(slot: number, ns: string, hashes: Hashes): number {
    const count = hashCount(hashes);
    const { packed, hashLen } = hashes;
    const table = this.table(ns, hashLen);
    if (!table || count === 0) return 0;
    const { lists } = this;
    let removed = 0;
    for (let i = 0; i < count; i++) {
      const e = table.find(packed, i * hashLen);
      if (e < 0) continue;
      let prev = 0;
      for (let r = table.heads.get(e); r !== 0; prev = r, r = lists.nextOf(r)) {
        if (lists.node.get(r) !== slot) continue;
        this.unlink(table, e, prev, r);
        removed++;
        break;
      }
    }
    this.dropIfEmpty(ns, table);
    return removed;
  }

  /** Removes every ownership of slot (scanning only its namespaces); returns how many. The slot may be reused after. */
  dropNode(slot: number): number {
    let removed = 0;
    const { lists } = this;
    for (const ns of this.namespacesBySlot[slot] ?? []) {
      const tables = this.namespaces.get(ns);
      if (!tables) continue;
      for (const table of [...tables.values()]) {
        for (let e = 0; e < table.idBound && this.ownedBy(slot) > 0; e++) {
          let prev = 0;
          for (let r = table.heads.get(e); r !== 0; prev = r, r = lists.nextOf(r)) {
            if (lists.node.get(r) !== slot) continue;
            this.unlink(table, e, prev, r);
            removed++;
            break;
          }
        }
        this.dropIfEmpty(ns, table);
      }
    }
    this.namespacesBySlot[slot] = undefined;
    this.ownedBySlot[slot] = 0;
    return removed;
  }

  /** The live owners of each hash (node slot and tier), in the order they became owners. */
  liveOwners(ns: string, hashes: Hashes, live: Uint8Array): { slot: number; tier: BlockTier }[][] {
    const count = hashCount(hashes);
    const { packed, hashLen } = hashes;
    const table = this.table(ns, hashLen);
    const { lists } = this;
    const out: { slot: number; tier: BlockTier }[][] = [];
    for (let i = 0; i < count; i++) {
      const owners: { slot: number; tier: BlockTier }[] = [];
      const e = table ? table.find(packed, i * hashLen) : -1;
      for (let r = e >= 0 ? table!.heads.get(e) : 0; r !== 0; r = lists.nextOf(r)) {
        const n = lists.node.get(r);
        if (live[n] === 1) owners.push({ slot: n, tier: lists.tierOf(r) });
      }
      out.push(owners);
    }
    return out;
  }

  /** Forgets table when it holds no entry (and its namespace with its last table). */
  dropIfEmpty(ns: string, table: BlockTable): void {
    if (table.size > 0) return;
    const tables = this.namespaces.get(ns);
    if (tables?.get(table.hashLen) !== table) return;
    tables.delete(table.hashLen);
    if (tables.size === 0) this.namespaces.delete(ns);
  }

  /**
   * What inserting hashes for slot would add, at most (a hash listed twice counts twice): new (block, owner) pairs,
   * and new entries among them. Reads only.
   */
  newOwnerships(slot: number, ns: string, hashes: Hashes): { entries: number; pairs: number } {
    const count = hashCount(hashes);
    const { packed, hashLen } = hashes;
    const table = this.table(ns, hashLen);
    if (!table) return { entries: count, pairs: count };
    const { lists } = this;
    let entries = 0;
    let pairs = 0;
    for (let i = 0; i < count; i++) {
      const e = table.find(packed, i * hashLen);
      if (e < 0) {
        entries++;
        pairs++;
        continue;
      }
      let r = table.heads.get(e);
      while (r !== 0 && lists.node.get(r) !== slot) r = lists.nextOf(r);
      if (r === 0) pairs++;
    }
    return { entries, pairs };
  }

  /**
   * About how many bytes the index grows by at most when `entries` new hashes of hashLen bytes enter namespace ns
   * with `pairs` new owner records: key bytes and list heads, the slot array's doublings, owner records, and one
   * more chunk of each arena (they grow a chunk at a time).
   */
  bytesToAdd(ns: string, hashLen: number, entries: number, pairs: number): number {
    const table = this.table(ns, hashLen);
    const chunkSlack = CHUNK_SIZE * (hashLen + 4 + OWNER_RECORD_BYTES);
    const slotBytes = table ? table.slotBytesToAdd(entries) : BlockTable.slotBytesFor(entries);
    return entries * (hashLen + 4) + pairs * OWNER_RECORD_BYTES + slotBytes + chunkSlack;
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

  /** Bytes held by the typed arrays (tables, hash arenas, owner records). */
  bytes(): number {
    let bytes = this.lists.bytes();
    for (const tables of this.namespaces.values()) for (const t of tables.values()) bytes += t.bytes();
    return bytes;
  }

  private tableFor(ns: string, hashLen: number): BlockTable {
    let tables = this.namespaces.get(ns);
    if (!tables) {
      tables = new Map();
      this.namespaces.set(ns, tables);
    }
    let t = tables.get(hashLen);
    if (!t) {
      t = new BlockTable(hashLen);
      tables.set(hashLen, t);
    }
    return t;
  }

  /** Unlinks owner record r (preceded by prev, 0 when r is the head) from entry e; drops the entry when empty. */
  private unlink(table: BlockTable, e: number, prev: number, r: number): void {
    const { lists } = this;
    const next = lists.nextOf(r);
    if (prev === 0) table.heads.set(e, next);
    else lists.setNext(prev, next);
    this.ownedBySlot[lists.node.get(r)]!--;
    lists.release(r);
    table.owners--;
    if (prev === 0 && next === 0) {
      table.delete(e);
      this.blockCount--;
    }
  }
}
