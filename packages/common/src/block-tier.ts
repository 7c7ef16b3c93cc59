// Where a node holds a block: its DRAM pool, its SSD tier, or both. The node's reporter sends the tier with each
// InsertBlocks, the metaserver keeps it per (block, owner) in two bits, and answers carry it back. The numbers are
// the store's (they fit two bits); the wire's BlockTier enum is this number + 1 (0 on the wire: an older node,
// read as DRAM).

export const TIER_DRAM = 0;
export const TIER_SSD = 1;
export const TIER_BOTH = 2;
export type BlockTier = typeof TIER_DRAM | typeof TIER_SSD | typeof TIER_BOTH;

const NAMES = ['dram', 'ssd', 'both'] as const;
export type BlockTierName = (typeof NAMES)[number];

export function tierName(tier: BlockTier): BlockTierName {
  return NAMES[tier];
}

/** The wire's BlockTier (UNSPECIFIED 0, DRAM 1, SSD 2, BOTH 3) for a tier. */
export function tierToWire(tier: BlockTier): number {
  return tier + 1;
}

/** A tier from the wire's BlockTier; undefined for a value outside the enum (the caller names the field). */
export function tierFromWire(wire: number): BlockTier | undefined {
  if (wire === 0 || wire === 1) return TIER_DRAM;
  if (wire === 2) return TIER_SSD;
  if (wire === 3) return TIER_BOTH;
  return undefined;
}
