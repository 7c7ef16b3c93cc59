// The block hashes of one (namespace, hash length): an open-addressing hash table (linear probing, backward-shift
// deletion, no tombstones) over dense entry ids. Per entry it stores the hash bytes in a chunked arena and the head
// of the entry's owner list; per slot the entry id + 1 and the key's 32-bit hash (so probing, growth and deletion
// never re-read the arena except to confirm a match). No JS object per block.
import { ChunkedBytes, ChunkedU32 } from './chunked.js';
import { hashBytes } from './hash.js';

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
  private slots: Uint32Array;
  private slotHash: Uint32Array;
  private mask: number;
  /** Entry ids issued so far; ids below it are live or on the free list. */
  private issued = 0;
  private readonly freeIds: number[] = [];

  constructor(hashLen: number, expected = 0) {
    this.hashLen = hashLen;
    this.keys = new ChunkedBytes(hashLen);
    let n = MIN_SLOTS;
    while (n * MAX_LOAD < expected) n *= 2;
    this.slots = new Uint32Array(n);
    this.slotHash = new Uint32Array(n);
    this.mask = n - 1;
  }

  /** Entry ids are below this bound (for scans). */
  get idBound(): number {
    return this.issued;
  }

  get slotCount(): number {
    return this.slots.length;
  }

  /** The entry of the hash at buf[off, off + hashLen), or -1. */
  find(buf: Uint8Array, off: number): number {
    const h = hashBytes(buf, off, this.hashLen);
    const { slots, slotHash, mask, keys } = this;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const v = slots[s]!;
      if (v === 0) return -1;
      if (slotHash[s] === h && keys.equals(v - 1, buf, off)) return v - 1;
    }
  }

  /**
   * The entry of the hash, adding it when absent. A new entry has head 0: the caller links an owner at once
   * (an entry without owners must not outlive the call; use `delete`).
   */
  findOrAdd(buf: Uint8Array, off: number): number {
    if ((this.size + 1) > this.slots.length * MAX_LOAD) this.grow();
    const h = hashBytes(buf, off, this.hashLen);
    const { slots, slotHash, mask, keys } = this;
    let s = h & mask;
    for (; ; s = (s + 1) & mask) {
      const v = slots[s]!;
      if (v === 0) break;
      if (slotHash[s] === h && keys.equals(v - 1, buf, off)) return v - 1;
    }
    const e = this.freeIds.length > 0 ? this.freeIds.pop()! : this.issued++;
    this.keys.ensure(e + 1);
    this.heads.ensure(e + 1);
    this.keys.write(e, buf, off);
    this.heads.set(e, 0);
    slots[s] = e + 1;
    slotHash[s] = h;
    this.size++;
    return e;
  }

  /** Removes entry e (its owner list must already be empty) and frees its id. */
  delete(e: number): void {
    const [chunk, off] = this.keys.locate(e);
    const h = hashBytes(chunk, off, this.hashLen);
    const { slots, slotHash, mask } = this;
    let s = h & mask;
    while (slots[s] !== e + 1) {
      if (slots[s] === 0) throw new Error(`block-table: entry ${e} not in table`);
      s = (s + 1) & mask;
    }
    // backward-shift deletion: pull later members of the probe run into the hole when their home allows it
    for (let j = (s + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const home = slotHash[j]! & mask;
      const between = s <= j ? s < home && home <= j : s < home || home <= j;
      if (between) continue;
      slots[s] = slots[j]!;
      slotHash[s] = slotHash[j]!;
      s = j;
    }
    slots[s] = 0;
    slotHash[s] = 0;
    this.heads.set(e, 0);
    this.freeIds.push(e);
    this.size--;
  }

  /** A copy of entry e's hash bytes. */
  key(e: number): Buffer {
    return this.keys.read(e);
  }

  bytes(): number {
    return this.slots.byteLength + this.slotHash.byteLength + this.keys.bytes() + this.heads.bytes() + this.freeIds.length * 8;
  }

  private grow(): void {
    const oldSlots = this.slots;
    const oldHash = this.slotHash;
    const n = oldSlots.length * 2;
    const slots = new Uint32Array(n);
    const slotHash = new Uint32Array(n);
    const mask = n - 1;
    for (let i = 0; i < oldSlots.length; i++) {
      const v = oldSlots[i]!;
      if (v === 0) continue;
      const h = oldHash[i]!;
      let s = h & mask;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = v;
      slotHash[s] = h;
    }
    this.slots = slots;
    this.slotHash = slotHash;
    this.mask = mask;
  }
}
