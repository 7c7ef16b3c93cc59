// A pull's native per-chunk work (src/pull_ops.h) against a real pool and block index: set-up makes pinned,
// unsealed pulled slots with fresh pages (never hits), stops at a block the index has, evicts to make room and says
// when the pool ran out; sealing keeps the holder's checksums and hands back the hashes packed; undoing frees every
// page and leaves nothing behind; hostile input changes nothing. Run under ASan/UBSan by test/asan.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockClass, createBlockIndex } from '../lib/block-index.js';
import { sealPulled, setUpPulled, undoPulled } from '../lib/pull-ops.js';
import { Pool } from '../lib/pool.js';

const PAGE = 4096;
const LEN = 16;
const hashes = (...ids: number[]) => Buffer.concat(ids.map((i) => Buffer.alloc(LEN, i + 1)));
const sums = (pages: number, seed = 7) => Uint32Array.from({ length: 2 * pages }, (_, k) => seed * 1000 + k);

test('set-up pins fresh pulled slots with their pages; sealing keeps the checksums and hands back the hashes', () => {
  using pool = Pool.create({ sizeBytes: 64 * PAGE, slabBytes: PAGE });
  const index = createBlockIndex(16);
  const layout = { ns: 3, shards: 2, pageBytes: PAGE };
  const packed = hashes(0, 1, 2, 3, 4);
  const got = setUpPulled(index, pool, layout, packed, LEN, 1, 3);
  assert.equal(got.slots.length, 3);
  assert.equal(got.pages.length, 6);
  assert.equal(new Set(got.pages).size, 6);
  assert.equal(got.exhausted, false);
  assert.equal(pool.stats().usedBytes, 6 * PAGE);
  assert.deepEqual(index.stats(), { sealed: 0, partial: 3, pinned: 3, pageBytes: 6 * PAGE });
  got.slots.forEach((slot, i) => {
    assert.equal(index.lookup(3, packed, (1 + i) * LEN, LEN), slot);
    assert.deepEqual([index.page(slot, 0), index.page(slot, 1)], [got.pages[2 * i], got.pages[2 * i + 1]]);
  });
  assert.equal(index.prefix(3, packed.subarray(LEN), LEN, 3), 0, 'unsealed pulled blocks are never hits');

  const sealed = sealPulled(index, got.slots, sums(6));
  assert.equal(sealed.sealed, 3);
  assert.deepEqual(sealed.sealedHashes, hashes(1, 2, 3));
  assert.deepEqual(index.stats(), { sealed: 3, partial: 0, pinned: 0, pageBytes: 6 * PAGE });
  assert.equal(index.prefix(3, packed.subarray(LEN), LEN, 3), 3);
  const kept = new Uint32Array(12);
  got.slots.forEach((slot, i) => index.checksumsInto(slot, kept, 4 * i));
  assert.deepEqual(kept, sums(6));
  // pulled copies are evicted first: the least recently sealed one is the victim
  assert.equal(index.victim(), got.slots[0]);
});

test('set-up stops at a block the index has, and at a full pool (evicting unpinned blocks first)', () => {
  using pool = Pool.create({ sizeBytes: 5 * PAGE, slabBytes: PAGE });
  const index = createBlockIndex(16);
  const layout = { ns: 0, shards: 1, pageBytes: PAGE };
  // a local block saved meanwhile (sealed, unpinned: evictable)
  const local = index.slotForShard(0, hashes(2), 0, LEN, 1, 0, PAGE, BlockClass.Local);
  index.assign(local, 0, pool.allocMany(PAGE, 1)![0]!);
  index.markShardWritten(local, 0);
  const first = setUpPulled(index, pool, layout, hashes(0, 1, 2, 3), LEN, 0, 4);
  assert.equal(first.slots.length, 2, 'stops at the block the index has');
  assert.equal(first.exhausted, false);
  assert.equal(first.evicted.blocks, 0);
  assert.equal(pool.stats().usedBytes, 3 * PAGE, 'the pages not used went back');

  // 2 pages free, 1 local block evictable, 2 pinned pulled ones: 4 asked, 3 found
  const second = setUpPulled(index, pool, layout, hashes(5, 6, 7, 8), LEN, 0, 4);
  assert.equal(second.slots.length, 3);
  assert.equal(second.exhausted, true);
  assert.equal(second.evicted.blocks, 1);
  assert.deepEqual(second.evicted.hashes, hashes(2));
  assert.equal(index.lookup(0, hashes(2), 0, LEN), -1);
  assert.equal(pool.stats().usedBytes, 5 * PAGE);
  assert.equal(index.stats().pinned, 5);
});

test('undoing frees every page and drops the slots; a chunk that did not arrive leaves nothing behind', () => {
  using pool = Pool.create({ sizeBytes: 16 * PAGE, slabBytes: PAGE });
  const index = createBlockIndex(16);
  const got = setUpPulled(index, pool, { ns: 1, shards: 2, pageBytes: PAGE }, hashes(0, 1, 2), LEN, 0, 3);
  undoPulled(index, pool, got.slots.subarray(1));
  assert.equal(index.lookup(1, hashes(1), 0, LEN), -1);
  assert.equal(pool.stats().usedBytes, 2 * PAGE);
  undoPulled(index, pool, got.slots.subarray(0, 1));
  assert.deepEqual(index.stats(), { sealed: 0, partial: 0, pinned: 0, pageBytes: 0 });
  assert.equal(pool.stats().usedBytes, 0);
  // the pages are free again: all 16 fit
  assert.equal(
    setUpPulled(index, pool, { ns: 1, shards: 2, pageBytes: PAGE }, hashes(0, 1, 2), LEN, 0, 3).slots.length,
    3,
  );
});

test('hostile input is refused naming the field and changes nothing', () => {
  using pool = Pool.create({ sizeBytes: 16 * PAGE, slabBytes: PAGE });
  const index = createBlockIndex(16);
  const layout = { ns: 0, shards: 1, pageBytes: PAGE };
  const got = setUpPulled(index, pool, layout, hashes(0, 1), LEN, 0, 2);
  const before = { index: index.stats(), used: pool.stats().usedBytes };
  const refused = (fn: () => unknown, field: RegExp) =>
    assert.throws(fn, (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && field.test(e.message));
  refused(() => setUpPulled(index, pool, layout, hashes(0, 1), LEN, 1, 2), /^count: blocks 1\.\.3 of 2/);
  refused(() => setUpPulled(index, pool, { ...layout, shards: 0 }, hashes(0), LEN, 0, 1), /^shards/);
  refused(() => setUpPulled(index, pool, { ...layout, pageBytes: 2 * PAGE }, hashes(0), LEN, 0, 1), /^pageBytes/);
  refused(() => setUpPulled(index, pool, layout, hashes(0), 65, 0, 0), /^hashLen/);
  refused(() => sealPulled(index, got.slots, sums(3)), /^checksums: expected 4/);
  refused(
    () => sealPulled(index, Int32Array.of(got.slots[0]!, got.slots[0]!), sums(2)),
    /^slots: a slot is named twice/,
  );
  refused(() => sealPulled(index, Int32Array.of(got.slots[0]!, 999), sums(2)), /^slots\[1\]: not a live slot/);
  refused(() => undoPulled(index, pool, Int32Array.of(got.slots[1]!, got.slots[1]!)), /named twice/);
  assert.deepEqual({ index: index.stats(), used: pool.stats().usedBytes }, before);
  // a sealed (or unpinned) block is not one being pulled: sealing or undoing it again is refused
  sealPulled(index, got.slots.subarray(0, 1), sums(1));
  refused(() => sealPulled(index, got.slots.subarray(0, 1), sums(1)), /^slots\[0\]: not a pinned, unsealed block/);
  refused(() => undoPulled(index, pool, got.slots), /^slots\[0\]: not a pinned, unsealed block/);
  assert.equal(index.isSealed(got.slots[1]!), false);
  assert.equal(index.pins(got.slots[1]!), 1);
  undoPulled(index, pool, got.slots.subarray(1));
  assert.deepEqual(index.stats(), { sealed: 1, partial: 0, pinned: 0, pageBytes: PAGE });
});
