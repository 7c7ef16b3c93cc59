// Eviction policy: allocate pool pages, evicting unpinned blocks (least recently used, pulled copies before
// locally made ones) until the request fits. When nothing is evictable, hand out what fits (possibly none):
// the caller answers NO_SPACE / RESOURCE_EXHAUSTED and the node keeps serving.
import type { BlockIndex } from './block-index.js';
import type { PagePool } from './data-path.js';

export interface EvictedBlock {
  ns: number;
  key: string;
  sealed: boolean;
}

export class Evictor {
  readonly counters = { evictedBlocks: 0, evictedBytes: 0, exhausted: 0 };

  constructor(
    private readonly index: BlockIndex,
    private readonly pool: PagePool,
    private readonly onEvicted: (block: EvictedBlock) => void,
  ) {}

  /** Up to `count` pages of `pageBytes`: all of them unless the pool is full of pinned blocks. */
  allocate(pageBytes: number, count: number): Float64Array {
    if (count === 0) return new Float64Array(0);
    for (;;) {
      const pages = this.pool.allocMany(pageBytes, count);
      if (pages) return pages;
      if (!this.evictBytes(pageBytes * count)) break;
    }
    // Nothing left to evict: take what fits, one page at a time.
    const got: number[] = [];
    for (let i = 0; i < count; i++) {
      const one = this.pool.allocMany(pageBytes, 1);
      if (!one) break;
      got.push(one[0]!);
    }
    this.counters.exhausted++;
    return Float64Array.from(got);
  }

  /** Evicts victims until at least `bytes` were freed; false when there was nothing to evict. */
  evictBytes(bytes: number): boolean {
    let freed = 0;
    let any = false;
    while (freed < bytes) {
      const slot = this.index.victim();
      if (slot < 0) break;
      const gone = this.index.evict(slot);
      for (const page of gone.pages) this.pool.free(page, gone.pageBytes);
      freed += gone.pages.length * gone.pageBytes;
      any = true;
      this.counters.evictedBlocks++;
      this.counters.evictedBytes += gone.pages.length * gone.pageBytes;
      this.onEvicted(gone);
    }
    return any;
  }
}
