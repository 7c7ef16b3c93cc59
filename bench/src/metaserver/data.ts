// The metaserver bench data set, generated identically in every process: `chains` prompt chains of 64 chained
// block hashes (32 bytes, uniform-looking). Chain c is held whole by its primary node (the chains are split into
// 8 contiguous ranges, one per node) and, for its first prefixLen(c) ∈ 1..64 blocks, by the next node: about 1.5
// owners per block, and every 64-hash query of a chain answers exactly two nodes with known prefix lengths.

export const NODES = 8;
export const CHAIN_BLOCKS = 64;
export const HASH_LEN = 32;
/** Chains per insert batch: 1024 primary hashes, ~520 secondary ones. */
export const GROUP_CHAINS = 16;
export const NAMESPACE = 'bench/llama-3-8b/fp16/tp1/bs16';

export interface Layout {
  chains: number;
  blocks: number;
  entries: number;
}

/** A layout with about `blocks` distinct hashes (rounded down to whole groups per node). */
export function layoutForBlocks(blocks: number): Layout {
  const unit = NODES * GROUP_CHAINS;
  const chains = Math.max(unit, Math.floor(blocks / CHAIN_BLOCKS / unit) * unit);
  return layout(chains);
}

/** A layout with about `entries` (block, owner) pairs. */
export function layoutForEntries(entries: number): Layout {
  const unit = NODES * GROUP_CHAINS;
  const chains = Math.max(unit, Math.round(entries / (CHAIN_BLOCKS + 32.5) / unit) * unit);
  return layout(chains);
}

function layout(chains: number): Layout {
  let entries = chains * CHAIN_BLOCKS;
  for (let c = 0; c < chains; c++) entries += prefixLen(c);
  return { chains, blocks: chains * CHAIN_BLOCKS, entries };
}

function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** How many leading blocks of chain c the secondary node holds (1..64). */
export function prefixLen(c: number): number {
  return 1 + (mix(c ^ 0x9e3779b9) % CHAIN_BLOCKS);
}

export function primaryNode(c: number, chains: number): number {
  return Math.floor((c * NODES) / chains);
}

export function secondaryNode(c: number, chains: number): number {
  return (primaryNode(c, chains) + 1) % NODES;
}

export function nodeId(n: number): string {
  return `bench-node-${n}`;
}

export function nodeIndex(id: string): number {
  return Number(id.slice('bench-node-'.length));
}

/** Writes the hash of block j of chain c at out[off..off+32). */
export function writeHash(out: Buffer, off: number, c: number, j: number): void {
  let x = mix(c * CHAIN_BLOCKS + j + 1);
  for (let w = 0; w < HASH_LEN / 4; w++) {
    x = mix(x + w + 0x632be5ab);
    out.writeUInt32LE(x, off + w * 4);
  }
}

/** The 64 hashes of chain c, packed. */
export function chainHashes(c: number): Buffer {
  const out = Buffer.allocUnsafe(CHAIN_BLOCKS * HASH_LEN);
  for (let j = 0; j < CHAIN_BLOCKS; j++) writeHash(out, j * HASH_LEN, c, j);
  return out;
}

/** One insert batch: one node's hashes over a group of chains. */
export interface Unit {
  node: number;
  hashes: Buffer;
}

/** The insert batches of the layout, in a fixed order: for each group, the primary batch then the secondary one. */
export function unitCount(l: Layout): number {
  return (l.chains / GROUP_CHAINS) * 2;
}

export function unit(l: Layout, index: number, opts: { secondaries?: boolean } = {}): Unit | undefined {
  const group = Math.floor(index / 2);
  const secondary = index % 2 === 1;
  if (secondary && opts.secondaries === false) return undefined;
  const first = group * GROUP_CHAINS;
  let count = 0;
  for (let c = first; c < first + GROUP_CHAINS; c++) count += secondary ? prefixLen(c) : CHAIN_BLOCKS;
  const hashes = Buffer.allocUnsafe(count * HASH_LEN);
  let at = 0;
  for (let c = first; c < first + GROUP_CHAINS; c++) {
    const n = secondary ? prefixLen(c) : CHAIN_BLOCKS;
    for (let j = 0; j < n; j++, at += HASH_LEN) writeHash(hashes, at, c, j);
  }
  return { node: secondary ? secondaryNode(first, l.chains) : primaryNode(first, l.chains), hashes };
}

/** The exact answer to a 64-hash query of chain c: node → prefix length. */
export function expectedPrefix(c: number, chains: number): Map<number, number> {
  const p = primaryNode(c, chains);
  const s = secondaryNode(c, chains);
  return new Map([
    [p, CHAIN_BLOCKS],
    [s, prefixLen(c)],
  ]);
}
