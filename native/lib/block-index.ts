// The node's block index, in native memory (src/block_index.h): content-addressed per namespace, one slot per
// block, per-block fields in native arrays, two LRU lists (pulled copies evicted before local ones), pins that keep
// blocks out of them. Nothing per block lives on the V8 heap, and the garbage collector never walks the index.
// Slots are plain numbers; a stale or made-up slot throws INVALID_ARGUMENT (the addon checks every slot it is
// given against the live ones). Pages are pool offsets, NaN where a shard has none.
import { binding } from './loader.js';
import type { KeyIds } from './key-ids.js';

/** Which LRU list a block is in: pulled copies are evicted before locally made ones. */
export const BlockClass = { Local: 0, Pulled: 1 } as const;
export type BlockClass = (typeof BlockClass)[keyof typeof BlockClass];

export interface IndexStats {
  sealed: number;
  partial: number;
  pinned: number;
  /** Pool bytes of every assigned page. */
  pageBytes: number;
}

/** The sealed blocks of one namespace whose hashes have one length, packed. */
export interface SealedHashes {
  ns: number;
  hashes: { packed: Buffer; hashLen: number };
}

export interface EvictedSlot {
  ns: number;
  hash: Buffer;
  sealed: boolean;
  pages: number[];
  pageBytes: number;
}

/** What a grant of some blocks hands out (grantPages). */
export interface GrantPages {
  /** Every shard's page, block-major. */
  pageOffsets: Float64Array;
  /** (low, high) checksum per page; 0, 0 where it is not known yet (see `unsummed`). */
  checksums: Uint32Array;
  /** Indexes (into pageOffsets) of the pages with no checksum yet. */
  unsummed: Int32Array;
  /** (offset, length) pairs covering every page; pages adjacent in the pool share one. */
  ranges: Float64Array;
}

/** The native index's methods (native/src/block_index_js.cc); each call takes the index's lock. */
export interface BlockIndex {
  stats(): IndexStats;
  /** The slot of (namespace, the hash buf[off, off + len)), sealed or not, or -1. */
  lookup(ns: number, buf: Uint8Array, off: number, len: number): number;
  isSealed(slot: number): boolean;
  /**
   * Looks up hashes [at, at + count) of `packed` in `ns`: out[k] is the slot of hash at + k when it is a sealed block,
   * else -1; returns how many are. Nothing moves in the LRU lists.
   */
  sealedSlots(ns: number, packed: Uint8Array, hashLen: number, at: number, count: number, out: Int32Array): number;
  /**
   * Number of leading hashes of `packed` that are sealed blocks of `ns`. Their slots go to `out` (when given, at
   * least `count` long; entries past the hits are scratch), and each hit moves to the front of its LRU list.
   */
  prefix(ns: number, packed: Uint8Array, hashLen: number, count: number, out?: Int32Array): number;
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
    cls?: BlockClass,
  ): number;
  /** Reserves `shard` of `slot` for `page` (copy about to run). */
  assign(slot: number, shard: number, page: number): void;
  /** Undoes `assign` after a failed copy (the checksum goes too); returns the page to free. Drops an empty slot. */
  unassign(slot: number, shard: number): number;
  /** Marks a shard's page written (its copy finished); returns true when that sealed the block. */
  markShardWritten(slot: number, shard: number): boolean;
  /** The pool offset of a shard's page, NaN when none is assigned. */
  page(slot: number, shard: number): number;
  /**
   * Every shard's page of the first `count` slots (block-major, slots of any shape) into `pages`, with its (lo, hi)
   * checksum in `sums` where known (`known[k]` = 1; else 0 and 0, 0). Returns the number of pages.
   */
  pagesOf(slots: Int32Array, count: number, pages: Float64Array, sums: Uint32Array, known: Uint8Array): number;
  /** Whether the checksum of a shard's page is known (setChecksum ran since the page was assigned). */
  hasChecksum(slot: number, shard: number): boolean;
  /** Records the checksum of a shard's page (low and high 32 bits). */
  setChecksum(slot: number, shard: number, lo: number, hi: number): void;
  /** Writes the (low, high) checksum of every shard of `slot` into `out` from `at`; returns the next index. */
  checksumsInto(slot: number, out: Uint32Array, at: number): number;
  shards(slot: number): number;
  /** A copy of the slot's hash bytes. */
  hash(slot: number): Buffer;
  ns(slot: number): number;
  pins(slot: number): number;
  pin(slot: number): void;
  /** Throws when the slot is not pinned. */
  unpin(slot: number): void;
  /** Pins the first `count` slots (all checked first: none is pinned when one is bad). */
  pinMany(slots: Int32Array, count: number): void;
  /**
   * Unpins the first `count` slots. `cold`: each goes back to the end eviction takes first (the last slot ends
   * up taken first), not to the front: for blocks pinned only to be copied elsewhere (the SSD tier's writes).
   */
  unpinMany(slots: Int32Array, count: number, cold?: boolean): void;
  /** The next eviction victim (least recently used; pulled copies first), or -1 when everything is pinned. */
  victim(): number;
  /**
   * Walks the unpinned slots in the order eviction takes them — at most `maxScan`, and only while the bytes walked
   * are under `windowBytes` — and puts into `out` the sealed ones whose (nsTags[ns], hash) is not a key of `keys` (a
   * namespace past `nsTags`, or tagged -1, has none there), until their bytes reach `maxBytes` or `out` is full.
   * Returns how many.
   */
  coldestNotIn(
    keys: KeyIds,
    nsTags: Int32Array,
    maxScan: number,
    windowBytes: number,
    maxBytes: number,
    out: Int32Array,
  ): number;
  /** Up to `max` unpinned slots in the order eviction would take them (the SSD tier writes these ahead of it). */
  coldest(max: number): Int32Array;
  /** Removes an unpinned slot; returns what it was and its pages, for the caller to free. */
  evict(slot: number): EvictedSlot;
  /** `evict` without allocating: the slot's pages go to `pagesOut` (room for its shards); returns their count. */
  evictInto(slot: number, pagesOut?: Float64Array): number;
  pageBytes(slot: number): number;
  /** Every sealed block of every namespace, packed per namespace and hash length (for re-advertising). */
  sealedHashes(): SealedHashes[];
  /** Pages, checksums and ranges of the first `count` slots (one namespace), in one call. */
  grantPages(slots: Int32Array, count: number): GrantPages;
  /**
   * Records sums[2k], sums[2k + 1] as the checksum of page pages[k] of the first `count` slots (numbered as
   * grantPages numbers them), and writes each into `out` (that grant's checksums) as well.
   */
  setChecksums(slots: Int32Array, count: number, pages: Int32Array, sums: Uint32Array, out: Uint32Array): void;
}

interface BlockIndexConstructor {
  new (initialCapacity?: number): BlockIndex;
}

/** A new, empty index with room for `initialCapacity` blocks before it grows. */
export function createBlockIndex(initialCapacity = 1024): BlockIndex {
  return new (binding().BlockIndex as BlockIndexConstructor)(initialCapacity);
}
