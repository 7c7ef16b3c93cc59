// Eviction policy: allocate pool pages, evicting unpinned blocks (least recently used, pulled copies before
// locally made ones) until the request fits. When nothing is evictable, hand out what fits (possibly none):
// the caller answers NO_SPACE / RESOURCE_EXHAUSTED and the node keeps serving.
import type { BlockIndex } from './block-index.js';
import type { PagePool } from './data-path.js';

export interface EvictedBlock {
  ns: number;
  /** A copy of the block's hash. */
  hash: Buffer;
  sealed: boolean;
}

export class Evictor {
  readonly counters = { evictedBlocks: 0, evictedBytes: 0, exhausted: 0 };
  /** Scratch: the pages of the block being evicted. */
  private pagesOut = new Float64Array(8);

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
    const index = this.index;
    while (freed < bytes) {
      const slot = index.victim();
      if (slot < 0) break;
      // Read before the slot goes (its hash is copied out of the index); no per-block allocation but the event.
      const block: EvictedBlock = { ns: index.ns(slot), hash: index.hash(slot), sealed: index.isSealed(slot) };
      const pageBytes = index.pageBytes(slot);
      const shards = index.shards(slot);
      if (this.pagesOut.length < shards) this.pagesOut = new Float64Array(shards);
      const n = index.evictInto(slot, this.pagesOut);
      for (let i = 0; i < n; i++) this.pool.free(this.pagesOut[i]!, pageBytes);
      freed += n * pageBytes;
      any = true;
      this.counters.evictedBlocks++;
      this.counters.evictedBytes += n * pageBytes;
      this.onEvicted(block);
    }
    return any;
  }
}
