// Making room in the pool: pages are allocated natively, evicting unpinned blocks (least recently used, pulled
// copies before locally made ones) until the request fits; when nothing is evictable, what fits is handed out
// (possibly none) and the caller answers NO_SPACE / RESOURCE_EXHAUSTED while the node keeps serving. This keeps
// the counters and tells the node which blocks went (saves evict inside their native call and report here too).
import type { BlockIndex } from './block-index.js';
import type { DataPath, EvictedBlocks } from './data-path.js';

export interface EvictedBlock {
  ns: number;
  /** A copy of the block's hash. */
  hash: Buffer;
  sealed: boolean;
}

export class Evictor {
  readonly counters = { evictedBlocks: 0, evictedBytes: 0, exhausted: 0 };

  constructor(
    private readonly index: BlockIndex,
    private readonly data: Pick<DataPath, 'allocate'>,
    private readonly onEvicted: (block: EvictedBlock) => void,
  ) {}

  /** Up to `count` pages of `pageBytes`: all of them unless the pool is full of pinned blocks. */
  allocate(pageBytes: number, count: number): Float64Array {
    if (count === 0) return new Float64Array(0);
    const got = this.data.allocate(this.index, pageBytes, count);
    this.report(got.evicted, got.exhausted);
    return got.pages;
  }

  /** Counts what a native allocation evicted (and whether it ran out) and tells the node about each block. */
  report(evicted: EvictedBlocks, exhausted: boolean): void {
    if (exhausted) this.counters.exhausted++;
    if (evicted.blocks === 0) return;
    this.counters.evictedBlocks += evicted.blocks;
    this.counters.evictedBytes += evicted.bytes;
    for (let i = 0, at = 0; i < evicted.blocks; i++) {
      const len = evicted.lens[i]!;
      this.onEvicted({
        ns: evicted.ns[i]!,
        hash: evicted.hashes.subarray(at, at + len),
        sealed: evicted.sealed[i] === 1,
      });
      at += len;
    }
  }
}
