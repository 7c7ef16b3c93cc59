// The prefix query, the metaserver's hot path (one call per engine query): for every live node holding hashes[0],
// how many leading hashes it holds contiguously (and how many of those only on SSD), best node first. Allocates nothing but its answer (scratch memory
// is reused across queries).
import { TIER_SSD } from '@kvfabric/common';
import { hashCount, type OwnerIndex } from './owner-index.js';
import { PrefixScratch } from './prefix-scratch.js';
import type { NodeSessions } from './sessions.js';
import type { Hashes, NodePrefixResult } from './types.js';

/** Longest prefix first, then least pool usage, then node id (a total order: answers are deterministic). */
export function byPrefixThenLoad(a: NodePrefixResult, b: NodePrefixResult): number {
  return (
    b.prefixLen - a.prefixLen ||
    (a.poolUsedBytes < b.poolUsedBytes ? -1 : a.poolUsedBytes > b.poolUsedBytes ? 1 : 0) ||
    (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0)
  );
}

export class PrefixQuery {
  private readonly scratch = new PrefixScratch();

  constructor(
    private readonly index: OwnerIndex,
    private readonly sessions: NodeSessions,
  ) {}

  /**
   * Hash i is first looked for at the entry after hash i - 1's (`findNear`: chains are usually inserted in order),
   * so a query walks the key arena and the owner records mostly sequentially instead of probing the slot array 64
   * times; stops as soon as no candidate is still counting. Nodes stale at nowMs and excludeNodeId are left out.
   */
  run(ns: string, hashes: Hashes, excludeNodeId: string, nowMs: number): NodePrefixResult[] {
    const count = hashCount(hashes);
    const { packed, hashLen } = hashes;
    if (count === 0) return [];
    const table = this.index.table(ns, hashLen);
    if (!table) return [];
    const e0 = table.find(packed, 0);
    if (e0 < 0) return []; // nobody holds hashes[0]: nothing to count
    const { sessions } = this;
    const { lists } = this.index;
    const exclude = excludeNodeId ? (sessions.get(excludeNodeId)?.slot ?? -1) : -1;

    // Candidates: the live owners of hashes[0] (a handful), each counting from `count` until a hole.
    const q = this.scratch;
    const stamp = q.begin(sessions.slotBound);
    for (let r = table.heads.get(e0); r !== 0; r = lists.nextOf(r)) {
      const n = lists.node.get(r);
      if (n === exclude || !sessions.liveAt(n, nowMs)) continue;
      q.add(n, stamp, count, lists.tierOf(r) === TIER_SSD ? 1 : 0);
    }
    const nc = q.count;
    if (nc === 0) return [];
    const { mark, candOf, seen, ssd } = q;

    let active = nc;
    const { heads } = table;
    const words = hashLen % 4 === 0 ? q.wordsOf(packed) : undefined;
    for (let i = 1, e = e0; i < count && active > 0; i++) {
      // chains are usually inserted in order: try the entry after hash i - 1's before probing the table
      e = table.findNear(packed, i * hashLen, e + 1, words);
      if (e >= 0) {
        for (let r = heads.get(e); r !== 0; r = lists.nextOf(r)) {
          const slot = lists.node.get(r);
          if (mark[slot] !== stamp) continue;
          const c = candOf[slot]!;
          // still counting (seen at i - 1): this block extends its prefix
          if (seen[c] !== i - 1) continue;
          seen[c] = i;
          if (lists.tierOf(r) === TIER_SSD) ssd[c]!++;
        }
      }
      for (let a = 0; a < active;) {
        const c = q.active[a]!;
        if (seen[c] === i) {
          a++;
        } else {
          q.prefix[c] = i; // a hole (or the end of what this node holds) stops its count
          q.active[a] = q.active[--active]!;
        }
      }
    }
    const out: NodePrefixResult[] = new Array(nc);
    for (let c = 0; c < nc; c++) {
      const s = sessions.atSlot(q.slot[c]!)!;
      out[c] = {
        nodeId: s.nodeId,
        addr: s.addr,
        prefixLen: q.prefix[c]!,
        transports: s.transports,
        poolUsedBytes: s.stats.poolUsedBytes,
        poolCapacityBytes: s.stats.poolCapacityBytes,
        ssdBlocks: ssd[c]!,
      };
    }
    // insertion sort: answers hold a handful of nodes, and Array.prototype.sort allocates a work array per call
    for (let i = 1; i < nc; i++) {
      const x = out[i]!;
      let j = i - 1;
      for (; j >= 0 && byPrefixThenLoad(out[j]!, x) > 0; j--) out[j + 1] = out[j]!;
      out[j + 1] = x;
    }
    return out;
  }
}
