// The block inserts and removes a reporter has noted and not yet sent to the metaserver, netted per namespace: an
// insert and a remove of the same hash before a flush cancel out (the metaserver's view is right as it is). Hashes
// are kept as bytes in one KeyTable per namespace (no per-hash objects or strings) and handed out packed, one list
// per hash length, ready for InsertBlocks / RemoveBlocks. Pure: no I/O.
import type { PackedHashes } from '@kvfabric/common';
import { KeyTable } from './hash-table.js';

export const INSERT = 1;
export const REMOVE = -1;
export type BlockUpdate = typeof INSERT | typeof REMOVE;

/** What `note` did with an update. */
export type NoteResult = 'added' | 'repeated' | 'netted' | 'dropped';

/** One namespace's pending updates, packed per hash length. */
export interface PendingNamespaceUpdates {
  namespace: string;
  inserts: PackedHashes[];
  removes: PackedHashes[];
}

class NamespaceUpdates {
  readonly hashes = new KeyTable(16);
  /** Per entry id of `hashes`: INSERT or REMOVE. */
  updates = new Int8Array(16);
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

  /** Notes an update of (namespace, hash); the bytes are copied. */
  note(namespace: string, hash: Uint8Array, update: BlockUpdate): NoteResult {
    let ns = this.byNamespace.get(namespace);
    if (!ns) this.byNamespace.set(namespace, (ns = new NamespaceUpdates()));
    const id = ns.hashes.find(0, hash, 0, hash.length);
    if (id >= 0) {
      if (ns.updates[id] === update) return 'repeated';
      ns.hashes.remove(id);
      this.count--;
      return 'netted';
    }
    if (this.count >= this.max) return 'dropped';
    const added = ns.hashes.add(0, hash, 0, hash.length);
    if (added >= ns.updates.length) {
      const grown = new Int8Array(ns.hashes.idCapacity);
      grown.set(ns.updates);
      ns.updates = grown;
    }
    ns.updates[added] = update;
    this.count++;
    return 'added';
  }

  /** Every pending update, packed, and none left pending. */
  take(): PendingNamespaceUpdates[] {
    const out: PendingNamespaceUpdates[] = [];
    for (const [namespace, ns] of this.byNamespace) {
      // Ids per (update, hash length), then one packed list each.
      const groups = new Map<number, number[]>();
      const { hashes, updates } = ns;
      for (let id = 0; id < hashes.idBound; id++) {
        if (!hashes.isLive(id)) continue;
        const group = updates[id]! * hashes.keyLength(id);
        let ids = groups.get(group);
        if (!ids) groups.set(group, (ids = []));
        ids.push(id);
      }
      const entry: PendingNamespaceUpdates = { namespace, inserts: [], removes: [] };
      for (const [group, ids] of groups) {
        const hashLen = Math.abs(group);
        const packed = Buffer.allocUnsafe(ids.length * hashLen);
        ids.forEach((id, i) => hashes.copyKey(id, packed, i * hashLen));
        (group > 0 ? entry.inserts : entry.removes).push({ packed, hashLen });
      }
      if (groups.size > 0) out.push(entry);
    }
    this.byNamespace = new Map();
    this.count = 0;
    return out;
  }
}
