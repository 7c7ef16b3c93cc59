// The limits on what nodes may put in the index: ownerships per node (max-blocks-per-node) and the bytes of the
// index's typed arrays (max-index-memory), and the owner records the arena can address (MAX_OWNER_RECORDS, 2^30 - 1:
// past 6 GiB of records, so only a larger max-index-memory reaches it). An insert that would pass either is refused whole with QUOTA_EXCEEDED
// (RESOURCE_EXHAUSTED) naming the limit, and changes nothing. Far from a limit the check is two comparisons; only an
// insert that might pass one counts exactly what it would add (one lookup per hash), so re-inserting what a node
// already owns is never refused.
import { KvError, echo } from '@kvfabric/common';
import { hashCount, type OwnerIndex } from './owner-index.js';
import { MAX_OWNER_RECORDS } from './owner-lists.js';
import type { Hashes, IndexLimits } from './types.js';

export const NO_INDEX_LIMITS: IndexLimits = {
  maxBlocksPerNode: Number.POSITIVE_INFINITY,
  maxIndexBytes: Number.POSITIVE_INFINITY,
};

/** Throws QUOTA_EXCEEDED when inserting hashes for node slot (named nodeId) would pass a limit. */
export function checkInsertLimits(
  index: OwnerIndex,
  limits: IndexLimits,
  slot: number,
  nodeId: string,
  ns: string,
  hashes: Hashes,
): void {
  const count = hashCount(hashes);
  const owned = index.ownedBy(slot);
  const bytes = index.bytes();
  const room = limits.maxBlocksPerNode - owned;
  const fits = index.owners + count <= MAX_OWNER_RECORDS;
  if (count <= room && fits && bytes + index.bytesToAdd(ns, hashes.hashLen, count, count) <= limits.maxIndexBytes)
    return;
  const add = index.newOwnerships(slot, ns, hashes);
  if (add.pairs === 0) return;
  if (index.owners + add.pairs > MAX_OWNER_RECORDS) {
    throw new KvError(
      'QUOTA_EXCEEDED',
      `max-index-memory: the index holds ${index.owners} (block, owner) records and this insert adds ${add.pairs}, ` +
        `over the ${MAX_OWNER_RECORDS} an index can address`,
    );
  }
  if (add.pairs > room) {
    throw new KvError(
      'QUOTA_EXCEEDED',
      `max-blocks-per-node: node ${echo(nodeId)} owns ${owned} blocks and this insert adds ${add.pairs}, ` +
        `over the limit of ${limits.maxBlocksPerNode}`,
    );
  }
  const grow = index.bytesToAdd(ns, hashes.hashLen, add.entries, add.pairs);
  if (bytes + grow > limits.maxIndexBytes) {
    throw new KvError(
      'QUOTA_EXCEEDED',
      `max-index-memory: the index holds ${bytes} bytes and this insert needs up to ${grow} more, ` +
        `over the limit of ${limits.maxIndexBytes} bytes`,
    );
  }
}
