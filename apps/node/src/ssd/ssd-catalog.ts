// What the SSD tier holds (pure): one entry per block on SSD — its drive, extent, namespace and geometry, hash
// and per-shard content sums — keyed by (namespace name, hash), with an LRU order per drive (a Map's insertion
// order: touching re-inserts) and pins that keep an entry from being evicted while its extent is read.
import { ssdSlotBytes } from '@kvfabric/native';
import type { NamespaceLayout } from '../namespaces.js';
import { layoutShards } from './journal-codec.js';

export interface SsdEntry {
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
  private readonly all = new Map<string, SsdEntry>();
  /** Per drive, oldest first. */
  private readonly lru: Map<string, SsdEntry>[];
  private readonly bytes: number[];

  constructor(drives: number) {
    this.lru = Array.from({ length: drives }, () => new Map());
    this.bytes = new Array<number>(drives).fill(0);
  }

  get size(): number {
    return this.all.size;
  }

  /** Bytes of the extents on `drive`. */
  usedBytes(drive: number): number {
    return this.bytes[drive] ?? 0;
  }

  get(namespace: string, hash: Uint8Array): SsdEntry | undefined {
    return this.all.get(catalogKey(namespace, hash));
  }

  /** Adds an entry (most recently used); an entry for the same block is replaced and returned. */
  add(e: SsdEntry): SsdEntry | undefined {
    const key = catalogKey(e.namespace, e.hash);
    const old = this.all.get(key);
    if (old) this.remove(old);
    this.all.set(key, e);
    this.lru[e.drive]!.set(key, e);
    this.bytes[e.drive]! += extentBytes(e.layout);
    return old;
  }

  remove(e: SsdEntry): boolean {
    const key = catalogKey(e.namespace, e.hash);
    if (this.all.get(key) !== e) return false;
    this.all.delete(key);
    this.lru[e.drive]!.delete(key);
    this.bytes[e.drive]! -= extentBytes(e.layout);
    return true;
  }

  /** Most recently used now. */
  touch(e: SsdEntry): void {
    const key = catalogKey(e.namespace, e.hash);
    const l = this.lru[e.drive]!;
    if (l.get(key) !== e) return;
    l.delete(key);
    l.set(key, e);
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
    for (const e of this.all.values()) {
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
}
