// The save path of the engine API, the hottest one. Its per-block work runs natively in one call (engine_ops.h):
// the call's hashes are resolved against the block index, repeats and blocks already held skipped, pages allocated
// (evicting least recently used blocks), the region's blocks gathered into them on the copy threads, and the blocks
// sealed; each page is summed as it is copied (what a peer verifies when it pulls the block). This
// adapter only counts, reports evictions and sealed hashes in batches, and turns "no page for anything" into
// POOL_EXHAUSTED.
import { KvError, toKvError } from '@kvfabric/common';
import type { BlockIndex } from './block-index.js';
import type { DataPath, EvictedBlocks } from './data-path.js';
import type { Evictor } from './eviction.js';
import type { Instance } from './instances.js';

export const SAVE_STORED = 0;
export const SAVE_PRESENT = 1;
export const SAVE_NO_SPACE = 2;
export const SAVE_FAILED = 3;

export interface SaveResult {
  /** One per hash: SAVE_STORED, SAVE_PRESENT or SAVE_NO_SPACE. */
  outcomes: Uint8Array;
  stored: number;
  sealed: number;
  bytes: number;
}

/** The counters a save moves (EngineCore.counters). */
export interface SaveCounters {
  saveCalls: number;
  savedBlocks: number;
  savedBytes: number;
  sealedBlocks: number;
  presentBlocks: number;
  noSpaceBlocks: number;
}

export interface BlockSaverDeps {
  data: Pick<DataPath, 'save'>;
  index: BlockIndex;
  evictor: Evictor;
  counters: SaveCounters;
  /** A save sealed blocks (for the metaserver): their hashes back to back, `hashLen` bytes each. */
  onSealed?: (namespace: string, hashes: Buffer, hashLen: number) => void;
}

export class BlockSaver {
  constructor(private readonly deps: BlockSaverDeps) {}

  async save(inst: Instance, blockIds: Uint32Array, packed: Buffer, hashLen: number): Promise<SaveResult> {
    const { data, index, evictor, counters } = this.deps;
    counters.saveCalls++;
    let r;
    try {
      r = await data.save(index, inst.region, inst.layout, blockIds, packed, hashLen);
    } catch (err) {
      const evicted = (err as { evicted?: EvictedBlocks }).evicted; // room made before the copy failed
      if (evicted) evictor.report(evicted, false);
      throw toKvError(err);
    }
    evictor.report(r.evicted, r.exhausted);
    counters.presentBlocks += r.present;
    counters.noSpaceBlocks += r.noSpace;
    const { ns } = inst;
    if (r.noSpace > 0 && r.stored === 0) {
      throw new KvError(
        'POOL_EXHAUSTED',
        `pool exhausted: ${r.noSpace} pages of ${ns.pageBytes} bytes needed and every resident block is pinned`,
      );
    }
    const bytes = r.stored * ns.pageBytes;
    counters.savedBlocks += r.stored;
    counters.savedBytes += bytes;
    counters.sealedBlocks += r.sealed;
    if (r.sealed > 0) this.deps.onSealed?.(ns.name, r.sealedHashes, hashLen);
    return { outcomes: r.outcomes, stored: r.stored, sealed: r.sealed, bytes };
  }
}
