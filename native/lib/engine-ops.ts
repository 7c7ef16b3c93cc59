// The engine API's save and load, and pool allocation with eviction, as native batches (src/engine_ops.h): one
// call per request resolves its hashes against the block index, allocates pages (evicting least recently used
// blocks, pulled copies first), builds the copy descriptors, copies on the copy engine's threads and seals or
// unpins when the copy is done. JavaScript does nothing per block; it gets the call's outcome as typed arrays.
import type { BlockIndex } from './block-index.js';
import { kSubmit, type CopyEngine } from './copy-engine.js';
import { CudaIpcRegion, kCudaNative } from './cuda-ipc-region.js';
import { callNative, checkInteger, invalidArgument } from './errors.js';
import { binding } from './loader.js';
import { nativeMemory, type NativeMemory, type Pool } from './pool.js';

/** An engine instance's geometry, held natively (made once, at registration). */
export interface InstanceLayout {
  readonly ns: number;
  readonly shard: number;
}

export interface InstanceLayoutSpec {
  /** The namespace's id in the index, its shards (TP ranks, or 1 when replicated) and this instance's shard. */
  ns: number;
  shards: number;
  shard: number;
  numBlocks: number;
  pageBytes: number;
  segmentBytes: number;
  strideBytes: number;
  /** Block b's segment s is at segmentOffsets[s] + b * strideBytes in the region, page + s * segmentBytes in the pool. */
  segmentOffsets: Float64Array;
}

/** Blocks evicted to make room: the sealed ones are to be withdrawn from the metaserver. */
export interface EvictedBlocks {
  ns: Uint32Array;
  sealed: Uint8Array;
  /** Hash lengths; the hashes are back to back in `hashes`. */
  lens: Uint8Array;
  hashes: Buffer;
  blocks: number;
  bytes: number;
}

export interface SaveBlocksResult {
  bytes: number;
  /** Per hash of the call: 0 stored, 1 already present (or a repeat within the call), 2 no space. */
  outcomes: Uint8Array;
  stored: number;
  sealed: number;
  present: number;
  noSpace: number;
  /** The hashes this call sealed (their blocks became whole), back to back, `hashLen` bytes each. */
  sealedHashes: Buffer;
  hashLen: number;
  /** The pool ran out of evictable blocks: fewer pages than needed were found. */
  exhausted: boolean;
  evicted: EvictedBlocks;
}

export interface AllocatedPages {
  pages: Float64Array;
  exhausted: boolean;
  evicted: EvictedBlocks;
}

interface NativeOps {
  InstanceLayout: new (...args: unknown[]) => InstanceLayout;
  saveBlocks(...args: unknown[]): Promise<SaveBlocksResult>;
  loadBlocks(...args: unknown[]): Promise<{ bytes: number }>;
  allocatePages(index: BlockIndex, pool: object, pageBytes: number, count: number): AllocatedPages;
}

const ops = (): NativeOps => binding() as unknown as NativeOps;

/** An engine's region: host memory (a Region), or GPU memory (a CudaIpcRegion: its own stream copies). */
export type EngineRegion = NativeMemory | CudaIpcRegion;

const nativeRegion = (region: EngineRegion): object =>
  region instanceof CudaIpcRegion ? region[kCudaNative] : nativeMemory(region, 'region');

export function createInstanceLayout(spec: InstanceLayoutSpec): InstanceLayout {
  if (!(spec.segmentOffsets instanceof Float64Array))
    throw invalidArgument('segmentOffsets', 'a Float64Array', spec.segmentOffsets);
  const L = ops().InstanceLayout;
  return callNative(
    () =>
      new L(
        spec.ns,
        spec.shards,
        spec.shard,
        spec.numBlocks,
        spec.pageBytes,
        spec.segmentBytes,
        spec.strideBytes,
        spec.segmentOffsets,
      ),
  );
}

/**
 * Saves blocks `blockIds` of `region` under the hashes in `packed` (`hashLen` bytes each) into pool pages of the
 * layout's namespace. Blocks that found no page (every resident block pinned) answer NO_SPACE. Rejects with
 * INVALID_ARGUMENT naming the field (nothing changed), or REGION_INVALID when the region shrank under the copy (the
 * call's pages are freed again).
 */
export function saveBlocks(
  engine: CopyEngine,
  index: BlockIndex,
  pool: Pool,
  region: EngineRegion,
  layout: InstanceLayout,
  blockIds: Uint32Array,
  packed: Uint8Array,
  hashLen: number,
): Promise<SaveBlocksResult> {
  return engine[kSubmit]((native) =>
    ops().saveBlocks(
      native,
      index,
      nativeMemory(pool, 'pool'),
      nativeRegion(region),
      layout,
      blockIds,
      packed,
      hashLen,
    ),
  );
}

/** Scatters the first blockIds.length blocks of `slots` (pinned by a lease) into those blocks of `region`. */
export function loadBlocks(
  engine: CopyEngine,
  index: BlockIndex,
  pool: Pool,
  region: EngineRegion,
  layout: InstanceLayout,
  slots: Int32Array,
  blockIds: Uint32Array,
): Promise<{ bytes: number }> {
  return engine[kSubmit]((native) =>
    ops().loadBlocks(native, index, nativeMemory(pool, 'pool'), nativeRegion(region), layout, slots, blockIds),
  );
}

/** Up to `count` pages of `pageBytes`, evicting unpinned blocks (least recently used, pulled copies first). */
export function allocatePages(index: BlockIndex, pool: Pool, pageBytes: number, count: number): AllocatedPages {
  checkInteger('count', count, 0);
  return callNative(() => ops().allocatePages(index, nativeMemory(pool, 'pool'), pageBytes, count));
}
