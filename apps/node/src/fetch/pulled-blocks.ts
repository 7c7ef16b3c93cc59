// The local side of one pull: fresh pool pages and pinned, unsealed "pulled" slots for the blocks about to be read,
// sealed when their pages arrived or undone when not; every block's flight is settled either way. An unsealed slot
// is never a hit, so a half-read block is never visible.
import { BlockClass, type BlockIndex } from '../block-index.js';
import type { PagePool } from '../data-path.js';
import type { Evictor } from '../eviction.js';
import type { BlockFlights } from './block-flights.js';
import type { PullRequest } from './pull-types.js';

export interface PulledBlocksDeps {
  index: BlockIndex;
  evictor: Evictor;
  pool: PagePool;
  flights: BlockFlights;
  /** A pulled block was sealed (the app advertises it). */
  onSealed: (namespace: string, hash: Uint8Array) => void;
}

export class PulledBlocks {
  /** Blocks sealed, and their bytes. */
  sealedBlocks = 0;
  sealedBytes = 0;

  constructor(
    private readonly deps: PulledBlocksDeps,
    private readonly req: PullRequest,
  ) {}

  /**
   * Fresh local pages and pinned, unsealed slots for blocks [at, at + count) of the request, stopping at the first
   * block that exists locally meanwhile or when the pool is full. `local` holds the pages, block-major (the readv
   * targets).
   */
  setUp(at: number, count: number): { slots: Int32Array; local: Float64Array; exhausted: boolean } {
    const { index, evictor, pool } = this.deps;
    const { ns } = this.req;
    const { shards, pageBytes } = ns;
    const pages = evictor.allocate(pageBytes, count * shards);
    const fit = Math.floor(pages.length / shards);
    const slots = new Int32Array(fit);
    let n = 0;
    for (; n < fit; n++) {
      const { packed, hashLen } = this.req;
      const off = (at + n) * hashLen;
      if (index.lookup(ns.id, packed, off, hashLen) >= 0) break; // saved locally meanwhile
      const slot = index.slotForShard(ns.id, packed, off, hashLen, shards, 0, pageBytes, BlockClass.Pulled);
      index.pin(slot);
      for (let s = 0; s < shards; s++) index.assign(slot, s, pages[n * shards + s]!);
      slots[n] = slot;
    }
    for (let p = n * shards; p < pages.length; p++) pool.free(pages[p]!, pageBytes);
    return {
      slots: slots.subarray(0, n),
      local: pages.subarray(0, n * shards),
      exhausted: pages.length < count * shards,
    };
  }

  /**
   * Block `i` of the request (in `slot`): seals it when all its pages arrived (verified against `checksums`, its
   * pages' (low, high) pairs from index `at`, which it keeps to serve them on), else undoes it; settles its flight.
   */
  finish(slot: number, i: number, arrived: boolean, checksums: Uint32Array, at: number): void {
    const { index, flights } = this.deps;
    const { ns } = this.req;
    const key = this.req.flightKey(i);
    if (arrived) {
      let sealed = false;
      for (let s = 0; s < ns.shards; s++) {
        index.setChecksum(slot, s, checksums[at + 2 * s]!, checksums[at + 2 * s + 1]!);
        sealed = index.markShardWritten(slot, s) || sealed;
      }
      index.unpin(slot);
      if (sealed) {
        this.sealedBlocks++;
        this.sealedBytes += ns.shards * ns.pageBytes;
        this.deps.onSealed(ns.name, this.req.hash(i));
      }
      flights.settle(ns.id, key, sealed);
      return;
    }
    this.undo(slot);
    flights.settle(ns.id, key, false);
  }

  /** Frees the pages of a block that did not arrive and unpins its (unsealed, so invisible) slot; its claim stays. */
  undo(slot: number): void {
    const { index, pool } = this.deps;
    const { shards, pageBytes } = this.req.ns;
    for (let s = 0; s < shards; s++) pool.free(index.unassign(slot, s), pageBytes);
    index.unpin(slot);
  }
}
