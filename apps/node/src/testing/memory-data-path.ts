// An in-memory data path (Buffers, a first-fit page list) with the interfaces of data-path.ts, for unit tests
// of the engine core without the native addon.
import { createHash } from 'node:crypto';
import { KvError } from '@kvfabric/common';
import type { Copier, DataPath, MappedRegion, Memory, PagePool, RegionFile } from '../data-path.js';
import { HandedRegions } from '../handed-regions.js';

export class MemoryPool implements PagePool {
  readonly memory: { buf: Buffer };
  private readonly freeList: number[] = [];
  private next = 0;
  private used = 0;
  private readonly sizes = new Map<number, number>();

  constructor(
    readonly capacityBytes: number,
    readonly maxPageBytes = capacityBytes,
  ) {
    this.memory = { buf: Buffer.alloc(capacityBytes) };
  }

  allocMany(pageBytes: number, count: number): Float64Array | null {
    // Fixed page size per pool instance keeps this trivial (tests use one namespace per pool).
    const out = new Float64Array(count);
    const avail = this.freeList.length + Math.floor((this.capacityBytes - this.next) / pageBytes);
    if (avail < count) return null;
    for (let i = 0; i < count; i++) {
      const off = this.freeList.pop() ?? (this.next += pageBytes) - pageBytes;
      out[i] = off;
      this.sizes.set(off, pageBytes);
    }
    this.used += count * pageBytes;
    return out;
  }

  free(offset: number, pageBytes: number): void {
    if (this.sizes.get(offset) !== pageBytes) throw new KvError('POOL_INVALID_HANDLE', `free of ${offset}`);
    this.sizes.delete(offset);
    this.freeList.push(offset);
    this.used -= pageBytes;
  }

  stats() {
    return { capacityBytes: this.capacityBytes, usedBytes: this.used };
  }
}

/**
 * The stand-in's page checksum as (low, high) halves: the first 8 bytes of SHA-256. The node treats checksums as
 * opaque values, so any digest does here; the native data path's is XXH3-64 (native/lib/checksum.ts).
 */
export function memoryChecksum(page: Uint8Array): [number, number] {
  const d = createHash('sha256').update(page).digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4)];
}

export class MemoryCopier implements Copier {
  batches = 0;
  fail?: Error;

  async sum(memory: Memory, pages: Float64Array, pageBytes: number): Promise<Uint32Array> {
    await Promise.resolve();
    const buf = (memory as { buf: Buffer }).buf;
    const out = new Uint32Array(2 * pages.length);
    pages.forEach((at, p) => out.set(memoryChecksum(buf.subarray(at, at + pageBytes)), 2 * p));
    return out;
  }

  async verify(memory: Memory, pages: Float64Array, pageBytes: number, expected: Uint32Array): Promise<Uint32Array> {
    await Promise.resolve();
    const buf = (memory as { buf: Buffer }).buf;
    const bad: number[] = [];
    pages.forEach((at, p) => {
      const [lo, hi] = memoryChecksum(buf.subarray(at, at + pageBytes));
      if (lo !== expected[2 * p] || hi !== expected[2 * p + 1]) bad.push(p);
    });
    return Uint32Array.from(bad);
  }

  async copy(src: Memory, dst: Memory, s: Float64Array, d: Float64Array, l: Float64Array): Promise<{ bytes: number }> {
    await Promise.resolve();
    if (this.fail) throw this.fail;
    const a = (src as { buf: Buffer }).buf;
    const b = (dst as { buf: Buffer }).buf;
    let bytes = 0;
    for (let i = 0; i < l.length; i++) {
      a.copy(b, d[i]!, s[i]!, s[i]! + l[i]!);
      bytes += l[i]!;
    }
    this.batches++;
    return { bytes };
  }
}

export class MemoryDataPath implements DataPath {
  readonly copier = new MemoryCopier();
  readonly regions = new Map<string, { buf: Buffer }>();
  readonly pool: MemoryPool;

  constructor(poolBytes: number, maxPageBytes?: number) {
    this.pool = new MemoryPool(poolBytes, maxPageBytes);
  }

  /** Creates a region that openRegion maps for a file labelled `name`. */
  createRegion(name: string, sizeBytes: number): Buffer {
    const buf = Buffer.alloc(sizeBytes);
    this.regions.set(name, { buf });
    return buf;
  }

  openRegion(file: RegionFile, sizeBytes: number): MappedRegion {
    const memory = this.regions.get(file.label);
    if (!memory) throw new KvError('REGION_INVALID', `region ${file.label}: no such region`);
    if (memory.buf.length < sizeBytes)
      throw new KvError(
        'REGION_INVALID',
        `region ${file.label}: ${memory.buf.length} bytes, smaller than size_bytes ${sizeBytes}`,
      );
    return { sizeBytes, label: file.label, memory, close() {} };
  }

  close(): void {}
}

/** A handed-regions table for unit tests: descriptors are never real, so closing one does nothing. */
export function testRegions(): HandedRegions {
  return new HandedRegions({ closeFd: () => {}, ttlMs: 60_000, max: 1024 });
}

/** Hands over the region `name` (MemoryDataPath.createRegion) as an engine running as root would: its token. */
export function handOver(regions: HandedRegions, name: string): string {
  const file = { regular: true, mode: 0o100600, ownerUid: 0, sizeBytes: 0, seals: -1, readWrite: true, link: name };
  const admitted = regions.admit(-1, file, { pid: 1, uid: 0, gid: 0 });
  if (!('token' in admitted)) throw new Error(admitted.message);
  return admitted.token;
}
