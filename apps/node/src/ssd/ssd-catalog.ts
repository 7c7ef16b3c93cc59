// What the SSD tier holds, with no JavaScript object per block: each block on SSD is a small dense id (KeyIds keeps
// its (namespace, hash) key in native memory), and what the tier knows of it lives in typed arrays indexed by that
// id — drive, extent offset, a kind (an index into this catalog's table of distinct (namespace, layout) pairs),
// pins, the per-shard content sums (a fixed stride per id) and a doubly linked LRU order per drive (prev / next).
// A packed run of hashes is looked up or added in one call; a block's hash is read back from KeyIds when needed
// (advertising, journal records). Each listing of an id gets a new stamp, so a caller holding an id across an await
// can tell whether it still names the entry it looked up.
import { createKeyIds, ssdSlotBytes, type KeyIds } from '@kvfabric/native';
import type { NamespaceLayout } from '../namespaces.js';
import { encodeRecords, layoutShards, type SsdPut } from './journal-codec.js';

/** A distinct (namespace, layout) pair of the catalog. */
export interface SsdKind {
  readonly namespace: string;
  readonly layout: NamespaceLayout;
  /** Pages per block. */
  readonly shards: number;
  /** Bytes one block takes on SSD. */
  readonly extentBytes: number;
}

/** Bytes one block of `layout` takes on SSD: one 4096-aligned slot per shard page, back to back. */
export function extentBytes(layout: NamespaceLayout): number {
  return layoutShards(layout) * ssdSlotBytes(layout.segments * layout.segmentBytes);
}

export function sameLayout(a: NamespaceLayout, b: NamespaceLayout): boolean {
  return (
    a.tpSize === b.tpSize &&
    a.replicated === b.replicated &&
    a.segments === b.segments &&
    a.segmentBytes === b.segmentBytes
  );
}

export function catalogKey(namespace: string, hash: Uint8Array): string {
  return `${namespace}\0${Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('latin1')}`;
}

/** Called with the extent of an entry that an add replaced (its bytes are free again). */
export type OnReplaced = (drive: number, offset: number, bytes: number) => void;

const NONE = -1;

export class SsdCatalog {
  private readonly keys: KeyIds = createKeyIds();
  /** Namespace name → the tag its keys are held under. */
  private readonly tags = new Map<string, number>();
  private readonly kinds: (SsdKind & { tag: number })[] = [];
  private readonly kindIds = new Map<string, number>();
  /** Per id: its drive (-1: not listed), offset, kind, hash length, pins, stamp, LRU neighbours, sums. */
  private drive = new Int32Array(0);
  private offset = new Float64Array(0);
  private kind = new Int32Array(0);
  private hashLen = new Uint8Array(0);
  private pins = new Int32Array(0);
  private stamps = new Float64Array(0);
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  /** (lo, hi) per shard page, `stride` numbers per id. */
  private sums = new Uint32Array(0);
  private stride = 2;
  private stamp = 0;
  /** Per drive: oldest and newest id, entries, bytes. */
  private readonly head: Int32Array;
  private readonly tail: Int32Array;
  private readonly counts: number[];
  private readonly bytes: number[];
  /** One id, for single lookups and copies. */
  private readonly scratch = new Int32Array(1);

  constructor(drives: number) {
    this.head = new Int32Array(drives).fill(NONE);
    this.tail = new Int32Array(drives).fill(NONE);
    this.counts = new Array<number>(drives).fill(0);
    this.bytes = new Array<number>(drives).fill(0);
  }

  get size(): number {
    return this.keys.size();
  }

  /** Bytes of the extents on `drive`. */
  usedBytes(drive: number): number {
    return this.bytes[drive] ?? 0;
  }

  /** Entries on `drive`. */
  count(drive: number): number {
    return this.counts[drive] ?? 0;
  }

  /** The kind of (namespace, layout), added when new. */
  kindOf(namespace: string, layout: NamespaceLayout): number {
    const { tpSize, replicated, segments, segmentBytes } = layout;
    const key = `${tpSize}:${replicated ? 1 : 0}:${segments}:${segmentBytes}:${namespace}`;
    let k = this.kindIds.get(key);
    if (k === undefined) {
      k = this.kinds.length;
      const l = { tpSize, replicated, segments, segmentBytes };
      const shards = layoutShards(l);
      this.kinds.push({ namespace, layout: l, shards, extentBytes: extentBytes(l), tag: this.tagOf(namespace) });
      this.kindIds.set(key, k);
      if (2 * shards > this.stride) this.restride(2 * shards);
    }
    return k;
  }

  /**
   * The native key table and, for each namespace of `namespaces` (by its id), the tag its keys are held under (-1:
   * nothing of it on SSD): for native scans that skip what the SSD holds (BlockIndex.coldestNotIn).
   */
  nativeKeys(namespaces: readonly { id: number; name: string }[]): { keys: KeyIds; tags: Int32Array } {
    const tags = new Int32Array(namespaces.reduce((n, ns) => Math.max(n, ns.id + 1), 0)).fill(NONE);
    for (const ns of namespaces) tags[ns.id] = this.tags.get(ns.name) ?? NONE;
    return { keys: this.keys, tags };
  }

  /** The id of (namespace, hash)'s entry, or -1. */
  find(namespace: string, hash: Uint8Array): number {
    const tag = this.tags.get(namespace);
    if (tag === undefined || this.keys.find(tag, hash, hash.length, 0, 1, this.scratch) === 0) return NONE;
    return this.scratch[0]!;
  }

  /**
   * Looks up every hash of `packed` (`hashLen` bytes each): out[k] is the id of hash k's entry, or -1. Returns how
   * many are on SSD.
   */
  findMany(namespace: string, packed: Uint8Array, hashLen: number, out: Int32Array): number {
    const count = packed.length / hashLen;
    const tag = this.tags.get(namespace);
    if (tag === undefined) {
      out.fill(NONE, 0, count);
      return 0;
    }
    return this.keys.find(tag, packed, hashLen, 0, count, out);
  }

  /**
   * Lists `count` blocks of `kind` on `drive`, each the most recently used in turn: block k is hash k of `packed` at
   * offsets[k], its sums at checksums[2 * shards * k, ...). An entry for the same block is replaced (`replaced` hears
   * its extent). Returns the ids, in the order of the blocks.
   */
  addMany(
    kind: number,
    packed: Uint8Array,
    hashLen: number,
    count: number,
    drive: number,
    offsets: Float64Array,
    checksums: Uint32Array,
    replaced?: OnReplaced,
  ): Int32Array {
    const k = this.kinds[kind]!;
    const ids = new Int32Array(count);
    this.keys.intern(k.tag, packed, hashLen, 0, count, ids);
    const per = 2 * k.shards;
    for (let b = 0; b < count; b++) {
      const id = ids[b]!;
      this.ensure(id + 1);
      if (this.drive[id]! >= 0) {
        const [d, off] = [this.drive[id]!, this.offset[id]!];
        this.unlist(id);
        replaced?.(d, off, this.kinds[this.kind[id]!]!.extentBytes);
      }
      this.drive[id] = drive;
      this.offset[id] = offsets[b]!;
      this.kind[id] = kind;
      this.hashLen[id] = hashLen;
      this.pins[id] = 0;
      this.stamps[id] = ++this.stamp;
      this.sums.set(checksums.subarray(b * per, (b + 1) * per), id * this.stride);
      this.link(id);
      this.counts[drive]!++;
      this.bytes[drive]! += k.extentBytes;
    }
    return ids;
  }

  /** Whether `id` is listed (and, given `stamp`, is still the listing that had it). */
  listed(id: number, stamp?: number): boolean {
    return (
      id >= 0 && id < this.drive.length && this.drive[id]! >= 0 && (stamp === undefined || this.stamps[id] === stamp)
    );
  }

  /** Takes an entry out (its key goes); false when it was not listed (or `stamp` names an earlier listing). */
  remove(id: number, stamp?: number): boolean {
    if (!this.listed(id, stamp)) return false;
    this.unlist(id);
    this.keys.remove(id);
    return true;
  }

  /** Most recently used now. */
  touch(id: number): void {
    if (!this.listed(id)) return;
    this.unlink(id);
    this.link(id);
  }

  pin(id: number): void {
    this.pins[id]!++;
  }

  /** Undoes `pin`, unless the entry of that listing is gone. */
  unpin(id: number, stamp: number): void {
    if (this.listed(id, stamp)) this.pins[id]!--;
  }

  /** The least recently used unpinned entry of `drive`, or -1. */
  victim(drive: number): number {
    for (let id = this.head[drive]!; id !== NONE; id = this.next[id]!) if (this.pins[id] === 0) return id;
    return NONE;
  }

  /** The ids on `drive`, oldest first (a copy: for taking a drive out of service, and for compaction). */
  ids(drive: number): Int32Array {
    const out = new Int32Array(this.count(drive));
    let n = 0;
    for (let id = this.head[drive]!; id !== NONE; id = this.next[id]!) out[n++] = id;
    return out;
  }

  driveOf(id: number): number {
    return this.drive[id]!;
  }

  offsetOf(id: number): number {
    return this.offset[id]!;
  }

  kindOfId(id: number): SsdKind {
    return this.kinds[this.kind[id]!]!;
  }

  stampOf(id: number): number {
    return this.stamps[id]!;
  }

  pinsOf(id: number): number {
    return this.pins[id]!;
  }

  /** The entry's sums (a view, valid until the catalog changes). */
  checksumsOf(id: number): Uint32Array {
    const at = id * this.stride;
    return this.sums.subarray(at, at + 2 * this.kindOfId(id).shards);
  }

  /** The entry's hash (a copy read from the key table). */
  hashOf(id: number): Buffer {
    const len = this.hashLen[id]!;
    const out = Buffer.allocUnsafe(len);
    this.scratch[0] = id;
    this.keys.copyKeys(this.scratch, 1, len, out);
    return out;
  }

  /** The keys of ids[0, count) (all of `hashLen` bytes) back to back. */
  hashesOf(ids: Int32Array, count: number, hashLen: number): Buffer {
    const out = Buffer.allocUnsafe(count * hashLen);
    this.keys.copyKeys(ids, count, hashLen, out);
    return out;
  }

  /** Every entry, packed per namespace and hash length (for advertising). */
  hashesByNamespace(): { namespace: string; hashLen: number; packed: Buffer }[] {
    const groups = new Map<string, { namespace: string; hashLen: number; ids: number[] }>();
    for (let id = 0; id < this.drive.length; id++) {
      if (this.drive[id]! < 0) continue;
      const { namespace } = this.kindOfId(id);
      const hashLen = this.hashLen[id]!;
      const key = `${hashLen}\0${namespace}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { namespace, hashLen, ids: [] }));
      g.ids.push(id);
    }
    return [...groups.values()].map(({ namespace, hashLen, ids }) => ({
      namespace,
      hashLen,
      packed: this.hashesOf(Int32Array.from(ids), ids.length, hashLen),
    }));
  }

  /** The journal records (puts) of ids[0, count), encoded back to back (the hashes of a run of one length in one copy). */
  encodePuts(ids: Int32Array, count = ids.length): Buffer {
    const puts: SsdPut[] = [];
    for (let n = 0; n < count;) {
      const len = this.hashLen[ids[n]!]!;
      let end = n + 1;
      while (end < count && this.hashLen[ids[end]!] === len) end++;
      const hashes = this.hashesOf(ids.subarray(n, end), end - n, len);
      for (let k = n; k < end; k++) {
        const id = ids[k]!;
        const { namespace, layout } = this.kindOfId(id);
        const hash = hashes.subarray((k - n) * len, (k - n + 1) * len);
        const [file, offset, checksums] = [this.drive[id]!, this.offset[id]!, this.checksumsOf(id)];
        puts.push({ kind: 'put', file, offset, namespace, layout, hash, checksums });
      }
      n = end;
    }
    return encodeRecords(puts);
  }

  private ensure(n: number): void {
    if (n <= this.drive.length) return;
    const cap = Math.max(n, 2 * this.drive.length, 1024);
    this.drive = grow(this.drive, cap, NONE);
    this.offset = grow(this.offset, cap, 0);
    this.kind = grow(this.kind, cap, 0);
    this.hashLen = grow(this.hashLen, cap, 0);
    this.pins = grow(this.pins, cap, 0);
    this.stamps = grow(this.stamps, cap, 0);
    this.prev = grow(this.prev, cap, NONE);
    this.next = grow(this.next, cap, NONE);
    this.sums = grow(this.sums, cap * this.stride, 0);
  }

  /** A layout with more shards than any before: every id's sums move to the wider stride. */
  private restride(stride: number): void {
    const sums = new Uint32Array(this.drive.length * stride);
    for (let id = 0; id < this.drive.length; id++)
      sums.set(this.sums.subarray(id * this.stride, (id + 1) * this.stride), id * stride);
    this.sums = sums;
    this.stride = stride;
  }

  /** Takes a listed id out of its drive's order and bytes (its key stays). */
  private unlist(id: number): void {
    const d = this.drive[id]!;
    this.unlink(id);
    this.counts[d]!--;
    this.bytes[d]! -= this.kindOfId(id).extentBytes;
    this.drive[id] = NONE;
  }

  /** Appends a listed id to its drive's order (the newest). */
  private link(id: number): void {
    const d = this.drive[id]!;
    const t = this.tail[d]!;
    this.prev[id] = t;
    this.next[id] = NONE;
    if (t === NONE) this.head[d] = id;
    else this.next[t] = id;
    this.tail[d] = id;
  }

  private unlink(id: number): void {
    const d = this.drive[id]!;
    const [p, n] = [this.prev[id]!, this.next[id]!];
    if (p === NONE) this.head[d] = n;
    else this.next[p] = n;
    if (n === NONE) this.tail[d] = p;
    else this.prev[n] = p;
  }

  private tagOf(namespace: string): number {
    let tag = this.tags.get(namespace);
    if (tag === undefined) this.tags.set(namespace, (tag = this.tags.size));
    return tag;
  }
}

function grow<T extends Int32Array | Float64Array | Uint8Array | Uint32Array>(a: T, n: number, fill: number): T {
  const out = new (a.constructor as new (n: number) => T)(n);
  out.set(a as never);
  out.fill(fill, a.length);
  return out;
}
