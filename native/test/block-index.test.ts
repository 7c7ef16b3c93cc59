// The native block index (src/block_index.h) through its JavaScript binding: sealing, namespaces, prefix lookups, LRU
// order and pins, growth, refusals of stale slots, and a model check of random operations. Run under ASan/UBSan too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockClass, createBlockIndex, type BlockIndex } from '../lib/block-index.js';
import { createKeyIds } from '../lib/key-ids.js';

/** An 8-byte hash: 4 zero bytes, then i as 4 decimal digits. */
const key = (i: number) => Buffer.concat([Buffer.alloc(4), Buffer.from(String(i).padStart(4, '0'))]);
function packed(keys: Buffer[]): Buffer {
  return Buffer.concat(keys);
}
function slotFor(
  idx: BlockIndex,
  ns: number,
  k: Buffer,
  shards: number,
  shard: number,
  pageBytes: number,
  cls: BlockClass = BlockClass.Local,
): number {
  return idx.slotForShard(ns, k, 0, k.length, shards, shard, pageBytes, cls);
}
function seal(idx: BlockIndex, ns: number, k: Buffer, page: number, cls: BlockClass = BlockClass.Local): number {
  const slot = slotFor(idx, ns, k, 1, 0, 4096, cls);
  idx.assign(slot, 0, page);
  assert.equal(idx.markShardWritten(slot, 0), true);
  return slot;
}

test('a block seals only when every shard landed; duplicate shards are refused', () => {
  const idx = createBlockIndex();
  const s = slotFor(idx, 0, key(1), 2, 0, 100);
  idx.assign(s, 0, 0);
  assert.equal(idx.markShardWritten(s, 0), false);
  assert.equal(idx.prefix(0, packed([key(1)]), 8, 1), 0, 'half-written block is not served');
  assert.equal(slotFor(idx, 0, key(1), 2, 0, 100), -1, 'shard 0 already assigned');
  assert.equal(slotFor(idx, 0, key(1), 2, 1, 100), s);
  idx.assign(s, 1, 100);
  assert.equal(idx.markShardWritten(s, 1), true);
  assert.equal(idx.prefix(0, packed([key(1)]), 8, 1), 1);
  assert.equal(slotFor(idx, 0, key(1), 2, 1, 100), -1, 'sealed: nothing to write');
  assert.deepEqual(idx.stats(), { sealed: 1, partial: 0, pinned: 0, pageBytes: 200 });
});

test('namespaces never mix', () => {
  const idx = createBlockIndex();
  seal(idx, 0, key(1), 0);
  assert.equal(idx.prefix(1, packed([key(1)]), 8, 1), 0);
  assert.equal(idx.prefix(0, packed([key(1)]), 8, 1), 1);
});

test('prefix stops at the first miss and returns slots', () => {
  const idx = createBlockIndex();
  const a = seal(idx, 0, key(0), 0);
  const b = seal(idx, 0, key(1), 4096);
  seal(idx, 0, key(3), 8192);
  const out = new Int32Array(4);
  assert.equal(idx.prefix(0, packed([key(0), key(1), key(2), key(3)]), 8, 4, out), 2);
  assert.deepEqual([...out.subarray(0, 2)], [a, b]);
});

test('sealedSlots finds every sealed block of a run, skips misses and partial blocks, and moves nothing in the LRU', () => {
  const idx = createBlockIndex();
  const a = seal(idx, 0, key(0), 0);
  const c = seal(idx, 0, key(2), 4096);
  const partial = slotFor(idx, 0, key(3), 2, 0, 4096);
  seal(idx, 1, key(1), 8192); // another namespace
  const out = new Int32Array(5);
  const run = packed([key(9), key(0), key(1), key(2), key(3)]);
  assert.equal(idx.sealedSlots(0, run, 8, 0, 5, out), 2);
  assert.deepEqual([...out], [-1, a, -1, c, -1]);
  assert.ok(partial >= 0);
  assert.equal(idx.sealedSlots(0, run, 8, 3, 1, out), 1, 'a range of the run');
  assert.equal(out[0], c);
  assert.equal(idx.victim(), a, 'the lookups did not touch the LRU order');
  for (const [field, call] of [
    ['out', () => idx.sealedSlots(0, run, 8, 0, 5, new Int32Array(4))],
    ['count', () => idx.sealedSlots(0, run, 8, 4, 2, out)],
    ['hashLen', () => idx.sealedSlots(0, run, 0, 0, 1, out)],
    ['ns', () => idx.sealedSlots(-1, run, 8, 0, 1, out)],
  ] as const)
    assert.throws(call, (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && e.message.startsWith(field));
});

test('pagesOf lists every shard page of slots of any shape with the checksums known so far, in one call', () => {
  const idx = createBlockIndex();
  const one = seal(idx, 0, key(1), 4096);
  const two = slotFor(idx, 1, key(2), 2, 0, 4096);
  idx.assign(two, 0, 8192);
  idx.assign(two, 1, 12288);
  idx.setChecksum(two, 1, 5, 6);
  idx.setChecksum(one, 0, 0xffffffff, 1);
  const pages = new Float64Array(3);
  const sums = new Uint32Array(6);
  const known = new Uint8Array(3);
  assert.equal(idx.pagesOf(Int32Array.from([one, two]), 2, pages, sums, known), 3);
  assert.deepEqual([...pages], [4096, 8192, 12288]);
  assert.deepEqual([...known], [1, 0, 1]);
  assert.deepEqual([...sums], [0xffffffff, 1, 0, 0, 5, 6]);
  for (const [field, call] of [
    ['slots[1]', () => idx.pagesOf(Int32Array.from([one, 999]), 2, pages, sums, known)],
    ['pages, sums, known', () => idx.pagesOf(Int32Array.from([one, two]), 2, new Float64Array(2), sums, known)],
    ['count', () => idx.pagesOf(Int32Array.from([one]), 2, pages, sums, known)],
    ['known', () => idx.pagesOf(Int32Array.from([one]), 1, pages, sums, new Int8Array(3) as unknown as Uint8Array)],
  ] as const)
    assert.throws(call, (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && e.message.startsWith(field));
});

test('coldestNotIn walks the eviction order within its window and skips partial, pinned and listed blocks', () => {
  const idx = createBlockIndex();
  const s = [0, 1, 2, 3, 4].map((i) => seal(idx, i === 4 ? 1 : 0, key(i), i * 4096)); // block 4 in namespace 1
  slotFor(idx, 0, key(9), 2, 0, 4096); // partial: never a candidate
  idx.pin(s[2]!);
  const keys = createKeyIds();
  const ids = new Int32Array(2);
  keys.intern(7, packed([key(1), key(4)]), 8, 0, 2, ids); // on SSD: block 1 (ns 0 -> tag 7); key(4) under tag 7 only
  const out = new Int32Array(8);
  const tags = Int32Array.from([7]); // ns 1 has no tag: nothing of it is listed
  const all = 1e9;
  assert.equal(idx.coldestNotIn(keys, tags, 100, all, all, out), 3);
  assert.deepEqual([...out.subarray(0, 3)], [s[0], s[3], s[4]]);
  assert.equal(idx.coldestNotIn(keys, tags, 100, 2 * 4096, all, out), 1, 'window: the two coldest, one listed');
  assert.equal(idx.coldestNotIn(keys, tags, 2, all, all, out), 1, 'maxScan: the two coldest slots, one listed');
  assert.equal(idx.coldestNotIn(keys, tags, 100, all, 4096, out), 1, 'maxBytes: one 4 KiB block');
  assert.equal(idx.coldestNotIn(keys, tags, 100, all, all, new Int32Array(2)), 2, 'out full');
  assert.equal(idx.coldestNotIn(keys, Int32Array.from([-1, 7]), 100, all, all, out), 3, 'ns 0 untagged, ns 1 tagged');
  assert.deepEqual([...out.subarray(0, 3)], [s[0], s[1], s[3]], 'block 1 is a candidate now, block 4 is listed');
  for (const [field, call] of [
    ['keys', () => idx.coldestNotIn({} as never, tags, 1, 1, 1, out)],
    ['nsTags', () => idx.coldestNotIn(keys, new Uint32Array(1) as never, 1, 1, 1, out)],
    ['maxScan', () => idx.coldestNotIn(keys, tags, -1, 1, 1, out)],
    ['windowBytes', () => idx.coldestNotIn(keys, tags, 1, -1, 1, out)],
    ['out', () => idx.coldestNotIn(keys, tags, 1, 1, 1, new Float64Array(1) as never)],
  ] as const)
    assert.throws(call, (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && e.message.startsWith(field));
});

test('LRU: pulled copies go first, then the least recently used; pinned never', () => {
  const idx = createBlockIndex(16);
  const l0 = seal(idx, 0, key(0), 0);
  const l1 = seal(idx, 0, key(1), 1);
  const p0 = seal(idx, 0, key(2), 2, BlockClass.Pulled);
  // touch l0 so l1 is the least recent local block
  idx.prefix(0, packed([key(0)]), 8, 1);
  assert.equal(idx.victim(), p0);
  assert.deepEqual(idx.evict(p0).pages, [2]);
  assert.equal(idx.victim(), l1);
  idx.pin(l1);
  assert.equal(idx.victim(), l0);
  idx.pin(l0);
  assert.equal(idx.victim(), -1, 'everything pinned');
  assert.throws(() => idx.evict(l0));
  idx.unpin(l1);
  assert.equal(idx.victim(), l1);
  assert.equal(idx.stats().pinned, 1);
});

test('coldest lists unpinned blocks in the order eviction takes them', () => {
  const idx = createBlockIndex(16);
  const l0 = seal(idx, 0, key(0), 0);
  const l1 = seal(idx, 0, key(1), 1);
  const l2 = seal(idx, 0, key(2), 2);
  const p0 = seal(idx, 0, key(3), 3, BlockClass.Pulled);
  idx.prefix(0, packed([key(0)]), 8, 1); // l0 is the most recent local block now
  idx.pin(l2);
  assert.deepEqual([...idx.coldest(10)], [p0, l1, l0]);
  assert.deepEqual([...idx.coldest(2)], [p0, l1]);
  assert.deepEqual([...idx.coldest(0)], []);
  assert.throws(() => idx.coldest(-1), /max/);
  // pinned to be copied to SSD, unpinned cold: back where eviction takes them first, the last one first
  idx.pinMany(Int32Array.from([p0, l1]), 2);
  idx.unpinMany(Int32Array.from([l1, p0]), 2, true);
  assert.deepEqual([...idx.coldest(10)], [p0, l1, l0]);
  idx.pinMany(Int32Array.from([l0]), 1);
  idx.unpinMany(Int32Array.from([l0]), 1, true);
  assert.deepEqual([...idx.coldest(10)], [p0, l0, l1], 'l0 is now the coldest local block');
  idx.pin(l1);
  idx.unpin(l1);
  assert.deepEqual([...idx.coldest(10)], [p0, l0, l1], 'a plain unpin makes it the most recent');
  assert.equal(idx.victim(), p0);
});

test('slots are reused and arrays grow past the initial capacity', () => {
  const idx = createBlockIndex(16);
  for (let i = 0; i < 1000; i++) seal(idx, 0, key(i), i * 4096);
  assert.equal(idx.stats().sealed, 1000);
  for (let i = 0; i < 500; i++) idx.evict(idx.victim());
  assert.equal(idx.stats().sealed, 500);
  assert.equal(idx.prefix(0, packed([key(500), key(501)]), 8, 2), 2);
  assert.equal(idx.prefix(0, packed([key(0)]), 8, 1), 0, 'oldest went first');
  const sealed = idx.sealedHashes();
  assert.equal(sealed.length, 1, 'one namespace, one hash length');
  assert.equal(sealed[0]!.ns, 0);
  assert.equal(sealed[0]!.hashes.hashLen, 8);
  const got = new Set<string>();
  for (let off = 0; off < sealed[0]!.hashes.packed.length; off += 8)
    got.add(sealed[0]!.hashes.packed.subarray(off, off + 8).toString('hex'));
  assert.deepEqual(got, new Set(Array.from({ length: 500 }, (_, i) => key(500 + i).toString('hex'))));
});

test('sealedHashes packs the sealed blocks per namespace and hash length, partial ones left out', () => {
  const idx = createBlockIndex(16);
  seal(idx, 0, key(1), 0);
  seal(idx, 0, Buffer.from('a-longer-hash-16'), 4096);
  seal(idx, 1, key(1), 8192);
  slotFor(idx, 0, key(2), 2, 0, 4096); // partial
  const groups = idx.sealedHashes().map((g) => [g.ns, g.hashes.hashLen, g.hashes.packed.toString('hex')]);
  assert.deepEqual(
    groups.sort(),
    [
      [0, 16, Buffer.from('a-longer-hash-16').toString('hex')],
      [0, 8, key(1).toString('hex')],
      [1, 8, key(1).toString('hex')],
    ].sort(),
  );
  const slot = idx.lookup(0, key(1), 0, 8);
  assert.deepEqual(idx.hash(slot), key(1));
  assert.deepEqual(idx.evict(slot).hash, key(1));
});

test('unassign after a failed copy drops an empty slot', () => {
  const idx = createBlockIndex();
  const s = slotFor(idx, 0, key(9), 1, 0, 10);
  idx.assign(s, 0, 42);
  idx.pin(s);
  assert.equal(idx.unassign(s, 0), 42);
  idx.unpin(s);
  assert.equal(idx.lookup(0, key(9), 0, 8), -1);
  assert.deepEqual(idx.stats(), { sealed: 0, partial: 0, pinned: 0, pageBytes: 0 });
});

test('64-hash prefix lookups over a large index find every hit straight from the packed request', () => {
  const idx = createBlockIndex(1 << 16);
  const n = 200_000;
  const hashes = Buffer.alloc(n * 16);
  for (let i = 0; i < n; i++) {
    hashes.writeUInt32LE((i * 2654435761) >>> 0, i * 16);
    hashes.writeUInt32LE(i, i * 16 + 4);
  }
  const slots = new Int32Array(n);
  for (let i = 0; i < n; i++) slots[i] = seal(idx, 0, hashes.subarray(i * 16, i * 16 + 16), i);
  const out = new Int32Array(64);
  for (let r = 0; r < 2000; r++) {
    const first = (r * 7919) % (n - 64);
    const start = first * 16;
    assert.equal(idx.prefix(0, hashes.subarray(start, start + 64 * 16), 16, 64, out), 64);
    assert.deepEqual(out, slots.subarray(first, first + 64));
  }
  // Timing lives in bench/src/node-index, not here.
});

test('long prefix requests agree with a model across lookup groups, misses, evictions and namespaces', () => {
  // The lookup hashes, fetches and compares keys in groups; a run must end at its first miss wherever that falls
  // (first key, a group's edge, deep in a later group), after evictions have shifted probe chains, and a key of
  // another namespace must never count.
  const idx = createBlockIndex(64);
  const hashLen = 24;
  const keys = Array.from({ length: 3000 }, (_, i) => {
    const k = Buffer.alloc(hashLen);
    k.writeUInt32LE((i * 2246822519) >>> 0, 0);
    k.writeUInt32LE(i, 8);
    return k;
  });
  const held = new Map<number, number>(); // key index -> slot, namespace 0
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < keys.length; i++) {
    if (rand(10) < 8) held.set(i, seal(idx, 0, keys[i]!, i));
    else seal(idx, 1, keys[i]!, i); // the same hash in namespace 1 only
  }
  const out = new Int32Array(200);
  for (let round = 0; round < 400; round++) {
    if (round % 4 === 3) {
      // Evict a handful of namespace-0 blocks: their probe chains shift back over the holes.
      for (let e = 0; e < 20; e++) {
        const i = rand(keys.length);
        const slot = held.get(i);
        if (slot === undefined) continue;
        idx.evict(slot);
        held.delete(i);
      }
    }
    const first = rand(keys.length - 200);
    const count = 1 + rand(200);
    let expected = 0;
    while (expected < count && held.has(first + expected)) expected++;
    const request = Buffer.concat(keys.slice(first, first + count));
    const hits = idx.prefix(0, request, hashLen, count, out);
    assert.equal(hits, expected, `run of ${count} from key ${first}`);
    for (let j = 0; j < hits; j++) assert.equal(out[j], held.get(first + j));
  }
});

test('lookup and slotForShard read the hash at an offset of the request; evictInto frees without allocating', () => {
  const idx = createBlockIndex(16);
  const req = packed([key(7), key(8), key(9)]);
  const a = idx.slotForShard(0, req, 8, 8, 2, 0, 4096);
  assert.equal(idx.lookup(0, key(8), 0, 8), a);
  assert.equal(idx.lookup(0, req, 8, 8), a);
  assert.equal(idx.lookup(0, req, 0, 8), -1);
  assert.equal(idx.lookup(1, req, 8, 8), -1, 'namespaces are apart');
  assert.equal(slotFor(idx, 0, key(8), 2, 1, 4096), a, 'the other shard writes into the same slot');
  idx.assign(a, 0, 8192);
  assert.equal(idx.slotForShard(0, req, 8, 8, 2, 0, 4096), -1, 'shard 0 is assigned already');
  idx.assign(a, 1, 12288);
  const out = new Float64Array(2);
  assert.equal(idx.evictInto(a, out), 2);
  assert.deepEqual([...out], [8192, 12288]);
  assert.equal(idx.lookup(0, req, 8, 8), -1);
  assert.deepEqual(idx.stats(), { sealed: 0, partial: 0, pinned: 0, pageBytes: 0 });
});

test('a stale or made-up slot is refused, naming it, and changes nothing', () => {
  const idx = createBlockIndex(16);
  const s = seal(idx, 0, key(1), 4096);
  const gone = seal(idx, 0, key(2), 8192);
  idx.evict(gone);
  for (const bad of [gone, -1, 1.5, 1 << 30, Number.NaN]) {
    assert.throws(() => idx.page(bad, 0), { code: 'INVALID_ARGUMENT', message: /^slot: expected a live slot/ });
    assert.throws(() => idx.pin(bad), { code: 'INVALID_ARGUMENT' });
  }
  assert.throws(() => idx.page(s, 1), { code: 'INVALID_ARGUMENT', message: /^shard: expected an integer in 0\.\.0/ });
  // a batch with one bad slot pins none of them
  assert.throws(() => idx.pinMany(Int32Array.from([s, gone]), 2), { message: /^slots\[1\]: not a live slot/ });
  assert.equal(idx.pins(s), 0);
  assert.throws(() => idx.unpin(s), /unpin of unpinned slot/);
  assert.throws(() => idx.checksumsInto(s, new Uint32Array(2), 0), /shard 0 is not summed/);
  assert.deepEqual(idx.stats(), { sealed: 1, partial: 0, pinned: 0, pageBytes: 4096 });
});

test('matches a model over 30,000 random saves, hits, pins, evictions and failed copies', () => {
  // A plain Map model of the same rules: sealed blocks, pins, two LRU lists, evicted pulled-first.
  interface Block {
    slot: number;
    cls: BlockClass;
    pins: number;
    used: number;
  }
  const model = new Map<string, Block>();
  let clock = 0;
  let seed = 12345;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const idx = createBlockIndex(16);
  const k = (i: number) => Buffer.from(`k${i}`.padEnd(24, '.'));
  const expectVictim = () => {
    let best: [string, Block] | undefined;
    for (const e of model) {
      const b = e[1];
      if (b.pins > 0) continue;
      const better =
        !best ||
        (b.cls === BlockClass.Pulled && best[1].cls === BlockClass.Local) ||
        (b.cls === best[1].cls && b.used < best[1].used);
      if (better) best = e;
    }
    return best;
  };
  for (let step = 0; step < 30_000; step++) {
    const i = rand(600);
    const name = `k${i}`;
    const op = rand(10);
    const have = model.get(name);
    if (op < 4 && !have) {
      const cls = rand(3) === 0 ? BlockClass.Pulled : BlockClass.Local;
      const slot = idx.slotForShard(3, k(i), 0, 24, 1, 0, 4096, cls);
      idx.assign(slot, 0, i * 4096);
      if (rand(8) === 0) {
        idx.unassign(slot, 0); // a failed copy: the slot goes
        assert.equal(idx.lookup(3, k(i), 0, 24), -1);
        continue;
      }
      idx.markShardWritten(slot, 0);
      model.set(name, { slot, cls, pins: 0, used: ++clock });
    } else if (op < 6 && have) {
      assert.equal(idx.prefix(3, k(i), 24, 1), 1);
      if (have.pins === 0) have.used = ++clock; // pinned blocks are in no list: a hit does not move them
    } else if (op < 7 && have) {
      idx.pin(have.slot);
      have.pins++;
    } else if (op < 8 && have && have.pins > 0) {
      idx.unpin(have.slot);
      if (--have.pins === 0) have.used = ++clock; // back at the front of its list
    } else if (op < 9) {
      const want = expectVictim();
      const got = idx.victim();
      assert.equal(got, want ? want[1].slot : -1, `step ${step}: victim`);
      if (want) {
        assert.deepEqual(idx.evict(got).hash, k(Number(want[0].slice(1))));
        model.delete(want[0]);
      }
    } else if (have) {
      assert.equal(idx.lookup(3, k(i), 0, 24), have.slot);
    } else {
      assert.equal(idx.lookup(3, k(i), 0, 24), -1);
    }
  }
  const pinned = [...model.values()].filter((b) => b.pins > 0).length;
  assert.deepEqual(idx.stats(), { sealed: model.size, partial: 0, pinned, pageBytes: model.size * 4096 });
  for (const [name, b] of model) assert.equal(idx.lookup(3, k(Number(name.slice(1))), 0, 24), b.slot);
});

test('grantPages hands out a grant in one call: pages block-major, known sums, the unsummed ones, merged ranges', () => {
  const idx = createBlockIndex(16);
  const a = slotFor(idx, 0, key(1), 2, 0, 4096);
  idx.assign(a, 0, 0);
  idx.assign(a, 1, 4096);
  const b = slotFor(idx, 0, key(2), 2, 0, 4096);
  idx.assign(b, 0, 8192);
  idx.assign(b, 1, 20480); // not adjacent
  for (const s of [a, b]) for (const sh of [0, 1]) idx.markShardWritten(s, sh);
  idx.setChecksum(a, 1, 7, 8);
  const slots = Int32Array.of(a, b);
  const g = idx.grantPages(slots, 2);
  assert.deepEqual([...g.pageOffsets], [0, 4096, 8192, 20480]);
  assert.deepEqual([...g.checksums], [0, 0, 7, 8, 0, 0, 0, 0]);
  assert.deepEqual([...g.unsummed], [0, 2, 3]);
  assert.deepEqual([...g.ranges], [0, 12288, 20480, 4096]);
  idx.setChecksums(slots, 2, g.unsummed, Uint32Array.of(1, 2, 3, 4, 5, 6), g.checksums);
  assert.deepEqual([...g.checksums], [1, 2, 7, 8, 3, 4, 5, 6]);
  const out = new Uint32Array(4);
  idx.checksumsInto(b, out, 0);
  assert.deepEqual([...out], [3, 4, 5, 6]);
  assert.throws(() => idx.setChecksums(slots, 2, Int32Array.of(4), Uint32Array.of(0, 0), g.checksums), {
    code: 'INVALID_ARGUMENT',
    message: /^pages: outside the blocks/,
  });
  const other = slotFor(idx, 0, key(3), 1, 0, 4096);
  assert.throws(() => idx.grantPages(Int32Array.of(a, other), 2), {
    message: /^slots\[1\]: not a live slot with the shards/,
  });
});
