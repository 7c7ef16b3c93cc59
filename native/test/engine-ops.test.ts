// The native save and load (src/engine_ops.h) against a real pool, region and copy engine, and the block index
// they work on: bytes land where the layout says, repeats and held blocks are skipped, eviction makes room (pulled
// copies first) and reports what went, hostile input changes nothing, and a region truncated under a save fails
// that save with its pages freed and its evictions still reported. Run under ASan/UBSan by test/asan.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { createBlockIndex, BlockClass, type BlockIndex } from '../lib/block-index.js';
import { pageChecksum } from '../lib/checksum.js';
import { CopyEngine } from '../lib/copy-engine.js';
import { allocatePages, createInstanceLayout, loadBlocks, saveBlocks } from '../lib/engine-ops.js';
import { Pool } from '../lib/pool.js';
import { Region } from '../lib/region.js';

const SEG = 4096;
const SEGMENTS = 4;
const BLOCKS = 32;
const PAGE = SEG * SEGMENTS;
const REGION = SEG * SEGMENTS * BLOCKS; // segment-major: segment s of block b at s * BLOCKS * SEG + b * SEG

function fileRegion(tag: string) {
  const path = `/dev/shm/kvf-ops-${tag}-${process.pid}`;
  const fd = openSync(path, 'w+', 0o600);
  ftruncateSync(fd, REGION);
  const region = Region.openPath(path, REGION);
  return {
    region,
    fd,
    path,
    write: (off: number, b: Buffer) => writeSync(fd, b, 0, b.length, off),
    read: (off: number, n: number) => {
      const b = Buffer.alloc(n);
      readSync(fd, b, 0, n, off);
      return b;
    },
    block(b: number) {
      return Buffer.concat(Array.from({ length: SEGMENTS }, (_, s) => this.read(s * BLOCKS * SEG + b * SEG, SEG)));
    },
    [Symbol.dispose]() {
      region.close();
      closeSync(fd);
      rmSync(path, { force: true });
    },
  };
}

const layoutFor = (ns = 0, pageBytes = PAGE) =>
  createInstanceLayout({
    ns,
    shards: 1,
    shard: 0,
    numBlocks: BLOCKS,
    pageBytes,
    segmentBytes: SEG,
    strideBytes: SEG,
    segmentOffsets: Float64Array.from({ length: SEGMENTS }, (_, s) => s * BLOCKS * SEG),
  });
/** 16-byte hashes, distinct for every id (a byte fill would repeat every 256 ids). */
const hashes = (...ids: number[]) =>
  Buffer.concat(
    ids.map((i) => {
      const h = Buffer.alloc(16, 0xa5);
      h.writeUInt32LE(i + 1, 0);
      return h;
    }),
  );
const u32 = (...v: number[]) => Uint32Array.from(v);

test('save gathers blocks into pages, skips repeats and held blocks; load scatters them back byte for byte', async () => {
  using r = fileRegion('rt');
  using pool = Pool.create({ sizeBytes: 64 * PAGE, slabBytes: PAGE });
  await using engine = new CopyEngine({ threads: 2 });
  const index = createBlockIndex(16);
  const layout = layoutFor();
  r.write(0, randomBytes(REGION));
  const want = [5, 9, 2].map((b) => r.block(b));
  const saved = await saveBlocks(engine, index, pool, r.region, layout, u32(5, 9, 5, 2), hashes(0, 1, 0, 2), 16);
  assert.deepEqual([...saved.outcomes], [0, 0, 1, 0]);
  assert.deepEqual([saved.stored, saved.sealed, saved.present, saved.noSpace], [3, 3, 1, 0]);
  assert.deepEqual(saved.sealedHashes, hashes(0, 1, 2));
  assert.equal(saved.bytes, 3 * PAGE);
  const again = await saveBlocks(engine, index, pool, r.region, layout, u32(1), hashes(1), 16);
  assert.deepEqual([again.stored, again.present, again.bytes], [0, 1, 0]);
  const slots = new Int32Array(3);
  assert.equal(index.prefix(0, hashes(0, 1, 2), 16, 3, slots), 3);
  index.pinMany(slots, 3); // a lease's pins
  r.write(0, Buffer.alloc(REGION));
  await loadBlocks(engine, index, pool, r.region, layout, slots, u32(30, 31, 0));
  index.unpinMany(slots, 3);
  assert.deepEqual([r.block(30), r.block(31), r.block(0)], want);
  assert.deepEqual(index.stats(), { sealed: 3, partial: 0, pinned: 0, pageBytes: 3 * PAGE });
});

/** The checksum the index keeps for block `id`'s page, or undefined when it has none. */
function keptSum(index: BlockIndex, ns: number, id: number): bigint | undefined {
  const slot = index.lookup(ns, hashes(id), 0, 16);
  if (!index.hasChecksum(slot, 0)) return undefined;
  const out = new Uint32Array(2);
  index.checksumsInto(slot, out, 0);
  return BigInt(out[0]!) | (BigInt(out[1]!) << 32n);
}

test('a save sums each page as it copies it: across copy threads, whatever runs the layout makes', async () => {
  using r = fileRegion('sums');
  using pool = Pool.create({ sizeBytes: 3 * BLOCKS * PAGE, slabBytes: PAGE });
  await using engine = new CopyEngine({ threads: 2 });
  const index = createBlockIndex(16);
  r.write(0, randomBytes(REGION));
  const all = Array.from({ length: BLOCKS }, (_, b) => b);
  // Segment-major: four runs per page; 512 KiB in one call, so both copy threads take pages.
  const saved = await saveBlocks(engine, index, pool, r.region, layoutFor(0), u32(...all), hashes(...all), 16);
  assert.equal(saved.stored, BLOCKS);
  for (const b of all) assert.equal(keptSum(index, 0, b), pageChecksum(r.block(b)), `segment-major block ${b}`);
  // One segment per block, blocks back to back: region and pool runs of neighbouring blocks could merge into one
  // descriptor; each page must still be summed alone.
  const contiguous = createInstanceLayout({
    ns: 1,
    shards: 1,
    shard: 0,
    numBlocks: BLOCKS,
    pageBytes: PAGE,
    segmentBytes: PAGE,
    strideBytes: PAGE,
    segmentOffsets: Float64Array.of(0),
  });
  await saveBlocks(engine, index, pool, r.region, contiguous, u32(...all), hashes(...all), 16);
  for (const b of all) assert.equal(keptSum(index, 1, b), pageChecksum(r.read(b * PAGE, PAGE)), `contiguous ${b}`);
  // Segments that do not fill the page: the page is not summed here (a peer's grant sums it whole).
  const padded = createInstanceLayout({
    ns: 2,
    shards: 1,
    shard: 0,
    numBlocks: BLOCKS,
    pageBytes: PAGE,
    segmentBytes: SEG,
    strideBytes: SEG,
    segmentOffsets: Float64Array.of(0),
  });
  await saveBlocks(engine, index, pool, r.region, padded, u32(3), hashes(3), 16);
  assert.equal(keptSum(index, 2, 3), undefined);
});

test('eviction makes room, pulled copies first; with everything pinned a save stores nothing', async () => {
  using r = fileRegion('ev');
  using pool = Pool.create({ sizeBytes: 4 * PAGE, slabBytes: PAGE });
  await using engine = new CopyEngine({ threads: 2 });
  const index = createBlockIndex(16);
  const layout = layoutFor();
  await saveBlocks(engine, index, pool, r.region, layout, u32(0, 1, 2), hashes(0, 1, 2), 16);
  // one pulled copy, placed the way a pull does
  const got = allocatePages(index, pool, PAGE, 1);
  assert.equal(got.pages.length, 1);
  const pulled = index.slotForShard(0, hashes(9), 0, 16, 1, 0, PAGE, BlockClass.Pulled);
  index.assign(pulled, 0, got.pages[0]!);
  index.markShardWritten(pulled, 0);
  const s = await saveBlocks(engine, index, pool, r.region, layout, u32(3, 4), hashes(3, 4), 16);
  assert.equal(s.stored, 2);
  assert.equal(s.evicted.blocks, 2);
  assert.deepEqual([...s.evicted.sealed], [1, 1]);
  assert.deepEqual(s.evicted.hashes, hashes(9, 0), 'the pulled copy went first, then the least recent local block');
  const all = new Int32Array(4);
  assert.equal(index.prefix(0, hashes(1, 2, 3, 4), 16, 4, all), 4);
  index.pinMany(all, 4);
  const none = await saveBlocks(engine, index, pool, r.region, layout, u32(5), hashes(5), 16);
  assert.deepEqual([none.stored, none.noSpace, none.exhausted], [0, 1, true]);
  index.unpinMany(all, 4);
  assert.equal(pool.stats().usedBytes, 4 * PAGE);
});

test('hostile input is refused naming the field and changes nothing', async () => {
  using r = fileRegion('bad');
  using pool = Pool.create({ sizeBytes: 8 * PAGE, slabBytes: PAGE });
  await using engine = new CopyEngine({ threads: 2 });
  const index = createBlockIndex(16);
  const layout = layoutFor();
  const refuse = (p: Promise<unknown>, message: RegExp) => assert.rejects(p, { code: 'INVALID_ARGUMENT', message });
  await refuse(
    saveBlocks(engine, index, pool, r.region, layout, u32(1, 2), hashes(0), 16),
    /^block_ids: expected 1 ids/,
  );
  await refuse(
    saveBlocks(engine, index, pool, r.region, layout, u32(BLOCKS), hashes(0), 16),
    /^block_ids\[0\]: expected 0\.\.31/,
  );
  await refuse(saveBlocks(engine, index, pool, r.region, layout, u32(0), Buffer.alloc(15), 16), /hash_len/);
  await refuse(saveBlocks(engine, index, pool, r.region, {} as never, u32(0), hashes(0), 16), /^layout:/);
  await refuse(saveBlocks(engine, {} as never, pool, r.region, layout, u32(0), hashes(0), 16), /^index:/);
  // a layout whose blocks lie outside the region: refused before a byte moves
  const wide = createInstanceLayout({
    ns: 0,
    shards: 1,
    shard: 0,
    numBlocks: BLOCKS * 4,
    pageBytes: PAGE,
    segmentBytes: SEG,
    strideBytes: SEG,
    segmentOffsets: Float64Array.from({ length: SEGMENTS }, (_, s) => s * BLOCKS * SEG),
  });
  await refuse(
    saveBlocks(engine, index, pool, r.region, wide, u32(BLOCKS * 4 - 1), hashes(0), 16),
    /outside the region/,
  );
  await refuse(
    loadBlocks(engine, index, pool, r.region, layout, Int32Array.of(7), u32(0)),
    /^slots\[0\]: not a pinned block/,
  );
  assert.throws(
    () =>
      createInstanceLayout({
        ...{ ns: 0, shards: 2, shard: 2 },
        numBlocks: 1,
        pageBytes: PAGE,
        segmentBytes: SEG,
        strideBytes: SEG,
        segmentOffsets: new Float64Array(1),
      }),
    /shard/,
  );
  assert.deepEqual(index.stats(), { sealed: 0, partial: 0, pinned: 0, pageBytes: 0 });
  assert.equal(pool.stats().usedBytes, 0);
});

test('a region truncated under saves fails those saves: their pages freed, nothing sealed, evictions reported', async () => {
  using r = fileRegion('cut');
  using pool = Pool.create({ sizeBytes: 2 * PAGE, slabBytes: PAGE });
  await using engine = new CopyEngine({ threads: 2 });
  const index = createBlockIndex(16);
  const layout = layoutFor();
  // A thread shrinks the region to nothing and grows it back, over and over: a save meets it either before it
  // starts (refused, nothing changed) or during its copy (the bus error), after it made room. Bounded by count.
  const worker = new Worker(
    `const { openSync, ftruncateSync } = require('node:fs');
     const fd = openSync(${JSON.stringify(r.path)}, 'r+');
     const nap = new Int32Array(new SharedArrayBuffer(4));
     for (;;) { ftruncateSync(fd, 0); Atomics.wait(nap, 0, 0, 1); ftruncateSync(fd, ${REGION}); Atomics.wait(nap, 0, 0, 1); }`,
    { eval: true },
  );
  let midCopy = 0;
  let reported = 0;
  let evictedSealed = 0;
  try {
    for (let i = 0; i < 20_000 && midCopy === 0; i++) {
      const hs = hashes(2 * i + 10, 2 * i + 11);
      try {
        const s = await saveBlocks(engine, index, pool, r.region, layout, u32(0, 1), hs, 16);
        evictedSealed += s.evicted.blocks;
      } catch (err) {
        const e = err as Error & { code?: string; evicted?: { blocks: number } };
        assert.equal(e.code, 'REGION_INVALID', e.message);
        if (e.evicted) {
          midCopy++;
          reported += e.evicted.blocks;
        }
        assert.equal(index.lookup(0, hs, 0, 16), -1, 'a failed save seals nothing');
      }
      // whatever happened: every pool page belongs to a sealed block, nothing is pinned or half made
      const st = index.stats();
      assert.deepEqual([st.pinned, st.partial], [0, 0]);
      assert.equal(pool.stats().usedBytes, st.pageBytes);
      assert.equal(st.pageBytes, st.sealed * PAGE);
    }
  } finally {
    await worker.terminate();
  }
  assert.equal(midCopy, 1, 'a copy met the truncation');
  assert.ok(reported + evictedSealed > 0);
});
