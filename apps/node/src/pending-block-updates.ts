// The block inserts and removes a reporter has noted and not yet sent to the metaserver, netted per namespace, each
// insert with the tier the block is held in (the last one noted wins). An insert (a block new to the node) and a
// remove of the same hash before a flush cancel out (the metaserver never heard of it); a MOVE (a block the
// metaserver may hold changed tier) is sent as an insert with its tier, and a remove after it is sent as a remove.
// Hashes are kept as bytes in one KeyTable per namespace (no per-hash objects or strings) and handed out packed, one
// list per hash length and tier, ready for InsertBlocks / RemoveBlocks. Pure: no I/O.
import type { BlockTier, PackedHashes } from '@kvfabric/common';
import { KeyTable } from './hash-table.js';

export const INSERT = 1;
export const MOVE = 2;
export const REMOVE = -1;
export type BlockUpdate = typeof INSERT | typeof MOVE | typeof REMOVE;

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

class NamespaceUpdates {
  readonly hashes = new KeyTable(16);
  /** Per entry id of `hashes`: INSERT, MOVE or REMOVE, and the tier of an INSERT or MOVE. */
  updates = new Int8Array(16);
  tiers = new Uint8Array(16);
}

export class PendingBlockUpdates {
  private byNamespace = new Map<string, NamespaceUpdates>();
  private count = 0;

  /** `max`: updates held at most; beyond, new ones are dropped. */
  constructor(private readonly max: number) {}

  /** Updates held. */
  get size(): number {
    return this.count;
  }

  /** Notes an update of (namespace, hash), held in `tier` (inserts and moves); the bytes are copied. */
  note(namespace: string, hash: Uint8Array, update: BlockUpdate, tier: BlockTier = 0): NoteResult {
    let ns = this.byNamespace.get(namespace);
    if (!ns) this.byNamespace.set(namespace, (ns = new NamespaceUpdates()));
    const id = ns.hashes.find(0, hash, 0, hash.length);
    if (id >= 0) return this.renote(ns, id, update, tier);
    if (this.count >= this.max) return 'dropped';
    const added = ns.hashes.add(0, hash, 0, hash.length);
    if (added >= ns.updates.length) {
      const updates = new Int8Array(ns.hashes.idCapacity);
      updates.set(ns.updates);
      ns.updates = updates;
      const tiers = new Uint8Array(ns.hashes.idCapacity);
      tiers.set(ns.tiers);
      ns.tiers = tiers;
    }
    ns.updates[added] = update;
    ns.tiers[added] = update === REMOVE ? 0 : tier;
    this.count++;
    return 'added';
  }

  /** A second update of a pending hash. */
  private renote(ns: NamespaceUpdates, id: number, update: BlockUpdate, tier: BlockTier): NoteResult {
    const old = ns.updates[id]!;
    if (update === REMOVE) {
      if (old === REMOVE) return 'repeated';
      if (old === INSERT) {
        ns.hashes.remove(id);
        this.count--;
        return 'netted';
      }
      ns.updates[id] = REMOVE; // a move of a block the metaserver may hold: it must hear of the remove
      return 'replaced';
    }
    if (old === REMOVE) {
      // back before the remove went out: the metaserver may hold it, with whatever tier it heard last
      ns.updates[id] = MOVE;
      ns.tiers[id] = tier;
      return 'replaced';
    }
    // an insert stays an insert (never sent yet), a move a move; the latest tier is the one to send
    if (ns.tiers[id] === tier) return 'repeated';
    ns.tiers[id] = tier;
    return 'replaced';
  }

  /** Every pending update, packed, and none left pending. */
  take(): PendingNamespaceUpdates[] {
    const out: PendingNamespaceUpdates[] = [];
    for (const [namespace, ns] of this.byNamespace) {
      // Ids per group: removes by -hash length, inserts and moves by tier * 65 + hash length (1..64); then one
      // packed list each.
      const groups = new Map<number, number[]>();
      const { hashes, updates, tiers } = ns;
      for (let id = 0; id < hashes.idBound; id++) {
        if (!hashes.isLive(id)) continue;
        const len = hashes.keyLength(id);
        const group = updates[id] === REMOVE ? -len : tiers[id]! * 65 + len;
        let ids = groups.get(group);
        if (!ids) groups.set(group, (ids = []));
        ids.push(id);
      }
      const entry: PendingNamespaceUpdates = { namespace, inserts: [], removes: [] };
      for (const [group, ids] of groups) {
        const hashLen = group < 0 ? -group : group % 65;
        const packed = Buffer.allocUnsafe(ids.length * hashLen);
        ids.forEach((id, i) => hashes.copyKey(id, packed, i * hashLen));
        if (group < 0) entry.removes.push({ packed, hashLen });
        else entry.inserts.push({ packed, hashLen, tier: Math.floor(group / 65) as BlockTier });
      }
      if (groups.size > 0) out.push(entry);
    }
    this.byNamespace = new Map();
    this.count = 0;
    return out;
  }
}
