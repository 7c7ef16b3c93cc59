// The node's block index: content-addressed per namespace, one slot per block. Per-block fields live in
// typed arrays indexed by slot; LRU order is two intrusive doubly linked lists (pulled copies, local copies)
// in Int32Arrays, so a 64-hash prefix lookup allocates nothing but the 64 key strings.
//
// A slot is in an LRU list exactly when it is unpinned; pinned slots (leases, grants, copies in flight) are
// never eviction candidates. Pure: no gRPC, no native code. Pages are plain numbers (pool offsets).

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

export class BlockIndex {
  private readonly maps: Map<string, number>[] = [];
  private capacity: number;
  private nsOf: Int32Array;
  private shardsOf: Uint16Array;
  private landedOf: Uint16Array;
  private sealedOf: Uint8Array;
  private classOf: Uint8Array;
  private pinsOf: Int32Array;
  private prev: Int32Array;
  private next: Int32Array;
  private listOf: Int8Array; // -1: in no list
  private pageBytesOf: Float64Array;
  private keys: (string | undefined)[] = [];
  /** Per slot: [page offset of each shard (NaN = none)..., landed flag of each shard...]. */
  private pages: (Float64Array | undefined)[] = [];
  private readonly heads = new Int32Array(LISTS).fill(NIL);
  private readonly tails = new Int32Array(LISTS).fill(NIL);
  private freeSlots: Int32Array;
  private freeTop = 0;
  private used = 0;
  private counts = { sealed: 0, partial: 0, pinned: 0, pageBytes: 0 };

  constructor(initialCapacity = 1024) {
    this.capacity = Math.max(16, initialCapacity);
    const c = this.capacity;
    this.nsOf = new Int32Array(c);
    this.shardsOf = new Uint16Array(c);
    this.landedOf = new Uint16Array(c);
    this.sealedOf = new Uint8Array(c);
    this.classOf = new Uint8Array(c);
    this.pinsOf = new Int32Array(c);
    this.prev = new Int32Array(c).fill(NIL);
    this.next = new Int32Array(c).fill(NIL);
    this.listOf = new Int8Array(c).fill(-1);
    this.pageBytesOf = new Float64Array(c);
    this.freeSlots = new Int32Array(c);
  }

  stats(): IndexStats {
    return { ...this.counts };
  }

  /** The slot of (namespace, hash key), sealed or not, or -1. */
  lookup(ns: number, key: string): number {
    return this.maps[ns]?.get(key) ?? NIL;
  }

  isSealed(slot: number): boolean {
    return this.sealedOf[slot] === 1;
  }

  /**
   * Number of leading hashes of `packed` that are sealed blocks of `ns`. Their slots go to `out` (when given,
   * sized for `count`), and each hit is moved to the front of its LRU list.
   */
  prefix(ns: number, packed: Buffer, hashLen: number, count: number, out?: Int32Array): number {
    const map = this.maps[ns];
    if (!map) return 0;
    let n = 0;
    for (; n < count; n++) {
      const slot = map.get(packed.toString('latin1', n * hashLen, (n + 1) * hashLen));
      if (slot === undefined || this.sealedOf[slot] !== 1) break;
      if (out) out[n] = slot;
      this.touch(slot);
    }
    return n;
  }

  /**
   * The slot that a save of `shard` of (ns, key) writes into: created (partial) when missing. Returns -1 when
   * nothing is to be written (sealed already, or that shard's page is already assigned).
   */
  slotForShard(ns: number, key: string, shards: number, shard: number, pageBytes: number, cls = BlockClass.Local): number {
    let map = this.maps[ns];
    if (!map) {
      map = new Map();
      this.maps[ns] = map;
    }
    const existing = map.get(key);
    if (existing !== undefined) {
      if (this.sealedOf[existing] === 1) return NIL;
      const p = this.pages[existing]!;
      return Number.isNaN(p[shard]!) ? existing : NIL;
    }
    const slot = this.newSlot();
    this.nsOf[slot] = ns;
    this.shardsOf[slot] = shards;
    this.landedOf[slot] = 0;
    this.sealedOf[slot] = 0;
    this.classOf[slot] = cls;
    this.pinsOf[slot] = 0;
    this.pageBytesOf[slot] = pageBytes;
    this.keys[slot] = key;
    const p = new Float64Array(shards * 2);
    p.fill(NaN, 0, shards);
    this.pages[slot] = p;
    map.set(key, slot);
    this.counts.partial++;
    this.listPushFront(slot);
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
    this.counts.pageBytes -= this.pageBytesOf[slot]!;
    if (this.landedOf[slot] === 0 && !this.anyAssigned(slot) && this.pinsOf[slot] === 0) this.drop(slot);
    return page;
  }

  /** Marks a shard's page written; returns true when that sealed the block. */
  land(slot: number, shard: number): boolean {
    const p = this.pages[slot]!;
    const shards = this.shardsOf[slot]!;
    if (p[shards + shard] === 1) return false;
    p[shards + shard] = 1;
    this.landedOf[slot]!++;
    if (this.landedOf[slot] === shards && this.sealedOf[slot] === 0) {
      this.sealedOf[slot] = 1;
      this.counts.partial--;
      this.counts.sealed++;
      return true;
    }
    return false;
  }

  page(slot: number, shard: number): number {
    return this.pages[slot]![shard]!;
  }

  shards(slot: number): number {
    return this.shardsOf[slot]!;
  }

  key(slot: number): string {
    return this.keys[slot]!;
  }

  ns(slot: number): number {
    return this.nsOf[slot]!;
  }

  pins(slot: number): number {
    return this.pinsOf[slot]!;
  }

  pin(slot: number): void {
    if (this.pinsOf[slot]!++ === 0) {
      this.listRemove(slot);
      this.counts.pinned++;
    }
  }

  unpin(slot: number): void {
    if (this.pinsOf[slot]! <= 0) throw new Error(`block index: unpin of unpinned slot ${slot}`);
    if (--this.pinsOf[slot]! === 0) {
      this.counts.pinned--;
      if (this.keys[slot] === undefined) return;
      if (this.landedOf[slot] === 0 && !this.anyAssigned(slot)) this.drop(slot);
      else this.listPushFront(slot);
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
    if (this.tails[BlockClass.Pulled] !== NIL) return this.tails[BlockClass.Pulled]!;
    return this.tails[BlockClass.Local]!;
  }

  /**
   * Removes an unpinned slot; returns its pages (assigned ones), for the caller to free, and whether it was
   * sealed (then the caller tells the metaserver it is gone).
   */
  evict(slot: number): { ns: number; key: string; sealed: boolean; pages: number[]; pageBytes: number } {
    if (this.pinsOf[slot] !== 0) throw new Error(`block index: evict of pinned slot ${slot}`);
    const p = this.pages[slot]!;
    const shards = this.shardsOf[slot]!;
    const pages: number[] = [];
    for (let s = 0; s < shards; s++) if (!Number.isNaN(p[s]!)) pages.push(p[s]!);
    const out = { ns: this.nsOf[slot]!, key: this.keys[slot]!, sealed: this.sealedOf[slot] === 1, pages, pageBytes: this.pageBytesOf[slot]! };
    this.counts.pageBytes -= pages.length * out.pageBytes;
    this.drop(slot);
    return out;
  }

  /** Every sealed block of every namespace (for re-advertising). */
  *sealedKeys(): Generator<{ ns: number; key: string }> {
    for (let ns = 0; ns < this.maps.length; ns++) {
      const map = this.maps[ns];
      if (!map) continue;
      for (const [key, slot] of map) if (this.sealedOf[slot] === 1) yield { ns, key };
    }
  }

  // --- internals -------------------------------------------------------------------------------------

  private anyAssigned(slot: number): boolean {
    const p = this.pages[slot]!;
    for (let s = 0; s < this.shardsOf[slot]!; s++) if (!Number.isNaN(p[s]!)) return true;
    return false;
  }

  private touch(slot: number): void {
    if (this.listOf[slot] === -1) return;
    const list = this.listOf[slot]!;
    if (this.heads[list] === slot) return;
    this.listRemove(slot);
    this.listPushFront(slot);
  }

  private drop(slot: number): void {
    this.listRemove(slot);
    if (this.sealedOf[slot] === 1) this.counts.sealed--;
    else this.counts.partial--;
    this.maps[this.nsOf[slot]!]!.delete(this.keys[slot]!);
    this.keys[slot] = undefined;
    this.pages[slot] = undefined;
    this.sealedOf[slot] = 0;
    this.freeSlots[this.freeTop++] = slot;
  }

  private newSlot(): number {
    if (this.freeTop > 0) return this.freeSlots[--this.freeTop]!;
    if (this.used === this.capacity) this.grow();
    return this.used++;
  }

  private grow(): void {
    const c = this.capacity * 2;
    const g = <T extends Int32Array | Uint16Array | Uint8Array | Int8Array | Float64Array>(a: T, fill?: number): T => {
      const b = new (a.constructor as new (n: number) => T)(c);
      if (fill !== undefined) b.fill(fill);
      b.set(a);
      return b;
    };
    this.nsOf = g(this.nsOf);
    this.shardsOf = g(this.shardsOf);
    this.landedOf = g(this.landedOf);
    this.sealedOf = g(this.sealedOf);
    this.classOf = g(this.classOf);
    this.pinsOf = g(this.pinsOf);
    this.prev = g(this.prev, NIL);
    this.next = g(this.next, NIL);
    this.listOf = g(this.listOf, -1);
    this.pageBytesOf = g(this.pageBytesOf);
    this.freeSlots = g(this.freeSlots);
    this.capacity = c;
  }

  private listPushFront(slot: number): void {
    const list = this.classOf[slot]!;
    const head = this.heads[list]!;
    this.prev[slot] = NIL;
    this.next[slot] = head;
    if (head !== NIL) this.prev[head] = slot;
    else this.tails[list] = slot;
    this.heads[list] = slot;
    this.listOf[slot] = list;
  }

  private listRemove(slot: number): void {
    const list = this.listOf[slot]!;
    if (list === -1) return;
    const p = this.prev[slot]!;
    const n = this.next[slot]!;
    if (p !== NIL) this.next[p] = n;
    else this.heads[list] = n;
    if (n !== NIL) this.prev[n] = p;
    else this.tails[list] = p;
    this.prev[slot] = NIL;
    this.next[slot] = NIL;
    this.listOf[slot] = -1;
  }
}
