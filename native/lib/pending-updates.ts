// The reporter's pending block updates in native memory (src/pending_updates.h): inserts, moves (a known block now
// in another tier) and removes, netted per (namespace, hash), noted a packed batch at a time and taken grouped per
// (namespace, kind, tier, hash length), ready for InsertBlocks / RemoveBlocks. Nothing per hash on the V8 heap.
import { binding } from './loader.js';

export const PENDING_REMOVE = -1;
export const PENDING_INSERT = 1;
export const PENDING_MOVE = 2;
export type PendingUpdate = typeof PENDING_REMOVE | typeof PENDING_INSERT | typeof PENDING_MOVE;

/** What a note did, counted over its hashes. */
export interface PendingCounts {
  added: number;
  repeated: number;
  /** A pending update changed (another kind or tier) and still goes out. */
  replaced: number;
  /** An insert and a remove cancelled out. */
  netted: number;
  /** Not held: the table was full. */
  dropped: number;
}

/** The pending updates of one (namespace, kind, tier, hash length); moves go out as inserts with their tier. */
export interface PendingGroup {
  ns: number;
  remove: boolean;
  tier: number;
  hashLen: number;
  packed: Buffer;
}

export interface PendingUpdates {
  /**
   * Notes `update` (with `tier` for inserts and moves) of hashes [at, at + count) of `packed` in namespace `ns`
   * (the caller's number for it); returns the counts as [added, repeated, replaced, netted, dropped].
   */
  note(
    ns: number,
    packed: Uint8Array,
    hashLen: number,
    at: number,
    count: number,
    update: PendingUpdate,
    tier: number,
  ): Uint32Array;
  /** Every pending update, grouped; none left pending. */
  take(): PendingGroup[];
  /** Updates held. */
  size(): number;
}

/** An empty table holding at most `max` updates. Arguments are checked natively (INVALID_ARGUMENT naming the field). */
export function createPendingUpdates(max: number): PendingUpdates {
  return new (binding().PendingUpdates as new (max: number) => PendingUpdates)(max);
}

/** The counts array of `note` as named fields. */
export function pendingCounts(c: Uint32Array): PendingCounts {
  return { added: c[0]!, repeated: c[1]!, replaced: c[2]!, netted: c[3]!, dropped: c[4]! };
}
