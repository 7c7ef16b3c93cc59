// The node's block index: content-addressed per namespace, one slot per block. (namespace id, hash bytes) map
// to a slot through an open-addressing table over typed arrays (hash-table.ts) whose entry ids are the slots;
// per-block fields live in typed arrays indexed by slot; LRU order is two intrusive doubly linked lists (pulled
// copies, local copies) threaded through the hot per-slot fields (slot-lru.ts). A 64-hash prefix lookup hashes
// and compares straight from the packed request buffer and allocates nothing.
//
// A slot is in an LRU list exactly when it is unpinned; pinned slots (leases, grants, copies in flight) are
// never eviction candidates. Pure: no gRPC, no native code. Pages are plain numbers (pool offsets). Hashes come
// in and go out as bytes (a buffer and an offset in, a copy or packed lists out).

import type { PackedHashes } from '@kvfabric/common';
import { KeyTable } from './hash-table.js';
import { SlotLru } from './slot-lru.js';

export const enum BlockClass {
  Local = 0,
  Pulled = 1,
}

const NIL = -1;
const LISTS = 2;

export interface IndexStats {
  sealed: number;
  partial: number;
  pinned: number;
  pageBytes: number;
}

/** The sealed blocks of one namespace whose hashes have one length, packed. */
export interface SealedHashes {
  ns: number;
  hashes: PackedHashes;
}

export class BlockIndex {
  /** (namespace id, hash bytes) -> slot; its entry ids are the slots. */
  private readonly table: KeyTable;
  private capacity: number;
  private shardsOf: Uint16Array;
  private landedOf: Uint16Array;
  private classOf: Uint8Array;
  private pinsOf: Int32Array;
  /** Per slot: sealed or not, and its place in its class's LRU list (slot-lru.ts). */
  private readonly lru: SlotLru;
  private pageBytesOf: Float64Array;
  /** Slots of a prefix's hits when the caller passes no `out`. */
  private hitSlots = new Int32Array(64);
  /**
   * Per slot: [page offset of each shard (NaN = none)..., landed flag of each shard..., checksum of each shard's page
   * as (low, high) 32-bit halves, NaN until known...] (a pulled page's is the one it was verified against; a saved
   * page's is computed the first time the block is granted to a peer).
   */
  private pages: (Float64Array | undefined)[] = [];
  private counts = { sealed: 0, partial: 0, pinned: 0, pageBytes: 0 };

  constructor(initialCapacity = 1024) {
    this.table = new KeyTable(initialCapacity);
    this.capacity = this.table.idCapacity;
    const c = this.capacity;
    this.shardsOf = new Uint16Array(c);
    this.landedOf = new Uint16Array(c);
    this.classOf = new Uint8Array(c);
    this.pinsOf = new Int32Array(c);
    this.lru = new SlotLru(c, LISTS);
    this.pageBytesOf = new Float64Array(c);
  }

  stats(): IndexStats {
    return { ...this.counts };
  }

  /** The slot of (namespace, the hash buf[off, off + len)), sealed or not, or -1. */
  lookup(ns: number, buf: Uint8Array, off: number, len: number): number {
    return this.table.find(ns, buf, off, len);
  }

  isSealed(slot: number): boolean {
    return this.lru.isSealed(slot);
  }

  /**
   * Number of leading hashes of `packed` that are sealed blocks of `ns`. Their slots go to `out` (when given,
   * sized for `count`; entries past the hits are scratch), and each hit is moved to the front of its LRU list.
   */
  prefix(ns: number, packed: Buffer, hashLen: number, count: number, out?: Int32Array): number {
    // All probes first (overlapping their cache misses), then the LRU moves.
    let hits = out;
    if (!hits || hits.length < count) {
      if (this.hitSlots.length < count) this.hitSlots = new Int32Array(Math.max(count, this.hitSlots.length * 2));
      hits = this.hitSlots;
    }
    const found = this.table.findRun(ns, packed, 0, hashLen, count, hits);
    const lru = this.lru;
    let n = 0;
    while (n < found && lru.isSealed(hits[n]!)) n++;
    if (out && out !== hits) out.set(hits.subarray(0, Math.min(n, out.length)));
    for (let i = 0; i < n; i++) lru.touch(hits[i]!);
    return n;
  }

  /**
   * The slot that a write of `shard` of (ns, the hash buf[off, off + len)) goes into: created (partial) when
   * missing. Returns -1 when nothing is to be written (sealed already, or that shard's page is already assigned).
   */
  slotForShard(
    ns: number,
    buf: Uint8Array,
    off: number,
    len: number,
    shards: number,
    shard: number,
    pageBytes: number,
    cls = BlockClass.Local,
  ): number {
    const existing = this.table.find(ns, buf, off, len);
    if (existing !== NIL) {
      if (this.lru.isSealed(existing)) return NIL;
      const p = this.pages[existing]!;
      return Number.isNaN(p[shard]!) ? existing : NIL;
    }
    const slot = this.table.add(ns, buf, off, len);
    if (slot >= this.capacity) this.grow(this.table.idCapacity);
    this.shardsOf[slot] = shards;
    this.landedOf[slot] = 0;
    this.lru.setSealed(slot, false);
    this.classOf[slot] = cls;
    this.pinsOf[slot] = 0;
    this.pageBytesOf[slot] = pageBytes;
    const p = new Float64Array(shards * 4);
    p.fill(NaN, 0, shards);
    p.fill(NaN, 2 * shards);
    this.pages[slot] = p;
    this.counts.partial++;
    this.lru.pushFront(slot, cls);
    return slot;
  }

  /** Reserves `shard` of `slot` for `page` (copy about to run). */
  assign(slot: number, shard: number, page: number): void {
    this.pages[slot]![shard] = page;
    this.counts.pageBytes += this.pageBytesOf[slot]!;
  }

  /** Undoes `assign` after a failed copy; returns the page to free. Drops the slot when it holds nothing. */
  unassign(slot: number, shard: number): number {
    const p = this.pages[slot]!;
    const page = p[shard]!;
    p[shard] = NaN;
    p[this.shardsOf[slot]! * 2 + shard * 2] = NaN; // the checksum was the page's
    this.counts.pageBytes -= this.pageBytesOf[slot]!;
    if (this.landedOf[slot] === 0 && !this.anyAssigned(slot) && this.pinsOf[slot] === 0) this.drop(slot);
    return page;
  }

  /** Marks a shard's page written (its copy finished); returns true when that sealed the block. */
  markShardWritten(slot: number, shard: number): boolean {
    const p = this.pages[slot]!;
    const shards = this.shardsOf[slot]!;
    if (p[shards + shard] === 1) return false;
    p[shards + shard] = 1;
    this.landedOf[slot]!++;
    if (this.landedOf[slot] === shards && !this.lru.isSealed(slot)) {
      this.lru.setSealed(slot, true);
      this.counts.partial--;
      this.counts.sealed++;
      return true;
    }
    return false;
  }

  page(slot: number, shard: number): number {
    return this.pages[slot]![shard]!;
  }

  /** Whether the checksum of a shard's page is known (setChecksum ran since the page was assigned). */
  hasChecksum(slot: number, shard: number): boolean {
    return !Number.isNaN(this.pages[slot]![this.shardsOf[slot]! * 2 + shard * 2]!);
  }

  /** Records the checksum of a shard's page (low and high 32 bits). */
  setChecksum(slot: number, shard: number, lo: number, hi: number): void {
    const p = this.pages[slot]!;
    const at = this.shardsOf[slot]! * 2 + shard * 2;
    p[at] = lo;
    p[at + 1] = hi;
  }

  /**
   * Writes the (low, high) checksum of every shard's page of `slot` into `out` from index `at`; returns the next
   * index. Each must be known (hasChecksum).
   */
  checksumsInto(slot: number, out: Uint32Array, at: number): number {
    const p = this.pages[slot]!;
    const shards = this.shardsOf[slot]!;
    for (let i = 0; i < 2 * shards; i++) out[at + i] = p[2 * shards + i]!;
    return at + 2 * shards;
  }

  shards(slot: number): number {
    return this.shardsOf[slot]!;
  }

  /** A copy of the slot's hash bytes. */
  hash(slot: number): Buffer {
    return this.table.key(slot);
  }

  ns(slot: number): number {
    return this.table.tag(slot);
  }

  pins(slot: number): number {
    return this.pinsOf[slot]!;
  }

  pin(slot: number): void {
    if (this.pinsOf[slot]!++ === 0) {
      this.lru.remove(slot);
      this.counts.pinned++;
    }
  }

  unpin(slot: number): void {
    if (this.pinsOf[slot]! <= 0) throw new Error(`block index: unpin of unpinned slot ${slot}`);
    if (--this.pinsOf[slot]! === 0) {
      this.counts.pinned--;
      if (!this.table.isLive(slot)) return;
      if (this.landedOf[slot] === 0 && !this.anyAssigned(slot)) this.drop(slot);
      else this.lru.pushFront(slot, this.classOf[slot]!);
    }
  }

  pinMany(slots: Int32Array, count: number): void {
    for (let i = 0; i < count; i++) this.pin(slots[i]!);
  }

  unpinMany(slots: Int32Array, count: number): void {
    for (let i = 0; i < count; i++) this.unpin(slots[i]!);
  }

  /** The next eviction victim (least recently used; pulled copies first), or -1 when everything is pinned. */
  victim(): number {
    const pulled = this.lru.tail(BlockClass.Pulled);
    return pulled !== NIL ? pulled : this.lru.tail(BlockClass.Local);
  }

  /**
   * Removes an unpinned slot; returns its pages (assigned ones), for the caller to free, and whether it was
   * sealed (then the caller tells the metaserver it is gone).
   */
  evict(slot: number): { ns: number; hash: Buffer; sealed: boolean; pages: number[]; pageBytes: number } {
    if (this.pinsOf[slot] !== 0) throw new Error(`block index: evict of pinned slot ${slot}`);
    const p = this.pages[slot]!;
    const shards = this.shardsOf[slot]!;
    const pages: number[] = [];
    for (let s = 0; s < shards; s++) if (!Number.isNaN(p[s]!)) pages.push(p[s]!);
    const out = {
      ns: this.table.tag(slot),
      hash: this.table.key(slot),
      sealed: this.lru.isSealed(slot),
      pages,
      pageBytes: this.pageBytesOf[slot]!,
    };
    this.evictInto(slot, undefined);
    return out;
  }

  /**
   * `evict` without allocating (the save path evicts dozens of blocks a call): the slot's assigned pages go to
   * `pagesOut` (sized for the slot's shards), their count is returned; ask `isSealed`, `ns`, `hash` before.
   */
  evictInto(slot: number, pagesOut: Float64Array | undefined): number {
    if (this.pinsOf[slot] !== 0) throw new Error(`block index: evict of pinned slot ${slot}`);
    const p = this.pages[slot]!;
    const shards = this.shardsOf[slot]!;
    let n = 0;
    for (let s = 0; s < shards; s++) {
      if (Number.isNaN(p[s]!)) continue;
      if (pagesOut) pagesOut[n] = p[s]!;
      n++;
    }
    this.counts.pageBytes -= n * this.pageBytesOf[slot]!;
    this.drop(slot);
    return n;
  }

  pageBytes(slot: number): number {
    return this.pageBytesOf[slot]!;
  }

  /** Every sealed block of every namespace, packed per namespace and hash length (for re-advertising). */
  sealedHashes(): SealedHashes[] {
    const t = this.table;
    // Two passes over the slots: count each (namespace, hash length) group, then copy the hashes in.
    const groups = new Map<number, { ns: number; hashLen: number; packed: Buffer; filled: number }>();
    const groupOf = (slot: number): number => t.tag(slot) * 65_536 + t.keyLength(slot);
    const counts = new Map<number, number>();
    for (let slot = 0; slot < t.idBound; slot++) {
      if (!this.isSealedSlot(slot)) continue;
      const group = groupOf(slot);
      counts.set(group, (counts.get(group) ?? 0) + 1);
    }
    for (const [group, n] of counts) {
      const hashLen = group % 65_536;
      groups.set(group, {
        ns: (group - hashLen) / 65_536,
        hashLen,
        packed: Buffer.allocUnsafe(n * hashLen),
        filled: 0,
      });
    }
    for (let slot = 0; slot < t.idBound; slot++) {
      if (!this.isSealedSlot(slot)) continue;
      const g = groups.get(groupOf(slot))!;
      g.filled += t.copyKey(slot, g.packed, g.filled);
    }
    return [...groups.values()].map(({ ns, hashLen, packed }) => ({ ns, hashes: { packed, hashLen } }));
  }

  // --- internals -------------------------------------------------------------------------------------

  private isSealedSlot(slot: number): boolean {
    return this.lru.isSealed(slot) && this.table.isLive(slot);
  }

  private anyAssigned(slot: number): boolean {
    const p = this.pages[slot]!;
    for (let s = 0; s < this.shardsOf[slot]!; s++) if (!Number.isNaN(p[s]!)) return true;
    return false;
  }

  private drop(slot: number): void {
    this.lru.remove(slot);
    if (this.lru.isSealed(slot)) this.counts.sealed--;
    else this.counts.partial--;
    this.table.remove(slot);
    this.pages[slot] = undefined;
    this.lru.setSealed(slot, false);
  }

  /** Grows the per-slot arrays to `c` slots (the table's id capacity). */
  private grow(c: number): void {
    const g = <T extends Int32Array | Uint16Array | Uint8Array | Float64Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(c);
      b.set(a);
      return b;
    };
    this.shardsOf = g(this.shardsOf);
    this.landedOf = g(this.landedOf);
    this.classOf = g(this.classOf);
    this.pinsOf = g(this.pinsOf);
    this.pageBytesOf = g(this.pageBytesOf);
    this.lru.grow(c);
    this.capacity = c;
  }
}
