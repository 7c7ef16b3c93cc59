// The local side of one pull: fresh pool pages and pinned, unsealed "pulled" slots for the blocks about to be read,
// sealed when their pages arrived or undone when not; every block's flight is settled either way. An unsealed slot
// is never a hit, so a half-read block is never visible. The per-block work is native, one call per chunk
// (data-path.ts → @kvfabric/native pull-ops): JavaScript handles chunks, and a chunk's sealed hashes go to the
// reporter packed.
import type { BlockIndex } from '../block-index.js';
import type { PulledLayout, PulledPages } from '../data-path.js';
import type { Evictor } from '../eviction.js';
import type { BlockFlights } from './block-flights.js';
import type { PullRequest } from './pull-types.js';

export interface PulledBlocksDeps {
  index: BlockIndex;
  evictor: Evictor;
  data: PulledPages;
  flights: BlockFlights;
  /** Pulled blocks were sealed: their hashes back to back in `packed`, `hashLen` bytes each (the app advertises them). */
  onSealed: (namespace: string, packed: Uint8Array, hashLen: number) => void;
}

export class PulledBlocks {
  /** Blocks sealed, and their bytes. */
  sealedBlocks = 0;
  sealedBytes = 0;
  private readonly layout: PulledLayout;

  constructor(
    private readonly deps: PulledBlocksDeps,
    private readonly req: PullRequest,
  ) {
    const { id, shards, pageBytes } = req.ns;
    this.layout = { ns: id, shards, pageBytes };
  }

  /**
   * Fresh local pages and pinned, unsealed slots for blocks [at, at + count) of the request, stopping at the first
   * block that exists locally meanwhile or when the pool is full. `local` holds the pages, block-major (the readv
   * targets).
   */
  setUp(at: number, count: number): { slots: Int32Array; local: Float64Array; exhausted: boolean } {
    const { packed, hashLen } = this.req;
    const got = this.deps.data.setUpPulled(this.deps.index, this.layout, packed, hashLen, at, count);
    this.deps.evictor.report(got.evicted, got.exhausted);
    return { slots: got.slots, local: got.pages, exhausted: got.exhausted };
  }

  /**
   * Blocks [at, at + slots.length) of the request (in `slots`): sealed when all their pages arrived (verified
   * against `checksums`, their pages' (low, high) pairs, which they keep to serve them on), else undone; their
   * flights settle either way.
   */
  finish(slots: Int32Array, at: number, arrived: boolean, checksums: Uint32Array): void {
    const { ns, hashLen } = this.req;
    let sealed = false;
    if (arrived) {
      const got = this.deps.data.sealPulled(this.deps.index, slots, checksums);
      // every block of the chunk seals: its slot was made fresh, with all of its pages, when it was set up
      sealed = got.sealed === slots.length;
      this.sealedBlocks += got.sealed;
      this.sealedBytes += got.sealed * ns.shards * ns.pageBytes;
      if (got.sealed > 0) this.deps.onSealed(ns.name, got.sealedHashes, hashLen);
    } else this.undo(slots);
    this.deps.flights.settle(ns.id, this.req.packed, hashLen, at, at + slots.length, sealed);
  }

  /** Frees the pages of blocks that did not arrive and unpins their (unsealed, so invisible) slots; claims stay. */
  undo(slots: Int32Array): void {
    if (slots.length > 0) this.deps.data.undoPulled(this.deps.index, slots);
  }
}
