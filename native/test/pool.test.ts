import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pool, NativeError } from '../lib/pool.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Deterministic PRNG (mulberry32) so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pattern(seed: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (i + 4 <= length) buf.writeUInt32LE(x, i);
    else for (let j = i; j < length; j++) buf[j] = (x >>> (8 * (j - i))) & 0xff;
  }
  return buf;
}

function assertCode(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof NativeError, `expected NativeError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  });
}

test('options are validated with messages naming the field and value', () => {
  assertCode(
    () => Pool.create({ sizeBytes: -3 }),
    'INVALID_ARGUMENT',
    /^sizeBytes: expected an integer >= 4096, got -3$/,
  );
  assertCode(() => Pool.create({ sizeBytes: 1.5 * MiB + 0.5 }), 'INVALID_ARGUMENT', /^sizeBytes: /);
  assertCode(
    () => Pool.create({ sizeBytes: MiB, slabBytes: 5000 }),
    'INVALID_ARGUMENT',
    /^slabBytes: expected a multiple of 4096, got 5000$/,
  );
  assertCode(
    () => Pool.create({ sizeBytes: MiB, slabBytes: 2 * MiB }),
    'INVALID_ARGUMENT',
    /^slabBytes: expected at most sizeBytes/,
  );
  assertCode(
    () => Pool.create({ sizeBytes: MiB, hugepages: 'yes' as unknown as boolean }),
    'INVALID_ARGUMENT',
    /^hugepages: expected a boolean, got "yes"$/,
  );
  assertCode(
    () => Pool.create({ sizeBytes: MiB, prefaultThreads: -1 }),
    'INVALID_ARGUMENT',
    /^prefaultThreads: expected an integer in 0\.\.1024, got -1$/,
  );
  assertCode(
    () => Pool.create({ sizeBytes: MiB, sizeBytez: 1 } as never),
    'INVALID_ARGUMENT',
    /options\.sizeBytez: unknown option/,
  );
  using pool = Pool.create({ sizeBytes: MiB, slabBytes: 64 * KiB });
  assertCode(() => pool.alloc(-3), 'INVALID_ARGUMENT', /^pageBytes: expected an integer in 64\.\.65536, got -3$/);
  assertCode(() => pool.alloc(128 * KiB), 'INVALID_ARGUMENT', /^pageBytes: .* got 131072$/);
  assertCode(() => pool.allocMany(4096, 2.5), 'INVALID_ARGUMENT', /^count: /);
  assertCode(() => pool.free(-1), 'INVALID_ARGUMENT', /^offset: expected a non-negative integer, got -1$/);
});

test('exhaustion returns null, and a freed page is reused', () => {
  using pool = Pool.create({ sizeBytes: MiB, slabBytes: 64 * KiB });
  const pages: number[] = [];
  for (let i = 0; i < 16; i++) {
    const p = pool.alloc(64 * KiB);
    assert.notEqual(p, null);
    pages.push(p!);
  }
  assert.deepEqual(
    [...pages].sort((a, b) => a - b),
    Array.from({ length: 16 }, (_, i) => i * 64 * KiB),
  );
  assert.equal(pool.alloc(64 * KiB), null);
  assert.equal(pool.alloc(4 * KiB), null, 'no free slab left for another page size');
  assert.equal(pool.allocMany(64 * KiB, 1), null);
  pool.free(pages[5]!);
  assert.equal(pool.alloc(4 * KiB), pages[5], 'the emptied slab serves any page size');
  assert.equal(pool.alloc(64 * KiB), null);
  pool.free(pages[5]!, 4 * KiB);
  assert.equal(pool.alloc(64 * KiB), pages[5]);
  const st = pool.stats();
  assert.equal(st.usedBytes, MiB);
  assert.equal(st.freeBytes, 0);
  assert.equal(st.pagesAllocated, 16);
});

test('allocMany is all-or-nothing and returns distinct page offsets', () => {
  using pool = Pool.create({ sizeBytes: MiB, slabBytes: 256 * KiB });
  const before = pool.stats();
  assert.equal(pool.allocMany(64 * KiB, 17), null);
  assert.deepEqual(pool.stats(), before, 'a refused allocMany leaves nothing allocated');
  const a = pool.allocMany(64 * KiB, 10)!;
  assert.ok(a instanceof Float64Array);
  assert.equal(a.length, 10);
  assert.equal(new Set(a).size, 10);
  for (const off of a) assert.equal(off % (64 * KiB), 0);
  assert.equal(pool.allocMany(64 * KiB, 7), null);
  assert.equal(pool.stats().pagesAllocated, 10);
  const b = pool.allocMany(64 * KiB, 6)!;
  assert.equal(b.length, 6);
  assert.equal(pool.alloc(64 * KiB), null);
  assert.deepEqual(pool.allocMany(64 * KiB, 0), new Float64Array(0));
});

test('double free and foreign or invalid handles are refused with POOL_INVALID_HANDLE', () => {
  using pool = Pool.create({ sizeBytes: MiB, slabBytes: 64 * KiB });
  const a = pool.alloc(4 * KiB)!;
  const b = pool.alloc(4 * KiB)!;
  pool.free(a);
  assertCode(() => pool.free(a), 'POOL_INVALID_HANDLE', /double free/);
  assertCode(() => pool.free(b + 100), 'POOL_INVALID_HANDLE', /not the start of a page of 4096 bytes/);
  assertCode(() => pool.free(b, 8 * KiB), 'POOL_INVALID_HANDLE', /is a page of 4096 bytes, not 8192/);
  assertCode(() => pool.free(MiB), 'POOL_INVALID_HANDLE', /outside the pool/);
  assertCode(() => pool.free(512 * KiB), 'POOL_INVALID_HANDLE', /not an allocated page/);
  assertCode(() => pool.free(b + 8 * KiB), 'POOL_INVALID_HANDLE', /double free/);
  // Nothing changed by the refusals.
  assert.equal(pool.stats().pagesAllocated, 1);
  assert.equal(pool.stats().usedBytes, 4 * KiB);
  pool.free(b);
  assertCode(() => pool.free(b), 'POOL_INVALID_HANDLE');
  // 64 KiB slab of 12 KiB pages: 5 pages, 4 KiB of slack at the end that is never a page.
  const c = pool.alloc(12 * KiB)!;
  assertCode(() => pool.free(c + 60 * KiB), 'POOL_INVALID_HANDLE', /not the start of a page/);
});

test('stats are exact', () => {
  using pool = Pool.create({ sizeBytes: MiB + 1000, slabBytes: 64 * KiB });
  assert.equal(pool.sizeBytes, MiB + 1000);
  assert.deepEqual(pool.stats(), {
    capacityBytes: MiB,
    usedBytes: 0,
    freeBytes: MiB,
    largestFreeRunBytes: MiB,
    pagesAllocated: 0,
    slabBytes: 64 * KiB,
    slabsTotal: 16,
    slabsFree: 16,
  });
  const small = [pool.alloc(4 * KiB)!, pool.alloc(4 * KiB)!, pool.alloc(4 * KiB)!]; // slab 0
  const big = pool.alloc(64 * KiB)!; // slab 1
  assert.deepEqual(small, [0, 4 * KiB, 8 * KiB]);
  assert.equal(big, 64 * KiB);
  assert.deepEqual(pool.stats(), {
    capacityBytes: MiB,
    usedBytes: 3 * 4 * KiB + 64 * KiB,
    freeBytes: MiB - 3 * 4 * KiB - 64 * KiB,
    largestFreeRunBytes: 14 * 64 * KiB,
    pagesAllocated: 4,
    slabBytes: 64 * KiB,
    slabsTotal: 16,
    slabsFree: 14,
  });
  for (const p of small) pool.free(p);
  let st = pool.stats();
  assert.equal(st.slabsFree, 15);
  assert.equal(st.largestFreeRunBytes, 14 * 64 * KiB, 'slab 0 is free but slab 1 splits the runs');
  assert.equal(st.usedBytes, 64 * KiB);
  pool.free(big);
  st = pool.stats();
  assert.equal(st.largestFreeRunBytes, MiB);
  assert.equal(st.pagesAllocated, 0);
  assert.equal(st.usedBytes, 0);
});

test('randomized mixed page sizes never overlap and keep their bytes', () => {
  using pool = Pool.create({ sizeBytes: 16 * MiB, slabBytes: 256 * KiB });
  const sizes = [4 * KiB, 12 * KiB, 64 * KiB, 100_000, 256 * KiB, 640];
  const rand = rng(42);
  const live = new Map<number, { size: number; seed: number }>();
  let seed = 1;
  let exhausted = 0;
  const verify = (): void => {
    const sorted = [...live.entries()].sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < sorted.length; i++) {
      const [prevOff, prev] = sorted[i - 1]!;
      assert.ok(prevOff + prev.size <= sorted[i]![0], `pages at ${prevOff} and ${sorted[i]![0]} overlap`);
    }
    for (const [off, { size, seed: s }] of live)
      assert.ok(pool.read(off, size).equals(pattern(s, size)), `page ${off} corrupted`);
    const st = pool.stats();
    assert.equal(st.pagesAllocated, live.size);
    assert.equal(
      st.usedBytes,
      [...live.values()].reduce((n, p) => n + p.size, 0),
    );
    assert.equal(st.freeBytes, st.capacityBytes - st.usedBytes);
  };
  for (let step = 0; step < 4000; step++) {
    if (live.size > 0 && rand() < 0.45) {
      const keys = [...live.keys()];
      const off = keys[Math.floor(rand() * keys.length)]!;
      pool.free(off, live.get(off)!.size);
      live.delete(off);
    } else {
      const size = sizes[Math.floor(rand() * sizes.length)]!;
      const off = pool.alloc(size);
      if (off === null) {
        exhausted++;
        continue;
      }
      assert.ok(!live.has(off));
      const s = seed++;
      pool.write(off, pattern(s, size));
      live.set(off, { size, seed: s });
    }
    if (step % 500 === 0) verify();
  }
  verify();
  assert.ok(live.size > 20, 'the workload kept pages live');
  for (const [off, { size }] of live) pool.free(off, size);
  const st = pool.stats();
  assert.equal(st.usedBytes, 0);
  assert.equal(st.slabsFree, st.slabsTotal, 'empty slabs return to the free-slab list');
  assert.equal(st.largestFreeRunBytes, 16 * MiB);
  assert.ok(exhausted > 0, 'the workload ran the pool out of space at least once');
});

test('read and write are bounds-checked copies', () => {
  using pool = Pool.create({ sizeBytes: 64 * KiB });
  pool.write(100, Buffer.from('kvfabric'));
  assert.equal(pool.read(100, 8).toString(), 'kvfabric');
  pool.write(0, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...pool.read(0, 3)], [1, 2, 3]);
  assertCode(() => pool.write(64 * KiB - 2, Buffer.alloc(3)), 'INVALID_ARGUMENT', /exceeds the pool size 65536/);
  assertCode(() => pool.read(64 * KiB, 1), 'INVALID_ARGUMENT', /exceeds the pool size/);
  assertCode(
    () => pool.write(0, 'text' as unknown as Buffer),
    'INVALID_ARGUMENT',
    /^data: expected a Buffer or Uint8Array, got "text"$/,
  );
  assert.equal(pool.read(64 * KiB, 0).length, 0);
});

test('hugepages, mlock and pre-touch options report what they got', () => {
  using plain = Pool.create({ sizeBytes: MiB });
  assert.equal(plain.hugepages, false);
  assert.equal(plain.hugepagesReason, 'not requested');
  assert.equal(plain.mlocked, false);
  assert.equal(plain.mlockReason, 'not requested');
  using huge = Pool.create({ sizeBytes: 4 * MiB, hugepages: true, mlock: true, prefaultThreads: 2 });
  if (huge.hugepages) assert.equal(huge.hugepagesReason, null);
  else assert.match(huge.hugepagesReason ?? '', /MAP_HUGETLB.*failed.*using 4 KiB pages/);
  if (huge.mlocked) assert.equal(huge.mlockReason, null);
  else assert.match(huge.mlockReason ?? '', /mlock/);
  const off = huge.alloc(64 * KiB)!;
  huge.write(off, Buffer.alloc(64 * KiB, 7));
  assert.ok(huge.read(off, 64 * KiB).equals(Buffer.alloc(64 * KiB, 7)));
});

test('close is idempotent and any later use throws INTERNAL', () => {
  const pool = Pool.create({ sizeBytes: MiB });
  const off = pool.alloc(4 * KiB)!;
  pool.close();
  pool.close();
  assert.equal(pool.closed, true);
  assertCode(() => pool.alloc(4 * KiB), 'INTERNAL', /after close/);
  assertCode(() => pool.allocMany(4 * KiB, 2), 'INTERNAL', /after close/);
  assertCode(() => pool.free(off), 'INTERNAL', /after close/);
  assertCode(() => pool.stats(), 'INTERNAL', /after close/);
  assertCode(() => pool.read(0, 1), 'INTERNAL', /after close/);
  assertCode(() => pool.write(0, Buffer.alloc(1)), 'INTERNAL', /after close/);
});
