// Binds the engine core's data-path interfaces to @kvfabric/native: one Pool, one CopyEngine, Regions.
import { CopyEngine, Pool, Region, type NativeMemory } from '@kvfabric/native';
import { KvError, toKvError } from '@kvfabric/common';
import type { DataPath, MappedRegion, Memory, PagePool, RegionFile } from './data-path.js';

export interface NativeDataPathOptions {
  poolBytes: number;
  hugepages: boolean;
  copyThreads: number;
}

/** The native Pool behind a PagePool, for modules that need it directly (the remote-pull transports). */
export class NativePagePool implements PagePool {
  constructor(readonly native: Pool) {}

  get maxPageBytes(): number {
    return this.native.slabBytes;
  }

  get memory(): Memory {
    return this.native;
  }

  allocMany(pageBytes: number, count: number): Float64Array | null {
    return this.native.allocMany(pageBytes, count);
  }

  free(offset: number, pageBytes: number): void {
    this.native.free(offset, pageBytes);
  }

  stats() {
    return this.native.stats();
  }
}

export class NativeDataPath implements DataPath {
  readonly pool: NativePagePool;
  readonly copier: DataPath['copier'];
  private readonly engine: CopyEngine;

  constructor(opts: NativeDataPathOptions) {
    // Pre-fault the arena at start-up (parallel), so no save pays first-touch page faults.
    this.pool = new NativePagePool(
      Pool.create({ sizeBytes: opts.poolBytes, hugepages: opts.hugepages, prefaultThreads: opts.copyThreads }),
    );
    this.engine = new CopyEngine({ threads: opts.copyThreads });
    const engine = this.engine;
    this.copier = {
      async copy(src, dst, s, d, l) {
        try {
          return await engine.copy(src as NativeMemory, dst as NativeMemory, s, d, l);
        } catch (err) {
          throw toKvError(err);
        }
      },
      async sum(memory, pages, pageBytes) {
        try {
          return (await engine.sum(memory as NativeMemory, pages, pageBytes)).checksums;
        } catch (err) {
          throw toKvError(err);
        }
      },
      async verify(memory, pages, pageBytes, expected) {
        try {
          return (await engine.verify(memory as NativeMemory, pages, pageBytes, expected)).mismatches;
        } catch (err) {
          throw toKvError(err);
        }
      },
    };
  }

  get remotePullPool(): Pool {
    return this.pool.native;
  }

  openRegion(file: RegionFile, sizeBytes: number): MappedRegion {
    try {
      const region = Region.fromFd(file.fd, sizeBytes, file.label);
      return { sizeBytes: region.sizeBytes, label: file.label, memory: region, close: () => region.close() };
    } catch (err) {
      const e = toKvError(err);
      // A region the node cannot map is the engine's problem to fix: say which one and why.
      throw new KvError(
        e.code === 'INTERNAL' || e.code === 'INVALID_ARGUMENT' ? 'REGION_INVALID' : e.code,
        `region: ${e.message}`,
        { cause: err },
      );
    }
  }

  close(): void {
    this.engine.close();
    this.pool.native.close();
  }
}
