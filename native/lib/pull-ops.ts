// A remote pull's local per-block work as native batches (src/pull_ops.h): one call per chunk allocates its pages
// (evicting least recently used blocks, pulled copies first) and makes pinned, unsealed "pulled" slots for its
// blocks; one call per chunk seals them with the holder's checksums once their pages arrived and verified, or undoes
// them (pages freed, slots gone). JavaScript does nothing per block; a chunk's sealed hashes come back packed.
import type { BlockIndex } from './block-index.js';
import type { EvictedBlocks } from './engine-ops.js';
import { callNative, checkInteger } from './errors.js';
import { binding } from './loader.js';
import { nativeMemory, type Pool } from './pool.js';

export interface PulledChunk {
  /** One pinned, unsealed slot per block set up, in order: the leading blocks asked for that fit. */
  slots: Int32Array;
  /** Their fresh pool pages, block-major (the readv's targets). */
  pages: Float64Array;
  /** Fewer pages than asked for were found (the pool is full of pinned blocks). */
  exhausted: boolean;
  evicted: EvictedBlocks;
}

export interface SealedPulled {
  sealed: number;
  /** The hashes of the blocks sealed, back to back, in the order of the slots. */
  sealedHashes: Buffer;
}

interface NativePullOps {
  setUpPulled(...args: unknown[]): PulledChunk;
  sealPulled(index: BlockIndex, slots: Int32Array, checksums: Uint32Array): SealedPulled;
  undoPulled(index: BlockIndex, pool: object, slots: Int32Array): void;
}

const ops = (): NativePullOps => binding() as unknown as NativePullOps;

/** Where a chunk's blocks go: namespace `ns` of the index, `shards` pages of `pageBytes` a block. */
export interface PulledLayout {
  ns: number;
  shards: number;
  pageBytes: number;
}

/**
 * Sets up blocks [at, at + count) of `packed` (`hashLen` bytes a hash) for a pull: stops at the first block the
 * index has already (sealed or not) or that no pages are left for.
 */
export function setUpPulled(
  index: BlockIndex,
  pool: Pool,
  layout: PulledLayout,
  packed: Uint8Array,
  hashLen: number,
  at: number,
  count: number,
): PulledChunk {
  checkInteger('at', at, 0);
  checkInteger('count', count, 0);
  const { ns, shards, pageBytes } = layout;
  return callNative(() =>
    ops().setUpPulled(index, nativeMemory(pool, 'pool'), ns, shards, pageBytes, packed, hashLen, at, count),
  );
}

/**
 * Seals blocks set up by setUpPulled whose pages arrived and matched `checksums` ((low, high) per page,
 * block-major), keeping the checksums, and unpins them. INVALID_ARGUMENT (nothing changed) when a slot is not such a
 * block or the checksums do not fit.
 */
export function sealPulled(index: BlockIndex, slots: Int32Array, checksums: Uint32Array): SealedPulled {
  return callNative(() => ops().sealPulled(index, slots, checksums));
}

/** Undoes blocks set up by setUpPulled that did not arrive: pages freed, slots unpinned (and gone). */
export function undoPulled(index: BlockIndex, pool: Pool, slots: Int32Array): void {
  callNative(() => ops().undoPulled(index, nativeMemory(pool, 'pool'), slots));
}
