// The index's own accounting of bytes per (block, owner) with tiers (the `metaserver` bench reports the same number,
// index_bytes_per_entry, from its spawned metaserver): the tier rides in bits the owner records already had, so a
// store whose owners hold blocks in every tier takes exactly the bytes of one that is all DRAM, and stays ≤ 48 bytes
// per pair on the bench's shape (64-block chains held whole by one node and a prefix of each by the next).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TIER_DRAM, type BlockTier } from '@kvfabric/common';
import { MetaStore } from './store.js';
import type { Hashes } from './types.js';

const NODES = 8;
const CHAIN = 64;
const GROUP = 16; // chains per insert batch

function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Blocks [0, n) of chains [first, first + GROUP): 32-byte uniform-looking hashes. */
function chainBatch(first: number, n: (c: number) => number): Hashes {
  let count = 0;
  for (let c = first; c < first + GROUP; c++) count += n(c);
  const packed = Buffer.allocUnsafe(count * 32);
  let at = 0;
  for (let c = first; c < first + GROUP; c++) {
    for (let j = 0; j < n(c); j++, at += 32) {
      let x = mix(c * CHAIN + j + 1);
      for (let w = 0; w < 8; w++) packed.writeUInt32LE((x = mix(x + w + 0x632be5ab)), at + w * 4);
    }
  }
  return { packed, hashLen: 32 };
}

function fill(chains: number, tierOf: (batch: number) => BlockTier): MetaStore {
  const store = new MetaStore({ nodeStaleMs: 3_600_000, ttlMs: 7_200_000 });
  for (let n = 0; n < NODES; n++) store.heartbeat({ nodeId: `n${n}`, addr: `10.0.0.${n}:7000`, transports: [1] });
  const prefix = (c: number) => 1 + (mix(c ^ 0x9e3779b9) % CHAIN);
  for (let first = 0, b = 0; first < chains; first += GROUP, b += 2) {
    const node = Math.floor((first * NODES) / chains);
    store.insert(
      `n${node}`,
      'bench',
      chainBatch(first, () => CHAIN),
      tierOf(b),
    );
    store.insert(`n${(node + 1) % NODES}`, 'bench', chainBatch(first, prefix), tierOf(b + 1));
  }
  return store;
}

test('bytes per (block, owner): tiers cost nothing, and the index stays within 48 bytes a pair', () => {
  const chains = 16_384; // 1M blocks, ~1.5M pairs
  const dram = fill(chains, () => TIER_DRAM);
  const tiered = fill(chains, (b) => (b % 3) as BlockTier);
  assert.equal(tiered.owners, dram.owners);
  assert.ok(tiered.owners > 1_500_000, `${tiered.owners} pairs`);
  assert.equal(tiered.memoryBytes(), dram.memoryBytes(), 'the same bytes with and without tiers');
  const perPair = tiered.memoryBytes() / tiered.owners;
  assert.ok(perPair <= 48, `${perPair.toFixed(1)} bytes per (block, owner)`);
  console.log(`index bytes per (block, owner), ${tiered.owners} pairs in every tier: ${perPair.toFixed(1)}`);
});
