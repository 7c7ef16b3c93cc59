// What a node advertises when the metaserver asks for everything (a new epoch, a registration): every sealed DRAM
// block (tier both when the SSD holds it too, else dram) and every SSD block DRAM does not hold (tier ssd), packed
// per namespace, hash length and tier. One catalog or index lookup per block, only on a re-advertisement.
import { TIER_BOTH, TIER_DRAM, TIER_SSD, type BlockTier, type PackedHashes } from '@kvfabric/common';
import type { BlockIndex } from './block-index.js';
import type { NamespaceRegistry } from './namespaces.js';
import type { TieredHashes } from './pending-block-updates.js';

/** The SSD tier as the advertisement sees it. */
export interface SsdHolding {
  has(namespace: string, hash: Uint8Array): boolean;
  resident(): Iterable<{ namespace: string; hashes: PackedHashes }>;
}

export interface TieredResident {
  namespace: string;
  hashes: TieredHashes;
}

export function residentTiers(
  index: BlockIndex,
  namespaces: NamespaceRegistry,
  ssd: SsdHolding | undefined,
): TieredResident[] {
  const out: TieredResident[] = [];
  for (const { ns, hashes } of index.sealedHashes()) {
    const namespace = namespaces.get(ns).name;
    if (!ssd) out.push({ namespace, hashes: { ...hashes, tier: TIER_DRAM } });
    else out.push(...byTier(namespace, hashes, (h) => (ssd.has(namespace, h) ? TIER_BOTH : TIER_DRAM)));
  }
  for (const { namespace, hashes } of ssd?.resident() ?? []) {
    const info = namespaces.byNameOrUndefined(namespace);
    const inDram = (h: Uint8Array): boolean => {
      const slot = info ? index.lookup(info.id, h, 0, h.length) : -1;
      return slot >= 0 && index.isSealed(slot);
    };
    out.push(...byTier(namespace, hashes, (h) => (inDram(h) ? undefined : TIER_SSD)));
  }
  return out;
}

/** The hashes of `list` split by tier (`tierOf` undefined: left out), one packed list per tier. */
function byTier(
  namespace: string,
  list: PackedHashes,
  tierOf: (hash: Uint8Array) => BlockTier | undefined,
): TieredResident[] {
  const { packed, hashLen } = list;
  const parts = new Map<BlockTier, Uint8Array[]>();
  for (let at = 0; at < packed.length; at += hashLen) {
    const hash = packed.subarray(at, at + hashLen);
    const tier = tierOf(hash);
    if (tier === undefined) continue;
    let p = parts.get(tier);
    if (!p) parts.set(tier, (p = []));
    p.push(hash);
  }
  return [...parts].map(([tier, hashes]) => ({ namespace, hashes: { packed: Buffer.concat(hashes), hashLen, tier } }));
}
