// The save path of the engine API, the hottest one: gather blocks of an engine's region into fresh pool pages and
// seal them in the index. Pages are not summed here: a holder sums a block the first time it grants it to a peer
// (PeerServer), so a save costs one copy and nothing more. One pass over the packed request hashes (no key strings), plain typed
// arrays, no per-block objects; a batch of 64 blocks is typical.
import { KvError, invalid } from '@kvfabric/common';
import { BlockClass, type BlockIndex } from './block-index.js';
import type { DataPath } from './data-path.js';
import { DescriptorBatch } from './data-path-descriptors.js';
import { DuplicateHashFilter } from './duplicate-hashes.js';
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
  data: DataPath;
  index: BlockIndex;
  evictor: Evictor;
  counters: SaveCounters;
  /** A save sealed a block (for the metaserver); `hash` is valid during the call only. */
  onSealed?: (namespace: string, hash: Uint8Array) => void;
}

export class BlockSaver {
  /** Scratch for de-duplicating a save's hashes (used synchronously within one call). */
  private readonly duplicates = new DuplicateHashFilter();

  constructor(private readonly deps: BlockSaverDeps) {}

  async save(inst: Instance, blockIds: Uint32Array, packed: Buffer, hashLen: number): Promise<SaveResult> {
    const count = hashLen > 0 ? packed.length / hashLen : 0;
    if (blockIds.length !== count)
      throw invalid('block_ids', `expected ${count} ids (one per hash), got ${blockIds.length}`);
    for (let i = 0; i < count; i++) {
      if (blockIds[i]! >= inst.numBlocks)
        throw invalid(`block_ids[${i}]`, `expected 0..${inst.numBlocks - 1}`, blockIds[i]);
    }
    this.deps.counters.saveCalls++;
    const { ns } = inst;
    const { index, evictor, data } = this.deps;
    const shard = ns.replicated ? 0 : inst.rank;
    const outcomes = new Uint8Array(count).fill(SAVE_PRESENT);
    // Hot path (64 blocks a call is typical): one pass over the hashes, keyed straight from the packed request
    // bytes (no key strings), plain typed arrays, no per-block objects.
    const need = new Int32Array(count); // call positions that need a page, in order
    let needCount = 0;
    let existing: number[] | undefined; // partial blocks (another rank's page) pinned while pages are found
    const dedupe = count > 1 ? this.duplicates.reset(packed, hashLen, count) : undefined;
    for (let i = 0; i < count; i++) {
      const off = i * hashLen;
      if (dedupe && !dedupe.isFirst(i)) continue;
      const slot = index.lookup(ns.id, packed, off, hashLen);
      if (slot >= 0 && (index.isSealed(slot) || !Number.isNaN(index.page(slot, shard)))) continue;
      need[needCount++] = i;
      if (slot >= 0) {
        index.pin(slot); // keep a partial block (another rank's page) from being evicted to make room
        (existing ??= []).push(slot);
      }
    }
    const pages = evictor.allocate(ns.pageBytes, needCount);
    const stored = pages.length;
    const slots = new Int32Array(stored);
    const desc = new DescriptorBatch(stored * inst.segmentOffsets.length);
    for (let j = 0; j < stored; j++) {
      const i = need[j]!;
      const slot = index.slotForShard(
        ns.id,
        packed,
        i * hashLen,
        hashLen,
        ns.shards,
        shard,
        ns.pageBytes,
        BlockClass.Local,
      );
      index.assign(slot, shard, pages[j]!);
      index.pin(slot);
      slots[j] = slot;
      outcomes[i] = SAVE_STORED;
      desc.block(inst.segmentOffsets, blockIds[i]! * inst.strideBytes, inst.segmentBytes, pages[j]!, true);
    }
    for (let j = stored; j < needCount; j++) outcomes[need[j]!] = SAVE_NO_SPACE;
    if (existing) for (const slot of existing) index.unpin(slot);
    this.deps.counters.presentBlocks += count - needCount;
    this.deps.counters.noSpaceBlocks += needCount - stored;
    if (needCount > 0 && stored === 0) {
      throw new KvError(
        'POOL_EXHAUSTED',
        `pool exhausted: ${needCount} pages of ${ns.pageBytes} bytes needed and every resident block is pinned`,
      );
    }
    if (stored === 0) return { outcomes, stored: 0, sealed: 0, bytes: 0 };
    const { src, dst, len } = desc.arrays();
    try {
      await data.copier.copy(inst.region.memory, data.pool.memory, src, dst, len);
    } catch (err) {
      for (let j = 0; j < stored; j++) {
        const page = index.unassign(slots[j]!, shard);
        index.unpin(slots[j]!);
        data.pool.free(page, ns.pageBytes);
      }
      throw err;
    }
    let sealed = 0;
    const onSealed = this.deps.onSealed;
    for (let j = 0; j < stored; j++) {
      const slot = slots[j]!;
      if (index.markShardWritten(slot, shard)) {
        sealed++;
        if (onSealed) {
          const off = need[j]! * hashLen;
          onSealed(ns.name, packed.subarray(off, off + hashLen));
        }
      }
      index.unpin(slot);
    }
    const bytes = stored * ns.pageBytes;
    this.deps.counters.savedBlocks += stored;
    this.deps.counters.savedBytes += bytes;
    this.deps.counters.sealedBlocks += sealed;
    return { outcomes, stored, sealed, bytes };
  }
}
