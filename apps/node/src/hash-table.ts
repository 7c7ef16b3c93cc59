// An open-addressing hash table from (tag, byte key) to a dense entry id: the node's block index keys it by
// (namespace id, block hash). Linear probing, backward-shift deletion (no tombstones), power-of-two slots kept
// at most 70% full. A slot is two int32s side by side, [32-bit hash, id + 1] (0 marks an empty slot), so a probe
// reads one cache line and growth and deletion never re-hash a key.
//
// Keys live in one growable Buffer arena indexed by entry id, `stride` bytes per record: int32 tag, int32 key
// length (-1 once freed), then the key bytes; the stride widens (records re-laid out) when a longer key arrives.
// Lookups hash and compare straight from the caller's buffer and offset: nothing is allocated per lookup, and
// there is no JS object per entry. Pure: no I/O.

import { tableHash, TABLE_HASH_SEED } from '@kvfabric/common';

const MAX_LOAD = 0.7;
const MIN_SLOTS = 16;
const HEADER = 8; // int32 tag, int32 length
const FREED = -1;

/** 32-bit hash of (tag, buf[off, off + len)): the shared byte hash, seeded with the tag. */
export function hashKey(tag: number, buf: Uint8Array, off: number, len: number): number {
  return tableHash(buf, off, len, Math.imul(tag ^ TABLE_HASH_SEED, 0x5bd1e995));
}

export class KeyTable {
  /** Live entries. */
  size = 0;
  /** Per slot: [hash, id + 1]. */
  private slots: Int32Array;
  private mask: number;
  private arena: Buffer;
  /** int32 view of `arena` (records start at multiples of 8). */
  private words: Int32Array;
  private stride: number;
  private idCap: number;
  /** Entry ids issued so far; ids below it are live or on the free stack. */
  private issued = 0;
  private freeIds: Int32Array;
  private freeTop = 0;
  /** findRun's scratch: each key's hash, then what its first reads saw. */
  private runHash = new Int32Array(64);
  private runSeen = new Int32Array(64);

  constructor(expected = 0, keyLen = 32) {
    let n = MIN_SLOTS;
    while (n * MAX_LOAD < expected) n *= 2;
    this.slots = new Int32Array(n * 2);
    this.mask = n - 1;
    this.idCap = Math.max(16, expected);
    this.stride = strideFor(keyLen);
    this.arena = Buffer.alloc(0);
    this.words = new Int32Array(0);
    this.allocArena(this.idCap, this.stride);
    this.freeIds = new Int32Array(this.idCap);
  }

  /** Entry ids are below this bound (for scans). */
  get idBound(): number {
    return this.issued;
  }

  /** Ids below this are addressable without the table growing its id space. */
  get idCapacity(): number {
    return this.idCap;
  }

  get slotCount(): number {
    return this.mask + 1;
  }

  /** The entry of (tag, buf[off, off + len)), or -1. */
  find(tag: number, buf: Uint8Array, off: number, len: number): number {
    return this.findHashed(hashKey(tag, buf, off, len), tag, buf, off, len);
  }

  /**
   * Looks up `count` keys of `len` bytes packed from buf[off]: the ids of the leading keys present go to
   * out[0..n), and n is returned (the first absent key ends the run). Done in passes so that the cache misses of
   * different keys overlap: hash every key and read its home slot, then read each candidate's record, then probe
   * and compare (by then mostly in cache). Keys after the first miss cost a hash and two reads each.
   */
  findRun(tag: number, buf: Uint8Array, off: number, len: number, count: number, out: Int32Array): number {
    if (this.runHash.length < count) {
      this.runHash = new Int32Array(Math.max(count, this.runHash.length * 2));
      this.runSeen = new Int32Array(this.runHash.length);
    }
    const { slots, mask, words, stride, runHash, runSeen } = this;
    for (let k = 0; k < count; k++) {
      const h = hashKey(tag, buf, off + k * len, len);
      runHash[k] = h;
      runSeen[k] = slots[(h & mask) * 2 + 1]!;
    }
    for (let k = 0; k < count; k++) {
      const v = runSeen[k]!;
      if (v !== 0) runSeen[k] = words[((v - 1) * stride) >> 2]!;
    }
    let n = 0;
    for (; n < count; n++) {
      const id = this.findHashed(runHash[n]!, tag, buf, off + n * len, len);
      if (id < 0) break;
      out[n] = id;
    }
    return n;
  }

  private findHashed(h: number, tag: number, buf: Uint8Array, off: number, len: number): number {
    const { slots, mask } = this;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const v = slots[s * 2 + 1]!;
      if (v === 0) return -1;
      if (slots[s * 2] === h && this.matches(v - 1, tag, buf, off, len)) return v - 1;
    }
  }

  /** Adds (tag, key) and returns its new id (freed ids are reused, most recent first). Throws when present. */
  add(tag: number, buf: Uint8Array, off: number, len: number): number {
    if (this.size + 1 > (this.mask + 1) * MAX_LOAD) this.growSlots();
    if (HEADER + len > this.stride) this.allocArena(this.idCap, strideFor(len));
    const h = hashKey(tag, buf, off, len);
    const { slots, mask } = this;
    let s = h & mask;
    for (; ; s = (s + 1) & mask) {
      const v = slots[s * 2 + 1]!;
      if (v === 0) break;
      if (slots[s * 2] === h && this.matches(v - 1, tag, buf, off, len))
        throw new Error(`key-table: key already present as entry ${v - 1}`);
    }
    let id: number;
    if (this.freeTop > 0) id = this.freeIds[--this.freeTop]!;
    else {
      if (this.issued === this.idCap) this.allocArena(this.idCap * 2, this.stride);
      id = this.issued++;
    }
    const base = id * this.stride;
    this.words[base >> 2] = tag;
    this.words[(base >> 2) + 1] = len;
    this.arena.set(buf.subarray(off, off + len), base + HEADER);
    slots[s * 2] = h;
    slots[s * 2 + 1] = id + 1;
    this.size++;
    return id;
  }

  /** Removes a live entry and frees its id. */
  remove(id: number): void {
    if (!this.isLive(id)) throw new Error(`key-table: entry ${id} is not live`);
    const base = id * this.stride;
    const tag = this.words[base >> 2]!;
    const len = this.words[(base >> 2) + 1]!;
    const h = hashKey(tag, this.arena, base + HEADER, len);
    const { slots, mask } = this;
    let s = h & mask;
    while (slots[s * 2 + 1] !== id + 1) {
      if (slots[s * 2 + 1] === 0) throw new Error(`key-table: entry ${id} not in table`);
      s = (s + 1) & mask;
    }
    // backward shift: pull later members of the probe run into the hole unless their home lies in (hole, j]
    for (let j = (s + 1) & mask; slots[j * 2 + 1] !== 0; j = (j + 1) & mask) {
      const home = slots[j * 2]! & mask;
      const stays = s <= j ? s < home && home <= j : s < home || home <= j;
      if (stays) continue;
      slots[s * 2] = slots[j * 2]!;
      slots[s * 2 + 1] = slots[j * 2 + 1]!;
      s = j;
    }
    slots[s * 2] = 0;
    slots[s * 2 + 1] = 0;
    this.words[(base >> 2) + 1] = FREED;
    this.freeIds[this.freeTop++] = id;
    this.size--;
  }

  isLive(id: number): boolean {
    return id >= 0 && id < this.issued && this.words[((id * this.stride) >> 2) + 1] !== FREED;
  }

  tag(id: number): number {
    return this.words[(id * this.stride) >> 2]!;
  }

  keyLength(id: number): number {
    return this.words[((id * this.stride) >> 2) + 1]!;
  }

  /** Copies a live entry's key bytes to target[offset...]; returns the key length. */
  copyKey(id: number, target: Uint8Array, offset: number): number {
    const base = id * this.stride + HEADER;
    const len = this.keyLength(id);
    target.set(this.arena.subarray(base, base + len), offset);
    return len;
  }

  /** A copy of a live entry's key bytes. */
  key(id: number): Buffer {
    const base = id * this.stride + HEADER;
    return Buffer.from(this.arena.subarray(base, base + this.keyLength(id)));
  }

  bytes(): number {
    return this.slots.byteLength + this.arena.byteLength + this.freeIds.byteLength;
  }

  // --- internals -------------------------------------------------------------------------------------

  private matches(id: number, tag: number, buf: Uint8Array, off: number, len: number): boolean {
    const base = id * this.stride;
    const w = base >> 2;
    if (this.words[w] !== tag || this.words[w + 1] !== len) return false;
    const a = this.arena;
    const k = base + HEADER;
    for (let i = 0; i < len; i++) if (a[k + i] !== buf[off + i]) return false;
    return true;
  }

  private growSlots(): void {
    const old = this.slots;
    const n = (this.mask + 1) * 2;
    const slots = new Int32Array(n * 2);
    const mask = n - 1;
    for (let i = 0; i < old.length; i += 2) {
      const v = old[i + 1]!;
      if (v === 0) continue;
      const h = old[i]!;
      let s = h & mask;
      while (slots[s * 2 + 1] !== 0) s = (s + 1) & mask;
      slots[s * 2] = h;
      slots[s * 2 + 1] = v;
    }
    this.slots = slots;
    this.mask = mask;
  }

  /** (Re)allocates the arena for `cap` ids of `stride` bytes, moving every issued record. */
  private allocArena(cap: number, stride: number): void {
    const ab = new ArrayBuffer(cap * stride);
    const arena = Buffer.from(ab);
    const old = this.arena;
    const oldStride = this.stride;
    if (stride === oldStride) arena.set(old.subarray(0, this.issued * stride));
    else
      for (let id = 0; id < this.issued; id++) old.copy(arena, id * stride, id * oldStride, id * oldStride + oldStride);
    this.arena = arena;
    this.words = new Int32Array(ab);
    this.stride = stride;
    if (cap !== this.idCap) {
      const free = new Int32Array(cap);
      free.set(this.freeIds.subarray(0, this.freeTop));
      this.freeIds = free;
      this.idCap = cap;
    }
  }
}

function strideFor(keyLen: number): number {
  return HEADER + ((Math.max(keyLen, 1) + 7) & ~7);
}
