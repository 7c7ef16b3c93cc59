// Making room in the pool: pages are allocated natively, evicting unpinned blocks (least recently used, pulled
// copies before locally made ones) until the request fits; when nothing is evictable, what fits is handed out
// (possibly none) and the caller answers NO_SPACE / RESOURCE_EXHAUSTED while the node keeps serving. This keeps
// the counters and tells the node which blocks went (saves evict inside their native call and report here too).
import type { BlockIndex } from './block-index.js';
import type { DataPath, EvictedBlocks } from './data-path.js';

/** Consecutive evicted blocks of one namespace, hash length and sealed state: their hashes back to back. */
export interface EvictedRun {
  ns: number;
  hashLen: number;
  /** A view of the allocation's hashes: valid during the callback only (copy what is kept). */
  packed: Buffer;
  sealed: boolean;
}

export class Evictor {
  readonly counters = { evictedBlocks: 0, evictedBytes: 0, exhausted: 0 };

  constructor(
    private readonly index: BlockIndex,
    private readonly data: Pick<DataPath, 'allocate'>,
    private readonly onEvicted: (run: EvictedRun) => void,
  ) {}

  /** Up to `count` pages of `pageBytes`: all of them unless the pool is full of pinned blocks. */
  allocate(pageBytes: number, count: number): Float64Array {
    if (count === 0) return new Float64Array(0);
    const got = this.data.allocate(this.index, pageBytes, count);
    this.report(got.evicted, got.exhausted);
    return got.pages;
  }

  /** Counts what a native allocation evicted (and whether it ran out) and tells the node, a run of blocks at a time. */
  report(evicted: EvictedBlocks, exhausted: boolean): void {
    if (exhausted) this.counters.exhausted++;
    if (evicted.blocks === 0) return;
    this.counters.evictedBlocks += evicted.blocks;
    this.counters.evictedBytes += evicted.bytes;
    const { ns, lens, sealed, hashes } = evicted;
    for (let i = 0, at = 0; i < evicted.blocks;) {
      // a run: the blocks from i that share its namespace, hash length and sealed state (usually all of them)
      let j = i + 1;
      while (j < evicted.blocks && ns[j] === ns[i] && lens[j] === lens[i] && sealed[j] === sealed[i]) j++;
      const hashLen = lens[i]!;
      const end = at + (j - i) * hashLen;
      this.onEvicted({ ns: ns[i]!, hashLen, packed: hashes.subarray(at, end), sealed: sealed[i] === 1 });
      at = end;
      i = j;
    }
  }
}
