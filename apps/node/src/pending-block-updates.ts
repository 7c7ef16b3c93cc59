// The block inserts and removes a reporter has noted and not yet sent to the metaserver, netted per namespace, each
// insert with the tier the block is held in (the last one noted wins). An insert (a block new to the node) and a
// remove of the same hash before a flush cancel out (the metaserver never heard of it); a MOVE (a block the
// metaserver may hold changed tier) is sent as an insert with its tier, and a remove after it is sent as a remove.
// The table lives in native memory (@kvfabric/native PendingUpdates: one hash-table entry per pending hash, nothing
// on the V8 heap), a packed batch of hashes is noted in one call, and what is pending is handed out packed, one list
// per hash length and tier, ready for InsertBlocks / RemoveBlocks. This adapter only names namespaces.
import type { BlockTier, PackedHashes } from '@kvfabric/common';
import {
  PENDING_INSERT,
  PENDING_MOVE,
  PENDING_REMOVE,
  createPendingUpdates,
  pendingCounts,
  type PendingCounts,
  type PendingUpdates,
} from '@kvfabric/native';

export const INSERT = PENDING_INSERT;
export const MOVE = PENDING_MOVE;
export const REMOVE = PENDING_REMOVE;
export type BlockUpdate = typeof INSERT | typeof MOVE | typeof REMOVE;
export type { PendingCounts };

/** What `note` did with an update: 'replaced' changed a pending one (a new op or tier) that still goes out. */
export type NoteResult = 'added' | 'repeated' | 'replaced' | 'netted' | 'dropped';

/** Hashes of one length, all held in one tier. */
export interface TieredHashes extends PackedHashes {
  tier: BlockTier;
}

/** One namespace's pending updates, packed per hash length (and tier). */
export interface PendingNamespaceUpdates {
  namespace: string;
  inserts: TieredHashes[];
  removes: PackedHashes[];
}

const RESULTS: NoteResult[] = ['added', 'repeated', 'replaced', 'netted', 'dropped'];

export class PendingBlockUpdates {
  private readonly table: PendingUpdates;
  /** The table's number for each namespace with updates pending (renumbered after each take). */
  private tags = new Map<string, number>();
  private names: string[] = [];

  /** `max`: updates held at most; beyond, new ones are dropped. */
  constructor(max: number) {
    this.table = createPendingUpdates(max);
  }

  /** Updates held. */
  get size(): number {
    return this.table.size();
  }

  /** Notes an update of (namespace, hash), held in `tier` (inserts and moves); the bytes are copied. */
  note(namespace: string, hash: Uint8Array, update: BlockUpdate, tier: BlockTier = 0): NoteResult {
    const counts = this.table.note(this.tag(namespace), hash, hash.length, 0, 1, update, tier);
    return RESULTS[counts.findIndex((n) => n > 0)]!;
  }

  /** Notes the same update of every hash in `packed` (`hashLen` bytes each, copied) in one call. */
  noteMany(
    namespace: string,
    packed: Uint8Array,
    hashLen: number,
    update: BlockUpdate,
    tier: BlockTier = 0,
  ): PendingCounts {
    const count = packed.length / hashLen;
    return pendingCounts(this.table.note(this.tag(namespace), packed, hashLen, 0, count, update, tier));
  }

  /** Every pending update, packed, and none left pending. */
  take(): PendingNamespaceUpdates[] {
    const out: PendingNamespaceUpdates[] = [];
    for (const g of this.table.take()) {
      const namespace = this.names[g.ns]!;
      let entry = out[out.length - 1];
      if (entry?.namespace !== namespace) out.push((entry = { namespace, inserts: [], removes: [] }));
      if (g.remove) entry.removes.push({ packed: g.packed, hashLen: g.hashLen });
      else entry.inserts.push({ packed: g.packed, hashLen: g.hashLen, tier: g.tier as BlockTier });
    }
    this.tags = new Map();
    this.names = [];
    return out;
  }

  private tag(namespace: string): number {
    let tag = this.tags.get(namespace);
    if (tag === undefined) {
      tag = this.names.push(namespace) - 1;
      this.tags.set(namespace, tag);
    }
    return tag;
  }
}
