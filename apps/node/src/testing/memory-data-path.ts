// An in-memory data path (Buffers, a first-fit page list) with the interfaces of data-path.ts, for unit tests
// of the engine core without the native addon.
import { KvError } from '@kvfabric/common';
import type { Copier, DataPath, MappedRegion, Memory, PagePool, RegionSource } from '../data-path.js';

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

export class MemoryCopier implements Copier {
  batches = 0;
  fail?: Error;

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

  /** Creates a named region that openRegion({ shmName: name }) maps. */
  createRegion(name: string, sizeBytes: number): Buffer {
    const buf = Buffer.alloc(sizeBytes);
    this.regions.set(name, { buf });
    return buf;
  }

  openRegion(source: RegionSource): MappedRegion {
    const name = source.shmName ?? source.path ?? '';
    const memory = this.regions.get(name);
    if (!memory) throw new KvError('REGION_INVALID', `region ${name}: no such shared memory object`);
    if (memory.buf.length < source.sizeBytes)
      throw new KvError(
        'REGION_INVALID',
        `region ${name}: ${memory.buf.length} bytes, smaller than size_bytes ${source.sizeBytes}`,
      );
    return { sizeBytes: source.sizeBytes, memory, close() {} };
  }

  close(): void {}
}
