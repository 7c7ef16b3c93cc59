// The block hashes of one (namespace, hash length): an open-addressing hash table (linear probing, backward-shift
// deletion, no tombstones) over dense entry ids. Per entry it stores the hash bytes in a chunked arena and the head
// of the entry's owner list; per slot the entry id + 1 and the key's 32-bit hash, side by side in one array (one
// cache line and one page per probe; probing, growth and deletion never re-read the arena except to confirm a
// match). No JS object per block.
import { tableHash } from '@kvfabric/common';
import { ChunkedBytes, ChunkedU32 } from './chunked.js';

const MAX_LOAD = 0.75;
const MIN_SLOTS = 16;

export class BlockTable {
  readonly hashLen: number;
  /** Hash bytes of entry e at record e. */
  readonly keys: ChunkedBytes;
  /** Owner list head of entry e (owner record + 1); 0 marks a free entry id. */
  readonly heads = new ChunkedU32();
  /** Live entries (distinct hashes). */
  size = 0;
  /** (hash, owner) pairs held in this table; maintained by the store. */
  owners = 0;
  /** Slot s is slots[2s] = entry id + 1 (0: free) and slots[2s + 1] = the key's 32-bit hash (int32, as tableHash). */
  private slots: Int32Array;
  /** Slot count - 1. */
  private mask: number;
  /** Entry ids issued so far; ids below it are live or on the free list. */
  private issued = 0;
  private readonly freeIds: number[] = [];

  constructor(hashLen: number, expected = 0) {
    this.hashLen = hashLen;
    this.keys = new ChunkedBytes(hashLen);
    let n = MIN_SLOTS;
    while (n * MAX_LOAD < expected) n *= 2;
    this.slots = new Int32Array(2 * n);
    this.mask = n - 1;
  }

  /** Entry ids are below this bound (for scans). */
  get idBound(): number {
    return this.issued;
  }

  get slotCount(): number {
    return this.slots.length / 2;
  }

  /** Bytes the slot array of a new table holding `entries` entries takes. */
  static slotBytesFor(entries: number): number {
    let n = MIN_SLOTS;
    while (n * MAX_LOAD < entries) n *= 2;
    return n * 8;
  }

  /** Bytes the slot array grows by when `entries` more entries are added (its doublings). */
  slotBytesToAdd(entries: number): number {
    let n = this.slotCount;
    while (this.size + entries > n * MAX_LOAD) n *= 2;
    return (n - this.slotCount) * 8;
  }

  /** The entry of the hash at buf[off, off + hashLen), or -1. */
  find(buf: Uint8Array, off: number): number {
    const h = tableHash(buf, off, this.hashLen);
    const { slots, mask, keys } = this;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const v = slots[2 * s]!;
      if (v === 0) return -1;
      if (slots[2 * s + 1] === h && keys.equals(v - 1, buf, off)) return v - 1;
    }
  }

  /**
   * `find`, trying entry `guess` first: when it is live and holds exactly this hash it is the answer (a live hash has
   * one entry), found without hashing or probing. Prefix chains are usually inserted in order, so hash i + 1 of a
   * query tends to sit at the entry after hash i's: a sequential read of the key arena instead of a cache (and TLB)
   * miss in the slot array, which is the bulk of a prefix query's cost. Any other guess falls back to `find`.
   * `words`, when given, holds buf's bytes as int32 words (an aligned copy; hashLen a multiple of 4).
   */
  findNear(buf: Uint8Array, off: number, guess: number, words?: Int32Array): number {
    if (guess >= 0 && guess < this.issued && this.heads.get(guess) !== 0) {
      // words: an int32 view of buf's bytes (hashLen a multiple of 4), compared a word at a time
      const same = words ? this.keys.equalsWords(guess, words, off >>> 2) : this.keys.equals(guess, buf, off);
      if (same) return guess;
    }
    return this.find(buf, off);
  }

  /**
   * The entry of the hash, adding it when absent. A new entry has head 0: the caller links an owner at once
   * (an entry without owners must not outlive the call; use `delete`).
   */
  findOrAdd(buf: Uint8Array, off: number): number {
    if (this.size + 1 > this.slotCount * MAX_LOAD) this.grow();
    const h = tableHash(buf, off, this.hashLen);
    const { slots, mask, keys } = this;
    let s = h & mask;
    for (; ; s = (s + 1) & mask) {
      const v = slots[2 * s]!;
      if (v === 0) break;
      if (slots[2 * s + 1] === h && keys.equals(v - 1, buf, off)) return v - 1;
    }
    const e = this.freeIds.length > 0 ? this.freeIds.pop()! : this.issued++;
    this.keys.ensure(e + 1);
    this.heads.ensure(e + 1);
    this.keys.write(e, buf, off);
    this.heads.set(e, 0);
    slots[2 * s] = e + 1;
    slots[2 * s + 1] = h;
    this.size++;
    return e;
  }

  /** Removes entry e (its owner list must already be empty) and frees its id. */
  delete(e: number): void {
    const [chunk, off] = this.keys.locate(e);
    const h = tableHash(chunk, off, this.hashLen);
    const { slots, mask } = this;
    let s = h & mask;
    while (slots[2 * s] !== e + 1) {
      if (slots[2 * s] === 0) throw new Error(`block-table: entry ${e} not in table`);
      s = (s + 1) & mask;
    }
    // backward-shift deletion: pull later members of the probe run into the hole when their home allows it
    for (let j = (s + 1) & mask; slots[2 * j] !== 0; j = (j + 1) & mask) {
      const home = slots[2 * j + 1]! & mask;
      const between = s <= j ? s < home && home <= j : s < home || home <= j;
      if (between) continue;
      slots[2 * s] = slots[2 * j]!;
      slots[2 * s + 1] = slots[2 * j + 1]!;
      s = j;
    }
    slots[2 * s] = 0;
    slots[2 * s + 1] = 0;
    this.heads.set(e, 0);
    this.freeIds.push(e);
    this.size--;
  }

  /** A copy of entry e's hash bytes. */
  key(e: number): Buffer {
    return this.keys.read(e);
  }

  bytes(): number {
    return this.slots.byteLength + this.keys.bytes() + this.heads.bytes() + this.freeIds.length * 8;
  }

  private grow(): void {
    const old = this.slots;
    const n = old.length; // slots after growth: twice the old count, 2 words each
    const slots = new Int32Array(2 * n);
    const mask = n - 1;
    for (let i = 0; i < old.length; i += 2) {
      const v = old[i]!;
      if (v === 0) continue;
      const h = old[i + 1]!;
      let s = h & mask;
      while (slots[2 * s] !== 0) s = (s + 1) & mask;
      slots[2 * s] = v;
      slots[2 * s + 1] = h;
    }
    this.slots = slots;
    this.mask = mask;
  }
}
