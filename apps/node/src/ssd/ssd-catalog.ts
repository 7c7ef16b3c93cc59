// What the SSD tier holds: one entry per block on SSD — its drive, extent, namespace and geometry, hash and
// per-shard content sums — keyed by (namespace name, hash), with an LRU order per drive (a Map's insertion order:
// touching re-inserts) and pins that keep an entry from being evicted while its extent is read. Keys live in
// native memory (KeyIds): each entry has a small dense id, so a lookup builds no string key and a packed run of
// hashes is looked up in one call.
import { createKeyIds, ssdSlotBytes, type KeyIds } from '@kvfabric/native';
import type { NamespaceLayout } from '../namespaces.js';
import { layoutShards } from './journal-codec.js';

export interface SsdEntry {
  /** The catalog's id for the entry while it is listed (-1 before `add`). */
  id: number;
  drive: number;
  offset: number;
  namespace: string;
  layout: NamespaceLayout;
  hash: Buffer;
  /** (lo, hi) per shard page. */
  checksums: Uint32Array;
  pins: number;
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

export class SsdCatalog {
  private readonly ids: KeyIds = createKeyIds();
  /** The entry of each live id. */
  private readonly byId: (SsdEntry | undefined)[] = [];
  /** Namespace name → the tag its keys are held under. */
  private readonly tags = new Map<string, number>();
  /** Per drive, oldest first, by id. */
  private readonly lru: Map<number, SsdEntry>[];
  private readonly bytes: number[];
  private readonly one = new Int32Array(1);

  constructor(drives: number) {
    this.lru = Array.from({ length: drives }, () => new Map());
    this.bytes = new Array<number>(drives).fill(0);
  }

  get size(): number {
    return this.ids.size();
  }

  /** Bytes of the extents on `drive`. */
  usedBytes(drive: number): number {
    return this.bytes[drive] ?? 0;
  }

  get(namespace: string, hash: Uint8Array): SsdEntry | undefined {
    const tag = this.tags.get(namespace);
    if (tag === undefined || this.ids.find(tag, hash, hash.length, 0, 1, this.one) === 0) return undefined;
    return this.byId[this.one[0]!];
  }

  /**
   * Looks up every hash of `packed` (`hashLen` bytes each): out[k] is the id of hash k's entry, or -1 (`entry(id)`
   * gives it). Returns how many are on SSD.
   */
  findMany(namespace: string, packed: Uint8Array, hashLen: number, out: Int32Array): number {
    const count = packed.length / hashLen;
    const tag = this.tags.get(namespace);
    if (tag === undefined) {
      out.fill(-1, 0, count);
      return 0;
    }
    return this.ids.find(tag, packed, hashLen, 0, count, out);
  }

  /** The entry with `id` (from `findMany`). */
  entry(id: number): SsdEntry | undefined {
    return this.byId[id];
  }

  /** Adds an entry (most recently used); an entry for the same block is replaced and returned. */
  add(e: SsdEntry): SsdEntry | undefined {
    this.ids.intern(this.tagOf(e.namespace), e.hash, e.hash.length, 0, 1, this.one);
    const id = this.one[0]!;
    const old = this.byId[id];
    if (old) {
      this.unlist(old);
      old.id = -1;
    }
    e.id = id;
    this.byId[id] = e;
    this.lru[e.drive]!.set(id, e);
    this.bytes[e.drive]! += extentBytes(e.layout);
    return old;
  }

  remove(e: SsdEntry): boolean {
    if (e.id < 0 || this.byId[e.id] !== e) return false;
    this.unlist(e);
    this.ids.remove(e.id);
    e.id = -1;
    return true;
  }

  /** Most recently used now. */
  touch(e: SsdEntry): void {
    const l = this.lru[e.drive]!;
    if (e.id < 0 || l.get(e.id) !== e) return;
    l.delete(e.id);
    l.set(e.id, e);
  }

  /** The least recently used unpinned entry of `drive`, or undefined. */
  victim(drive: number): SsdEntry | undefined {
    for (const e of this.lru[drive]!.values()) if (e.pins === 0) return e;
    return undefined;
  }

  /** Every entry of `drive` (for taking a drive out of service, and for compaction). */
  entries(drive: number): IterableIterator<SsdEntry> {
    return this.lru[drive]!.values();
  }

  /** Every entry, packed per namespace and hash length (for advertising). */
  hashesByNamespace(): { namespace: string; hashLen: number; packed: Buffer }[] {
    const groups = new Map<string, { namespace: string; hashLen: number; parts: Buffer[] }>();
    for (const e of this.byId) {
      if (!e) continue;
      const k = `${e.namespace}\0${e.hash.length}`;
      let g = groups.get(k);
      if (!g) groups.set(k, (g = { namespace: e.namespace, hashLen: e.hash.length, parts: [] }));
      g.parts.push(e.hash);
    }
    return [...groups.values()].map((g) => ({
      namespace: g.namespace,
      hashLen: g.hashLen,
      packed: Buffer.concat(g.parts),
    }));
  }

  /** Takes a listed entry out of the per-id table, its drive's order and bytes (its key stays). */
  private unlist(e: SsdEntry): void {
    this.byId[e.id] = undefined;
    this.lru[e.drive]!.delete(e.id);
    this.bytes[e.drive]! -= extentBytes(e.layout);
  }

  private tagOf(namespace: string): number {
    let tag = this.tags.get(namespace);
    if (tag === undefined) this.tags.set(namespace, (tag = this.tags.size));
    return tag;
  }
}
